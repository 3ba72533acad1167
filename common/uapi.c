/* The cPanel UAPI wire format for the Market functions: form encoding and both response envelopes. */
#include "common/uapi.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

void uapi_urlencode(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[3] = { '%', 0, 0 };

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            buf_append(out, s, 1);
            continue;
        }
        enc[1] = hex[c >> 4];
        enc[2] = hex[c & 15];
        buf_append(out, enc, 3);
    }
}

static void add_param(struct buf *out, const char *name, const char *value)
{
    if (out->len > 0)
        buf_append(out, "&", 1);
    buf_puts(out, name);
    buf_append(out, "=", 1);
    uapi_urlencode(out, value);
}

static void add_whm_fields(struct buf *out, const char *account, const char *func)
{
    add_param(out, "cpanel_jsonapi_user", account);
    add_param(out, "cpanel_jsonapi_apiversion", "3");
    add_param(out, "cpanel_jsonapi_module", "Market");
    add_param(out, "cpanel_jsonapi_func", func);
}

void uapi_encode_order(struct buf *out, const struct uapi_order_request *req)
{
    if (req->whm_account)
        add_whm_fields(out, req->whm_account, "request_ssl_certificates");
    add_param(out, "provider", req->provider);
    add_param(out, "access_token", req->access_token);
    if (req->url_after_checkout)
        add_param(out, "url_after_checkout", req->url_after_checkout);
    for (size_t i = 0; i < req->certificate_count; i++)
        add_param(out, "certificate", req->certificates[i]);
}

void uapi_encode_pending(struct buf *out, const char *whm_account)
{
    if (whm_account)
        add_whm_fields(out, whm_account, "get_pending_ssl_certificates");
}

/* Returns a scalar (string or number) as a new string, or NULL for any other type. */
static char *scalar_dup(yajl_val v)
{
    if (v == NULL)
        return NULL;
    if (v->type == yajl_t_string)
        return xstrdup(v->u.string);
    if (v->type == yajl_t_number)
        return xstrdup(v->u.number.r);
    return NULL;
}

static char *string_array_json(yajl_val v)
{
    if (v == NULL || v->type != yajl_t_array)
        return xstrdup("[]");
    return json_node_to_string(v);
}

static char *join_strings(yajl_val v)
{
    struct buf b;

    buf_init(&b);
    if (v && v->type == yajl_t_array)
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            if (e->type != yajl_t_string)
                continue;
            if (b.len)
                buf_puts(&b, "; ");
            buf_puts(&b, e->u.string);
        }
    else if (v && v->type == yajl_t_string)
        buf_puts(&b, v->u.string);
    return buf_steal(&b);
}

/*
 * Finds the flat UAPI object: the document itself on the cPanel route, its
 * "result" member on the WHM route.  Returns NULL when neither is there.
 */
static yajl_val find_envelope(yajl_val root, bool whm)
{
    if (root == NULL || root->type != yajl_t_object)
        return NULL;
    if (whm) {
        yajl_val result = json_get(root, "result");
        if (result && result->type == yajl_t_object)
            return result;
        return NULL;
    }
    return json_get(root, "status") ? root : NULL;
}

static int envelope_status(yajl_val env)
{
    yajl_val st = json_get(env, "status");

    if (st == NULL)
        return -1;
    if (st->type == yajl_t_number)
        return YAJL_IS_INTEGER(st) ? (int)st->u.number.i : -1;
    if (st->type == yajl_t_string)
        return !strcmp(st->u.string, "1") ? 1 : !strcmp(st->u.string, "0") ? 0 : -1;
    return -1;
}

static void parse_success_data(yajl_val data, size_t expected, struct uapi_order_result *res)
{
    yajl_val certs = json_get(data, "certificates");

    res->order_id = scalar_dup(json_get(data, "order_id"));
    res->checkout_url = scalar_dup(json_get(data, "checkout_url"));
    if (res->order_id == NULL) {
        res->outcome = UAPI_MISMATCH;
        res->error_text = xstrdup("cPanel reported success without an order_id");
        return;
    }
    if (certs == NULL || certs->type != yajl_t_array) {
        res->outcome = UAPI_MISMATCH;
        res->error_text = xstrdup("cPanel reported success without a certificates list");
        return;
    }
    res->certs = xcalloc(certs->u.array.len ? certs->u.array.len : 1, sizeof(*res->certs));
    for (size_t i = 0; i < certs->u.array.len; i++) {
        yajl_val c = certs->u.array.values[i];
        res->certs[res->cert_count].key_id = scalar_dup(json_get(c, "key_id"));
        res->certs[res->cert_count].order_item_id = scalar_dup(json_get(c, "order_item_id"));
        res->cert_count++;
        if (res->certs[i].key_id == NULL || res->certs[i].order_item_id == NULL) {
            res->outcome = UAPI_MISMATCH;
            res->error_text = xstrdup("cPanel reported success but a certificate entry lacks key_id or order_item_id");
            return;
        }
    }
    if (res->cert_count != expected) {
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "cPanel reported success with %zu certificate entries for %zu requested", res->cert_count,
                   expected);
        res->outcome = UAPI_MISMATCH;
        res->error_text = buf_steal(&b);
        return;
    }
    res->outcome = UAPI_SUCCESS;
}

