/* JSON helpers over yajl: safe parsing, writing tree nodes back out, and quoting values in messages. */
#include "common/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define JSON_MAX_DEPTH 64

/*
 * The tree under construction.  Containers join their parent when they open,
 * so on an error freeing the root frees everything built so far.
 */
struct builder {
    int depth;                        /* containers open */
    bool nul_in_string;
    yajl_val root;
    yajl_val open[JSON_MAX_DEPTH];    /* the containers open, outermost first */
    char *key[JSON_MAX_DEPTH];        /* an object's key waiting for its value */
};

/* Grows an array of len elements so that one more fits: 4, then doubling at each power of two. */
static void *grow(void *items, size_t len, size_t size)
{
    if (len == 0)
        return xrealloc(items, 4 * size);
    if (len >= 4 && (len & (len - 1)) == 0)
        return xrealloc(items, 2 * len * size);
    return items;
}

static int attach(struct builder *b, yajl_val v)
{
    if (b->depth == 0) {
        b->root = v;
        return 1;
    }
    yajl_val parent = b->open[b->depth - 1];
    if (parent->type == yajl_t_array) {
        parent->u.array.values = grow(parent->u.array.values, parent->u.array.len, sizeof(yajl_val));
        parent->u.array.values[parent->u.array.len++] = v;
        return 1;
    }
    size_t len = parent->u.object.len;
    parent->u.object.keys = grow((void *)parent->u.object.keys, len, sizeof(char *));
    parent->u.object.values = grow(parent->u.object.values, len, sizeof(yajl_val));
    parent->u.object.keys[len] = b->key[b->depth - 1];
    parent->u.object.values[len] = v;
    parent->u.object.len++;
    b->key[b->depth - 1] = NULL;
    return 1;
}

static yajl_val new_node(yajl_type type)
{
    yajl_val v = xcalloc(1, sizeof(*v));

    v->type = type;
    return v;
}

static int on_null(void *ctx)
{
    return attach(ctx, new_node(yajl_t_null));
}

static int on_boolean(void *ctx, int value)
{
    return attach(ctx, new_node(value ? yajl_t_true : yajl_t_false));
}

/* Keeps the number as written, and as integer and double where it converts exactly as yajl_tree does. */
static int on_number(void *ctx, const char *s, size_t len)
{
    yajl_val v = new_node(yajl_t_number);
    char *end;

    v->u.number.r = xstrndup(s, len);
    errno = 0;
    v->u.number.i = strtoll(v->u.number.r, &end, 10);
    if (errno == 0 && end == v->u.number.r + len)
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && end == v->u.number.r + len)
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return attach(ctx, v);
}

/*
 * Rejects strings and keys that decode to a NUL byte ("\u0000"), because the tree
 * keeps C strings and would check and use "certq:reply:a\u0000x" as "certq:reply:a".
 */
static bool has_nul(struct builder *b, const unsigned char *s, size_t len)
{
    if (memchr(s, '\0', len) == NULL)
        return false;
    b->nul_in_string = true;
    return true;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    if (has_nul(ctx, s, len))
        return 0;
    yajl_val v = new_node(yajl_t_string);
    v->u.string = xstrndup((const char *)s, len);
    return attach(ctx, v);
}

static int on_key(void *ctx, const unsigned char *s, size_t len)
{
    struct builder *b = ctx;

    if (has_nul(b, s, len))
        return 0;
    b->key[b->depth - 1] = xstrndup((const char *)s, len);
    return 1;
}

/* Opens a container; nesting is capped because our writers recurse. */
static int open_container(struct builder *b, yajl_type type)
{
    if (b->depth == JSON_MAX_DEPTH)
        return 0;
    yajl_val v = new_node(type);
    attach(b, v);
    b->key[b->depth] = NULL;
    b->open[b->depth++] = v;
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, yajl_t_object);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, yajl_t_array);
}

static int on_end(void *ctx)
{
    struct builder *b = ctx;

    b->depth--;
    return 1;
}

static const yajl_callbacks build_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_map_key = on_key,
    .yajl_start_map = on_start_map,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

