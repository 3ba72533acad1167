/* JSON helpers over yajl: safe parsing, writing tree nodes back out, and quoting values in messages. */
#include "common/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define JSON_MAX_DEPTH 64

struct scan_state {
    int depth;
    bool nul_in_string;
};

static int depth_open(void *ctx)
{
    struct scan_state *d = ctx;

    return ++d->depth <= JSON_MAX_DEPTH;
}

static int depth_open_map(void *ctx)
{
    return depth_open(ctx);
}

static int depth_open_array(void *ctx)
{
    return depth_open(ctx);
}

static int depth_close(void *ctx)
{
    struct scan_state *d = ctx;

    d->depth--;
    return 1;
}

/*
 * Rejects strings and keys that decode to a NUL byte ("\u0000"), because the tree
 * keeps C strings and would check and use "certq:reply:a\u0000x" as "certq:reply:a".
 */
static int reject_nul(void *ctx, const unsigned char *s, size_t len)
{
    struct scan_state *d = ctx;

    if (memchr(s, '\0', len) == NULL)
        return 1;
    d->nul_in_string = true;
    return 0;
}

/* The first pass caps nesting, because yajl_tree and our writers recurse, and rejects NUL bytes in strings. */
static const yajl_callbacks scan_callbacks = {
    .yajl_string = reject_nul,
    .yajl_map_key = reject_nul,
    .yajl_start_map = depth_open_map,
    .yajl_end_map = depth_close,
    .yajl_start_array = depth_open_array,
    .yajl_end_array = depth_close,
};

yajl_val json_parse(const char *text, size_t len, char *err, size_t err_len)
{
    struct scan_state scan = { 0 };
    yajl_handle h = yajl_alloc(&scan_callbacks, NULL, &scan);
    yajl_status st;

    /* A first pass checks the syntax, nesting and NUL bytes, and reports a position without quoting input. */
    st = yajl_parse(h, (const unsigned char *)text, len);
    bool at_end = false;
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at_end = true;
    }
    if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
        /* An error found by yajl_complete_parse lies at the end of the input, not at its few consumed bytes. */
        size_t at = at_end ? len : yajl_get_bytes_consumed(h);
        /* yajl ends its message with a newline, which would cut off the offset below. */
        char *nl = strchr((char *)msg, '\n');
        if (nl)
            *nl = '\0';
        if (st == yajl_status_client_canceled && scan.nul_in_string)
            snprintf(err, err_len, "JSON string contains a NUL character (\\u0000) at byte %zu", at);
        else if (st == yajl_status_client_canceled)
            snprintf(err, err_len, "JSON nested deeper than %d levels at byte %zu", JSON_MAX_DEPTH, at);
        else
            snprintf(err, err_len, "%s at byte %zu", (const char *)msg, at);
        yajl_free_error(h, msg);
        yajl_free(h);
        return NULL;
    }
    yajl_free(h);

    char *copy = xstrndup(text, len);
    char tree_err[128];
    yajl_val node = yajl_tree_parse(copy, tree_err, sizeof(tree_err));
    free(copy);
    if (node == NULL)
        snprintf(err, err_len, "invalid JSON (a NUL byte or nesting deeper than yajl allows)");
    return node;
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