void uapi_parse_order(const char *body, size_t len, bool whm, size_t expected, struct uapi_order_result *res)
{
    char err[160];
    yajl_val root;

    memset(res, 0, sizeof(*res));
    root = json_parse(body, len, err, sizeof(err));
    if (root == NULL) {
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "cPanel's response is not valid JSON: %s", err);
        res->outcome = UAPI_UNREADABLE;
        res->error_text = buf_steal(&b);
        goto done;
    }

    if (whm && root->type == yajl_t_object && json_get(root, "error") && !json_get(root, "result")) {
        res->outcome = UAPI_BAD_ACCOUNT;
        res->error_text = join_strings(json_get(root, "error"));
        goto done;
    }

    yajl_val env = find_envelope(root, whm);
    int status = env ? envelope_status(env) : -1;
    if (status < 0) {
        res->outcome = UAPI_UNREADABLE;
        res->error_text = xstrdup(whm ? "cPanel's response has no result object with a status"
                                      : "cPanel's response has no status field");
        goto done;
    }
    res->errors_json = string_array_json(json_get(env, "errors"));
    res->messages_json = string_array_json(json_get(env, "messages"));
    if (status == 0) {
        res->outcome = UAPI_REJECTED;
        res->error_text = join_strings(json_get(env, "errors"));
        if (res->error_text[0] == '\0') {
            free(res->error_text);
            res->error_text = xstrdup("cPanel refused the request without giving a reason");
        }
        goto done;
    }
    yajl_val data = json_get(env, "data");
    if (data == NULL || data->type != yajl_t_object) {
        res->outcome = UAPI_MISMATCH;
        res->error_text = xstrdup("cPanel reported success without order data");
        goto done;
    }
    parse_success_data(data, expected, res);

done:
    if (res->errors_json == NULL)
        res->errors_json = xstrdup("[]");
    if (res->messages_json == NULL)
        res->messages_json = xstrdup("[]");
    if (root)
        yajl_tree_free(root);
}

void uapi_order_result_free(struct uapi_order_result *res)
{
    for (size_t i = 0; i < res->cert_count; i++) {
        free(res->certs[i].key_id);
        free(res->certs[i].order_item_id);
    }
    free(res->certs);
    free(res->order_id);
    free(res->checkout_url);
    free(res->errors_json);
    free(res->messages_json);
    free(res->error_text);
    memset(res, 0, sizeof(*res));
}

/* The end of the year 9999 in seconds since the epoch: a later "created" is no real date. */
#define CREATED_MAX_S 253402300799LL

/*
 * Returns an order's "created" time in seconds, or 0 when it is absent or
 * outside 0..CREATED_MAX_S.  The bound keeps the conversion from a double
 * defined, and lets callers multiply by 1000 without overflow.
 */
static int64_t parse_created(yajl_val created)
{
    double seconds;

    if (created && created->type == yajl_t_number)
        seconds = YAJL_IS_INTEGER(created) ? (double)created->u.number.i : created->u.number.d;
    else if (created && created->type == yajl_t_string)
        seconds = strtod(created->u.string, NULL);
    else
        return 0;
    if (!(seconds >= 0 && seconds <= (double)CREATED_MAX_S))
        return 0;
    return (int64_t)seconds;
}

static void parse_pending_item(yajl_val v, struct uapi_pending_item *item)
{
    yajl_val names = json_get(v, "subject_names");

    item->provider = scalar_dup(json_get(v, "provider"));
    item->order_id = scalar_dup(json_get(v, "order_id"));
    item->order_item_id = scalar_dup(json_get(v, "order_item_id"));
    item->product_id = scalar_dup(json_get(v, "product_id"));
    item->created_s = parse_created(json_get(v, "created"));
    if (names == NULL || names->type != yajl_t_array)
        return;
    item->names = xcalloc(names->u.array.len ? names->u.array.len : 1, sizeof(char *));
    for (size_t i = 0; i < names->u.array.len; i++) {
        yajl_val n = names->u.array.values[i];
        const char *name = NULL;
        /* Entries come as plain names, legacy ["dNSName", NAME] pairs or {"type","name"} objects. */
        if (n->type == yajl_t_string)
            name = n->u.string;
        else if (n->type == yajl_t_array && n->u.array.len == 2 && n->u.array.values[1]->type == yajl_t_string)
            name = n->u.array.values[1]->u.string;
        else if (n->type == yajl_t_object)
            name = json_get_string(n, "name");
        if (name == NULL)
            continue;
        char *lower = xstrdup(name);
        for (char *p = lower; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        item->names[item->name_count++] = lower;
    }
}

void uapi_parse_pending(const char *body, size_t len, bool whm, struct uapi_pending_list *list)
{
    char err[160];
    yajl_val root = json_parse(body, len, err, sizeof(err));

    memset(list, 0, sizeof(*list));
    yajl_val env = find_envelope(root, whm);
    int status = env ? envelope_status(env) : -1;
    if (status != 1) {
        list->error_text = env ? join_strings(json_get(env, "errors"))
                               : xstrdup("cPanel's response is not a UAPI envelope");
        goto done;
    }
    yajl_val data = json_get(env, "data");
    if (data == NULL || data->type != yajl_t_array) {
        list->error_text = xstrdup("cPanel's pending list is not an array");
        goto done;
    }
    list->items = xcalloc(data->u.array.len ? data->u.array.len : 1, sizeof(*list->items));
    for (size_t i = 0; i < data->u.array.len; i++)
        if (data->u.array.values[i]->type == yajl_t_object)
            parse_pending_item(data->u.array.values[i], &list->items[list->count++]);
    list->ok = true;

done:
    if (root)
        yajl_tree_free(root);
}

void uapi_pending_list_free(struct uapi_pending_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        struct uapi_pending_item *it = &list->items[i];
        free(it->provider);
        free(it->order_id);
        free(it->order_item_id);
        free(it->product_id);
        for (size_t j = 0; j < it->name_count; j++)
            free(it->names[j]);
        free(it->names);
    }
    free(list->items);
    free(list->error_text);
    memset(list, 0, sizeof(*list));
}
