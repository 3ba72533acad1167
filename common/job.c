/* Parses and validates certificate order jobs, and keeps the access token out of anything that is stored. */
#include "common/job.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"

#define QUOTE_CHARS 80

struct parse_ctx {
    char *err;
    size_t err_len;
    bool failed;
};

static void fail(struct parse_ctx *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct parse_ctx *pc, const char *fmt, ...)
{
    va_list ap;

    if (pc->failed)
        return;
    pc->failed = true;
    va_start(ap, fmt);
    vsnprintf(pc->err, pc->err_len, fmt, ap);
    va_end(ap);
}

static const char *quote(char *out, size_t out_len, const char *s)
{
    json_quote_for_message(out, out_len, s, QUOTE_CHARS);
    return out;
}

bool job_id_valid(const char *id)
{
    return str_is_token(id, JOB_ID_MAX, "._:-");
}

/* Accepts a DNS name of letters, digits and hyphens in dot-separated labels, with an optional leading "*." wildcard. */
bool job_dns_name_valid(const char *name)
{
    size_t total = strlen(name);

    if (total == 0 || total > 253)
        return false;
    if (str_has_prefix(name, "*.")) {
        name += 2;
        if (*name == '\0')
            return false;
    }

    const char *label = name;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - label);
            if (len == 0 || len > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            if (*p == '\0')
                break;
            label = p + 1;
            continue;
        }
        if (!isalnum((unsigned char)*p) || (unsigned char)*p > 0x7f) {
            if (*p != '-')
                return false;
        }
    }
    /* A name needs at least two labels: "localhost" cannot get a public certificate. */
    return strchr(name, '.') != NULL;
}

/* Accepts a plain decimal such as "6" or "3.50": strtod alone would also take "inf", "0x10" and "1e3". */
static bool is_numeric_string(const char *s)
{
    char *end;

    if (*s == '\0' || strspn(s, "0123456789.") != strlen(s))
        return false;
    double v = strtod(s, &end);
    return *end == '\0' && v >= 0;
}

/* Accepts a JSON number that yajl could read as a non-negative integer or finite double; -1e999 is neither. */
static bool is_valid_price_number(yajl_val price)
{
    if (YAJL_IS_INTEGER(price))
        return price->u.number.i >= 0;
    return YAJL_IS_DOUBLE(price) && isfinite(price->u.number.d) && price->u.number.d >= 0;
}