yajl_val json_parse(const char *text, size_t len, char *err, size_t err_len)
{
    struct builder b = { 0 };
    yajl_handle h = yajl_alloc(&build_callbacks, NULL, &b);
    yajl_status st;

    /* One pass builds the tree and checks syntax, nesting and NUL bytes; errors give a position, never input. */
    st = yajl_parse(h, (const unsigned char *)text, len);
    bool at_end = false;
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at_end = true;
    }
    if (st == yajl_status_ok) {
        yajl_free(h);
        return b.root;
    }

    unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
    /* An error found by yajl_complete_parse lies at the end of the input, not at its few consumed bytes. */
    size_t at = at_end ? len : yajl_get_bytes_consumed(h);
    /* yajl ends its message with a newline, which would cut off the offset below. */
    char *nl = strchr((char *)msg, '\n');
    if (nl)
        *nl = '\0';
    if (st == yajl_status_client_canceled && b.nul_in_string)
        snprintf(err, err_len, "JSON string contains a NUL character (\\u0000) at byte %zu", at);
    else if (st == yajl_status_client_canceled)
        snprintf(err, err_len, "JSON nested deeper than %d levels at byte %zu", JSON_MAX_DEPTH, at);
    else
        snprintf(err, err_len, "%s at byte %zu", (const char *)msg, at);
    yajl_free_error(h, msg);
    yajl_free(h);
    for (int i = 0; i < b.depth; i++)
        free(b.key[i]);
    yajl_tree_free(b.root);
    return NULL;
}

void json_gen_str(yajl_gen gen, const char *s)
{
    yajl_gen_string(gen, (const unsigned char *)s, strlen(s));
}

void json_gen_kv_str(yajl_gen gen, const char *key, const char *value)
{
    json_gen_str(gen, key);
    if (value)
        json_gen_str(gen, value);
    else
        yajl_gen_null(gen);
}

void json_gen_kv_int(yajl_gen gen, const char *key, long long value)
{
    json_gen_str(gen, key);
    yajl_gen_integer(gen, value);
}

void json_gen_node(yajl_gen gen, yajl_val node)
{
    if (node == NULL) {
        yajl_gen_null(gen);
        return;
    }
    switch (node->type) {
    case yajl_t_string:
        json_gen_str(gen, node->u.string);
        break;
    case yajl_t_number:
        yajl_gen_number(gen, node->u.number.r, strlen(node->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(gen);
        for (size_t i = 0; i < node->u.object.len; i++) {
            json_gen_str(gen, node->u.object.keys[i]);
            json_gen_node(gen, node->u.object.values[i]);
        }
        yajl_gen_map_close(gen);
        break;
    case yajl_t_array:
        yajl_gen_array_open(gen);
        for (size_t i = 0; i < node->u.array.len; i++)
            json_gen_node(gen, node->u.array.values[i]);
        yajl_gen_array_close(gen);
        break;
    case yajl_t_true:
        yajl_gen_bool(gen, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(gen, 0);
        break;
    default:
        yajl_gen_null(gen);
        break;
    }
}

char *json_gen_finish(yajl_gen gen)
{
    const unsigned char *out;
    size_t len;

    yajl_gen_get_buf(gen, &out, &len);
    char *s = xstrndup((const char *)out, len);
    yajl_gen_free(gen);
    return s;
}

char *json_node_to_string(yajl_val node)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    json_gen_node(gen, node);
    return json_gen_finish(gen);
}

yajl_val json_get(yajl_val object, const char *key)
{
    if (object == NULL || object->type != yajl_t_object)
        return NULL;
    for (size_t i = 0; i < object->u.object.len; i++)
        if (!strcmp(object->u.object.keys[i], key))
            return object->u.object.values[i];
    return NULL;
}

const char *json_get_string(yajl_val object, const char *key)
{
    yajl_val v = json_get(object, key);

    return (v && v->type == yajl_t_string) ? v->u.string : NULL;
}

void json_quote_for_message(char *out, size_t out_len, const char *s, size_t max_chars)
{
    size_t o = 0, n = 0;

    if (out_len < 8) {
        if (out_len)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (; *s && o + 6 < out_len; s++) {
        unsigned char c = (unsigned char)*s;
        if (n++ >= max_chars) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            if (o + 5 >= out_len)
                break;
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
        } else if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

const char *json_type_name(yajl_val node)
{
    if (node == NULL)
        return "null";
    switch (node->type) {
    case yajl_t_string:
        return "a string";
    case yajl_t_number:
        return "a number";
    case yajl_t_object:
        return "an object";
    case yajl_t_array:
        return "an array";
    case yajl_t_true:
    case yajl_t_false:
        return "a boolean";
    default:
        return "null";
    }
}
