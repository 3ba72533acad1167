/* JSON helpers over yajl: safe parsing, writing tree nodes back out, and quoting values in messages. */
#ifndef CERTQD_JSON_H
#define CERTQD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/util.h"

/*
 * Parses text (len bytes, need not be NUL-terminated) into a yajl tree.  On a
 * syntax error returns NULL and writes yajl's short message and the byte offset
 * into err, never an excerpt of the input, because inputs carry tokens.
 */
yajl_val json_parse(const char *text, size_t len, char *err, size_t err_len);

/* Writes a parsed node to gen, numbers exactly as they were written. */
void json_gen_node(yajl_gen gen, yajl_val node);
/* Serialises a node to a new string. */
char *json_node_to_string(yajl_val node);

/* Returns the value of key in an object node, or NULL. */
yajl_val json_get(yajl_val object, const char *key);
/* Returns the string of key in an object node, or NULL when absent or not a string. */
const char *json_get_string(yajl_val object, const char *key);

void json_gen_str(yajl_gen gen, const char *s);
void json_gen_kv_str(yajl_gen gen, const char *key, const char *value);
void json_gen_kv_int(yajl_gen gen, const char *key, long long value);
/* Copies gen's output into a new string and frees gen. */
char *json_gen_finish(yajl_gen gen);

/*
 * Writes s into out for use in a message: at most max_chars characters, inside
 * double quotes, with control characters and quotes escaped.
 */
void json_quote_for_message(char *out, size_t out_len, const char *s, size_t max_chars);

/* Returns a printable name of a node's type ("string", "number", ...). */
const char *json_type_name(yajl_val node);

#endif