static bool printable_no_space(const char *s, size_t max_len)
{
    size_t n = 0;

    for (; *s; s++, n++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || n >= max_len)
            return false;
    return n > 0;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

static char *lowercase_dup(const char *s)
{
    char *out = xstrdup(s);

    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

static void add_name(struct parse_ctx *pc, struct job_cert *cert, const char *where, const char *name)
{
    char q[QUOTE_CHARS + 16];

    if (!job_dns_name_valid(name)) {
        fail(pc, "%s: invalid DNS name %s; use a name such as example.com or *.example.com", where, quote(q, sizeof(q), name));
        return;
    }
    char *lower = lowercase_dup(name);
    for (size_t i = 0; i < cert->name_count; i++)
        if (!strcmp(cert->names[i], lower)) {
            fail(pc, "%s: duplicate name %s; list each name once", where, quote(q, sizeof(q), name));
            free(lower);
            return;
        }
    cert->names = xrealloc(cert->names, (cert->name_count + 1) * sizeof(char *));
    cert->names[cert->name_count++] = lower;
}

static void check_subject_names(struct parse_ctx *pc, struct job_cert *cert, const char *where, yajl_val names)
{
    char at[160], q[QUOTE_CHARS + 16];

    if (names == NULL) {
        fail(pc, "%s.subject_names: missing; give at least one [\"dNSName\", NAME]", where);
        return;
    }
    if (names->type != yajl_t_array || names->u.array.len == 0) {
        fail(pc, "%s.subject_names: must be a non-empty array of [\"dNSName\", NAME] pairs", where);
        return;
    }
    for (size_t i = 0; i < names->u.array.len && !pc->failed; i++) {
        yajl_val entry = names->u.array.values[i];
        const char *type = NULL, *name = NULL, *dcv = NULL;

        snprintf(at, sizeof(at), "%s.subject_names[%zu]", where, i);
        if (entry->type == yajl_t_array && entry->u.array.len == 2 &&
            entry->u.array.values[0]->type == yajl_t_string && entry->u.array.values[1]->type == yajl_t_string) {
            type = entry->u.array.values[0]->u.string;
            name = entry->u.array.values[1]->u.string;
        } else if (entry->type == yajl_t_object) {
            type = json_get_string(entry, "type");
            name = json_get_string(entry, "name");
            yajl_val dcv_node = json_get(entry, "dcv_method");
            if (dcv_node && dcv_node->type != yajl_t_string) {
                fail(pc, "%s.dcv_method: must be \"http\" or \"dns\"", at);
                return;
            }
            dcv = dcv_node ? dcv_node->u.string : NULL;
            if (type == NULL || name == NULL) {
                fail(pc, "%s: an object entry needs string fields \"type\" and \"name\"", at);
                return;
            }
        } else {
            fail(pc, "%s: must be [\"dNSName\", NAME] or {\"type\":\"dNSName\",\"name\":NAME}", at);
            return;
        }
        if (strcmp(type, "dNSName") != 0) {
            fail(pc, "%s: name type %s is not supported; use \"dNSName\"", at, quote(q, sizeof(q), type));
            return;
        }
        if (dcv && strcmp(dcv, "http") != 0 && strcmp(dcv, "dns") != 0) {
            fail(pc, "%s.dcv_method: invalid value %s; use \"http\" or \"dns\"", at, quote(q, sizeof(q), dcv));
            return;
        }
        if (dcv && !strcmp(dcv, "http") && str_has_prefix(name, "*.")) {
            fail(pc, "%s: wildcard %s cannot be validated over http; use dcv_method \"dns\"", at, quote(q, sizeof(q), name));
            return;
        }
        add_name(pc, cert, at, name);
    }
}

static void check_vhosts(struct parse_ctx *pc, struct job_cert *cert, const char *where, yajl_val vhosts)
{
    char q[QUOTE_CHARS + 16];

    if (vhosts == NULL)
        return;
    if (vhosts->type != yajl_t_array) {
        fail(pc, "%s.vhost_names: must be an array of vhost names or [\"*\"]", where);
        return;
    }
    for (size_t i = 0; i < vhosts->u.array.len; i++) {
        yajl_val v = vhosts->u.array.values[i];
        if (v->type != yajl_t_string) {
            fail(pc, "%s.vhost_names[%zu]: must be a string, not %s", where, i, json_type_name(v));
            return;
        }
        if (strcmp(v->u.string, "*") != 0 && !job_dns_name_valid(v->u.string)) {
            fail(pc, "%s.vhost_names[%zu]: invalid vhost name %s; use a domain name or \"*\"", where, i,
                 quote(q, sizeof(q), v->u.string));
            return;
        }
    }
    cert->has_vhosts = vhosts->u.array.len > 0;
}

static void check_subject(struct parse_ctx *pc, const char *where, yajl_val subject)
{
    static const char *const fields[] = {
        "countryName", "emailAddress", "localityName", "organizationName", "organizationalUnitName",
        "stateOrProvinceName",
    };
    char q[QUOTE_CHARS + 16];

    if (subject == NULL)
        return;
    if (subject->type != yajl_t_array) {
        fail(pc, "%s.subject: must be an array of [FIELD, VALUE] pairs", where);
        return;
    }
    for (size_t i = 0; i < subject->u.array.len; i++) {
        yajl_val pair = subject->u.array.values[i];
        if (pair->type != yajl_t_array || pair->u.array.len != 2 || pair->u.array.values[0]->type != yajl_t_string ||
            pair->u.array.values[1]->type != yajl_t_string) {
            fail(pc, "%s.subject[%zu]: must be a pair of strings [FIELD, VALUE]", where, i);
            return;
        }
        const char *field = pair->u.array.values[0]->u.string;
        const char *value = pair->u.array.values[1]->u.string;
        bool known = false;
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
            known = known || !strcmp(field, fields[f]);
        if (!strcmp(field, "commonName")) {
            fail(pc, "%s.subject[%zu]: commonName is not allowed; cPanel sets it from subject_names", where, i);
            return;
        }
        if (!known) {
            fail(pc, "%s.subject[%zu]: unknown field %s; use countryName, emailAddress, localityName, "
                     "organizationName, organizationalUnitName or stateOrProvinceName",
                 where, i, quote(q, sizeof(q), field));
            return;
        }
        size_t vlen = strlen(value);
        if (vlen == 0 || has_control_chars(value) || isspace((unsigned char)value[0]) ||
            isspace((unsigned char)value[vlen - 1])) {
            fail(pc, "%s.subject[%zu]: invalid %s value %s; no control characters or surrounding spaces", where, i,
                 field, quote(q, sizeof(q), value));
            return;
        }
        if (!strcmp(field, "countryName") &&
            (vlen != 2 || !isupper((unsigned char)value[0]) || !isupper((unsigned char)value[1]))) {
            fail(pc, "%s.subject[%zu]: invalid countryName %s; use a two-letter ISO 3166 code such as \"US\"", where,
                 i, quote(q, sizeof(q), value));
            return;
        }
    }
}

static void parse_certificate(struct parse_ctx *pc, struct job *job, const char *where, yajl_val node)
{
    yajl_val parsed = NULL;
    char err[160], q[QUOTE_CHARS + 16];

    if (job->cert_count >= JOB_MAX_CERTIFICATES) {
        fail(pc, "%s: more than %d certificates in one job; split the job", where, JOB_MAX_CERTIFICATES);
        return;
    }
    if (node->type == yajl_t_string) {
        /* cPanel's own examples pass each certificate as a JSON-encoded string. */
        parsed = json_parse(node->u.string, strlen(node->u.string), err, sizeof(err));
        if (parsed == NULL) {
            fail(pc, "%s: invalid JSON in the certificate string: %s", where, err);
            return;
        }
        node = parsed;
    }
    if (node->type != yajl_t_object) {
        fail(pc, "%s: must be a certificate object, not %s", where, json_type_name(node));
        goto done;
    }
    if (node->u.object.len == 0) {
        fail(pc, "%s: empty certificate; give product_id, price and subject_names", where);
        goto done;
    }

    struct job_cert cert = { 0 };
    yajl_val product = json_get(node, "product_id");
    yajl_val price = json_get(node, "price");

    if (product == NULL)
        fail(pc, "%s.product_id: missing; give the Market product id, such as 143", where);
    else if (product->type == yajl_t_string) {
        if (!str_is_token(product->u.string, 64, "._-"))
            fail(pc, "%s.product_id: invalid value %s; use the product id from the Market catalogue", where,
                 quote(q, sizeof(q), product->u.string));
        else
            cert.product_id = xstrdup(product->u.string);
    } else if (YAJL_IS_INTEGER(product) && product->u.number.i >= 0)
        cert.product_id = xstrdup(product->u.number.r);
    else
        fail(pc, "%s.product_id: must be a string or a non-negative integer, not %s", where, json_type_name(product));

    if (!pc->failed) {
        if (price == NULL)
            fail(pc, "%s.price: missing; give the product's price in US dollars, such as 6", where);
        else if (price->type == yajl_t_string) {
            if (!is_numeric_string(price->u.string))
                fail(pc, "%s.price: invalid value %s; use a number of US dollars such as 3.5", where,
                     quote(q, sizeof(q), price->u.string));
        } else if (price->type != yajl_t_number)
            fail(pc, "%s.price: must be a non-negative number or numeric string, not %s", where, json_type_name(price));
        else if (!is_valid_price_number(price))
            fail(pc, "%s.price: must be a non-negative number of US dollars, not %s", where,
                 quote(q, sizeof(q), price->u.number.r));
    }
    if (!pc->failed)
        check_subject_names(pc, &cert, where, json_get(node, "subject_names"));
    if (!pc->failed)
        check_vhosts(pc, &cert, where, json_get(node, "vhost_names"));
    if (!pc->failed)
        check_subject(pc, where, json_get(node, "subject"));

    if (pc->failed) {
        free(cert.product_id);
        for (size_t i = 0; i < cert.name_count; i++)
            free(cert.names[i]);
        free(cert.names);
        goto done;
    }
    cert.json = json_node_to_string(node);
    job->certs = xrealloc(job->certs, (job->cert_count + 1) * sizeof(*job->certs));
    job->certs[job->cert_count++] = cert;

done:
    if (parsed)
        yajl_tree_free(parsed);
}

static int certificate_param_index(const char *key)
{
    char *end;

    if (!str_has_prefix(key, "certificate-") || !isdigit((unsigned char)key[12]))
        return -1;
    /* "certificate-01" would name the same certificate as "certificate-1", so only the plain form counts. */
    if (key[12] == '0' && key[13] != '\0')
        return -1;
    long n = strtol(key + 12, &end, 10);
    if (*end != '\0' || n < 0 || n >= JOB_MAX_CERTIFICATES)
        return -1;
    return (int)n;
}

static void parse_certificates(struct parse_ctx *pc, struct job *job, yajl_val root)
{
    yajl_val list = json_get(root, "certificates");
    yajl_val single = json_get(root, "certificate");
    char where[64];

    if (list) {
        if (list->type != yajl_t_array) {
            fail(pc, "certificates: must be an array of certificate objects");
            return;
        }
        for (size_t i = 0; i < list->u.array.len && !pc->failed; i++) {
            snprintf(where, sizeof(where), "certificates[%zu]", i);
            parse_certificate(pc, job, where, list->u.array.values[i]);
        }
    }
    if (single && !pc->failed) {
        if (single->type == yajl_t_array) {
            for (size_t i = 0; i < single->u.array.len && !pc->failed; i++) {
                snprintf(where, sizeof(where), "certificate[%zu]", i);
                parse_certificate(pc, job, where, single->u.array.values[i]);
            }
        } else
            parse_certificate(pc, job, "certificate", single);
    }

    for (size_t i = 0; i < root->u.object.len && !pc->failed; i++) {
        const char *key = root->u.object.keys[i];
        char q[QUOTE_CHARS + 16];
        if (str_has_prefix(key, "certificate-") && certificate_param_index(key) < 0)
            fail(pc, "%s: invalid certificate parameter name; use certificate-N with N = 0, 1, 2 ... below %d",
                 quote(q, sizeof(q), key), JOB_MAX_CERTIFICATES);
    }

    /* certificate-N parameters go in the order of N, as cPanel numbers them. */
    int last = -1;
    for (;;) {
        int best = -1;
        size_t best_at = 0;
        for (size_t i = 0; i < root->u.object.len; i++) {
            int n = certificate_param_index(root->u.object.keys[i]);
            if (n > last && (best < 0 || n < best)) {
                best = n;
                best_at = i;
            }
        }
        if (best < 0 || pc->failed)
            break;
        parse_certificate(pc, job, root->u.object.keys[best_at], root->u.object.values[best_at]);
        last = best;
    }

    if (!pc->failed && job->cert_count == 0)
        fail(pc, "certificates: missing; give at least one certificate in \"certificates\"");
}


static void check_duplicate_keys(struct parse_ctx *pc, yajl_val root)
{
    char q[QUOTE_CHARS + 16];

    for (size_t i = 0; i < root->u.object.len; i++)
        for (size_t j = i + 1; j < root->u.object.len; j++)
            if (!strcmp(root->u.object.keys[i], root->u.object.keys[j])) {
                fail(pc, "field %s appears twice; give each field once", quote(q, sizeof(q), root->u.object.keys[i]));
                return;
            }
}

static const char *string_field(struct parse_ctx *pc, yajl_val root, const char *key, bool required, const char *hint)
{
    yajl_val v = json_get(root, key);

    if (v == NULL || v->type == yajl_t_null) {
        if (required)
            fail(pc, "%s: missing; %s", key, hint);
        return NULL;
    }
    if (v->type != yajl_t_string) {
        fail(pc, "%s: must be a string, not %s", key, json_type_name(v));
        return NULL;
    }
    return v->u.string;
}

static bool url_valid(const char *url)
{
    if (!str_has_prefix(url, "https://") && !str_has_prefix(url, "http://"))
        return false;
    if (strlen(url) > 2048)
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#')
            return false;
    const char *host = strstr(url, "://") + 3;
    return *host != '\0' && *host != '/';
}

static void parse_fields(struct parse_ctx *pc, struct job *job, yajl_val root, const struct job_limits *limits)
{
    char q[QUOTE_CHARS + 16];
    const char *s;

    s = string_field(pc, root, "id", false, NULL);
    if (s && !job_id_valid(s))
        fail(pc, "id: invalid value %s; use 1-%d characters of A-Z a-z 0-9 . _ : -", quote(q, sizeof(q), s), JOB_ID_MAX);
    if (s)
        job->id = xstrdup(s);

    s = string_field(pc, root, "server", true, "name a [server NAME] section of certqd's config");
    if (s && !str_is_token(s, 64, "._-"))
        fail(pc, "server: invalid value %s; use the name of a [server NAME] section", quote(q, sizeof(q), s));
    if (s)
        job->server = xstrdup(s);

    s = string_field(pc, root, "user", false, NULL);
    if (s && !str_is_token(s, 64, "._-"))
        fail(pc, "user: invalid value %s; use the cPanel account name (lowercase letters, digits, . _ -)",
             quote(q, sizeof(q), s));
    else if (s) {
        for (const char *p = s; *p; p++)
            if (isupper((unsigned char)*p)) {
                fail(pc, "user: invalid value %s; cPanel account names are lowercase", quote(q, sizeof(q), s));
                break;
            }
    }
    if (s)
        job->user = xstrdup(s);

    s = string_field(pc, root, "provider", true, "give the Market provider, such as \"cPStore\"");
    if (s && !str_is_token(s, 64, "._-"))
        fail(pc, "provider: invalid value %s; use the Market provider's name, such as \"cPStore\"", quote(q, sizeof(q), s));
    if (s)
        job->provider = xstrdup(s);

    /* The token's value is never quoted back: messages end up in logs and the dead-letter list. */
    s = string_field(pc, root, "access_token", true, "give the Market access token");
    if (s && !printable_no_space(s, 512))
        fail(pc, "access_token: invalid value; use 1-512 printable characters without spaces");
    if (s)
        job->access_token = xstrdup(s);

    s = string_field(pc, root, "url_after_checkout", false, NULL);
    if (s && strchr(s, '?'))
        fail(pc, "url_after_checkout: %s has a query string, which cPanel rejects; remove the part from \"?\"",
             quote(q, sizeof(q), s));
    else if (s && !url_valid(s))
        fail(pc, "url_after_checkout: invalid URL %s; use http(s)://HOST/PATH without spaces", quote(q, sizeof(q), s));
    if (s)
        job->url_after_checkout = xstrdup(s);

    yajl_val batch = json_get(root, "batch");
    if (batch == NULL || batch->type == yajl_t_null)
        job->batch = true;
    else if (batch->type == yajl_t_true || batch->type == yajl_t_false)
        job->batch = batch->type == yajl_t_true;
    else
        fail(pc, "batch: must be true or false, not %s", json_type_name(batch));

    s = string_field(pc, root, "reply_to", false, NULL);
    if (s && (!str_is_token(s, 256, ":._-") || !str_has_prefix(s, limits->reply_prefix)))
        fail(pc, "reply_to: invalid key %s; use a key that starts with \"%s\" and holds only A-Z a-z 0-9 : . _ -",
             quote(q, sizeof(q), s), limits->reply_prefix);
    if (s)
        job->reply_to = xstrdup(s);
}

struct job *job_parse(const char *payload, size_t len, const struct job_limits *limits, char *err, size_t err_len)
{
    struct parse_ctx pc = { .err = err, .err_len = err_len };
    char parse_err[160];
    yajl_val root = NULL;
    struct job *job = xcalloc(1, sizeof(*job));

    err[0] = '\0';
    if (len > limits->max_bytes) {
        fail(&pc, "payload is %zu bytes, over max_job_bytes (%zu); split the job", len, limits->max_bytes);
        goto fail;
    }
    root = json_parse(payload, len, parse_err, sizeof(parse_err));
    if (root == NULL) {
        fail(&pc, "payload is not valid JSON: %s", parse_err);
        goto fail;
    }
    if (root->type != yajl_t_object) {
        fail(&pc, "payload must be a JSON object, not %s", json_type_name(root));
        goto fail;
    }
    check_duplicate_keys(&pc, root);
    if (!pc.failed)
        parse_fields(&pc, job, root, limits);
    if (!pc.failed)
        parse_certificates(&pc, job, root);
    if (pc.failed)
        goto fail;

    if (job->id == NULL) {
        char uuid[37];
        uuid_v4(uuid);
        job->id = xstrdup(uuid);
        job->id_generated = true;
    }
    yajl_tree_free(root);
    return job;

fail:
    if (root)
        yajl_tree_free(root);
    job_free(job);
    return NULL;
}

void job_free(struct job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->cert_count; i++) {
        free(job->certs[i].json);
        free(job->certs[i].product_id);
        for (size_t j = 0; j < job->certs[i].name_count; j++)
            free(job->certs[i].names[j]);
        free(job->certs[i].names);
    }
    free(job->certs);
    free(job->id);
    free(job->server);
    free(job->user);
    free(job->provider);
    if (job->access_token)
        explicit_bzero(job->access_token, strlen(job->access_token));
    free(job->access_token);
    free(job->url_after_checkout);
    free(job->reply_to);
    free(job);
}

/*
 * Returns the offset of the ',', '}' or ']' that ends the value starting at
 * payload[i], or len.  Nested arrays and objects and the strings inside them
 * are skipped whole, so a comma within the value does not end it.
 */
static size_t skip_json_value(const char *payload, size_t len, size_t i)
{
    int depth = 0;

    while (i < len) {
        char c = payload[i];

        if (c == '"') {
            i++;
            while (i < len && payload[i] != '"')
                i += (payload[i] == '\\' && i + 1 < len) ? 2 : 1;
            if (i < len)
                i++;
            continue;
        }
        if (depth == 0 && (c == ',' || c == '}' || c == ']'))
            break;
        if (c == '[' || c == '{')
            depth++;
        else if (c == ']' || c == '}')
            depth--;
        i++;
    }
    return i;
}

/*
 * Copies what follows a key named access_token at payload[i] into out, with the
 * value replaced by "[redacted]", and returns the offset after it.  A string
 * that is a value rather than a key has no colon after it and is left alone.
 */
static size_t redact_value(const char *payload, size_t len, size_t i, struct buf *out)
{
    bool colon = false;

    /* Skip blanks and the colon; yajl also takes \v and \f as blanks, so they must not end the scan early. */
    while (i < len && payload[i] != '\0' && strchr(" \t\n\v\f\r:", payload[i]) != NULL) {
        colon = colon || payload[i] == ':';
        buf_append(out, payload + i, 1);
        i++;
    }
    if (!colon && (i == len || payload[i] == ',' || payload[i] == '}' || payload[i] == ']'))
        return i;
    if (i < len && payload[i] == '"') {
        i++;
        while (i < len && payload[i] != '"') {
            if (payload[i] == '\\' && i + 1 < len)
                i++;
            i++;
        }
        if (i < len)
            i++;
    } else {
        /* Not a string: drop the whole value, since it may be a bare token or contain one. */
        i = skip_json_value(payload, len, i);
    }
    buf_puts(out, "\"[redacted]\"");
    return i;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Returns whether the body of a JSON string literal (n bytes, escapes included) decodes to want. */
static bool decodes_to(const char *s, size_t n, const char *want)
{
    size_t matched = 0, want_len = strlen(want);

    for (size_t i = 0; i < n;) {
        int c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return false;
            char escape = s[i + 1];
            if (escape == 'u') {
                if (i + 6 > n)
                    return false;
                c = 0;
                for (size_t k = i + 2; k < i + 6; k++) {
                    int digit = hex_digit(s[k]);
                    if (digit < 0)
                        return false;
                    c = c * 16 + digit;
                }
                i += 6;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *at = strchr(from, escape);
                if (escape == '\0' || at == NULL)
                    return false;
                c = (unsigned char)to[at - from];
                i += 2;
            }
        } else {
            i++;
        }
        if (matched >= want_len || (unsigned char)want[matched] != c)
            return false;
        matched++;
    }
    return matched == want_len;
}

/*
 * Redacts the values of keys that spell access_token with escapes
 * ("access\u005ftoken"), which the search for the plain key misses.  It
 * walks the string literals in order, so it needs the quotes to pair up.
 * Takes ownership of scanned; returns it unchanged when there was none.
 * NOTE: in a payload that is not valid JSON and has a stray quote before such
 * a key, the quotes pair up wrongly and that token stays in clear text.
 */
static char *redact_escaped_keys(char *scanned)
{
    size_t len = strlen(scanned), i = 0;
    bool changed = false;
    struct buf out;

    buf_init(&out);
    while (i < len) {
        if (scanned[i] != '"') {
            buf_append(&out, scanned + i, 1);
            i++;
            continue;
        }
        size_t start = i + 1, j = start;
        while (j < len && scanned[j] != '"')
            j += (scanned[j] == '\\' && j + 1 < len) ? 2 : 1;
        size_t end = j < len ? j + 1 : len;
        bool escaped_key = memchr(scanned + start, '\\', j - start) != NULL &&
                           decodes_to(scanned + start, j - start, "access_token");
        buf_append(&out, scanned + i, end - i);
        i = end;
        if (escaped_key) {
            i = redact_value(scanned, len, i, &out);
            changed = true;
        }
    }
    if (!changed) {
        buf_free(&out);
        return scanned;
    }
    free(scanned);
    return buf_steal(&out);
}

char *job_redact_payload(const char *payload, size_t len)
{
    static const char key[] = "\"access_token\"";
    struct buf out;
    size_t i = 0;

    buf_init(&out);
    while (i < len) {
        const char *hit = memmem(payload + i, len - i, key, sizeof(key) - 1);
        if (hit == NULL) {
            buf_append(&out, payload + i, len - i);
            break;
        }
        size_t at = (size_t)(hit - payload) + sizeof(key) - 1;
        buf_append(&out, payload + i, at - i);
        i = redact_value(payload, len, at, &out);
    }
    return redact_escaped_keys(buf_steal(&out));
}

char *job_payload_with_id(const char *payload, size_t len, const char *id)
{
    char err[64];
    yajl_val root = json_parse(payload, len, err, sizeof(err));

    if (root == NULL || root->type != yajl_t_object) {
        if (root)
            yajl_tree_free(root);
        return NULL;
    }
    yajl_gen gen = yajl_gen_alloc(NULL);
    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", id);
    for (size_t i = 0; i < root->u.object.len; i++) {
        if (!strcmp(root->u.object.keys[i], "id"))
            continue;
        json_gen_str(gen, root->u.object.keys[i]);
        json_gen_node(gen, root->u.object.values[i]);
    }
    yajl_gen_map_close(gen);
    yajl_tree_free(root);
    return json_gen_finish(gen);
}

void job_peek(const char *payload, size_t len, const char *reply_prefix, char **id, char **reply_to)
{
    char err[64];
    yajl_val root = json_parse(payload, len, err, sizeof(err));

    *id = NULL;
    *reply_to = NULL;
    if (root == NULL)
        return;
    const char *s = json_get_string(root, "id");
    if (s && job_id_valid(s))
        *id = xstrdup(s);
    s = json_get_string(root, "reply_to");
    if (s && str_is_token(s, 256, ":._-") && str_has_prefix(s, reply_prefix))
        *reply_to = xstrdup(s);
    yajl_tree_free(root);
}
