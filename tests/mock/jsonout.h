/* Helpers around yajl_gen for writing the mock's JSON responses. */
#ifndef MOCK_JSONOUT_H
#define MOCK_JSONOUT_H

#include <stddef.h>

#include <event2/buffer.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Return a compact generator that does not check UTF-8, or NULL. */
yajl_gen jsonout_new(void);

/* Write S as a JSON string, or null when S is NULL. */
void jsonout_string(yajl_gen gen, const char *s);
void jsonout_string_len(yajl_gen gen, const char *s, size_t len);
void jsonout_key(yajl_gen gen, const char *key);
void jsonout_integer(yajl_gen gen, long long value);
/* Write a number given as text, such as a price, unchanged. */
void jsonout_number_text(yajl_gen gen, const char *text);
void jsonout_double(yajl_gen gen, double value);
/* Write a parsed yajl tree back out. */
void jsonout_value(yajl_gen gen, yajl_val value);
/* Write a list of strings as an array. */
void jsonout_string_array(yajl_gen gen, char *const *items, size_t count);

/* Move the text generated so far to OUT, so long arrays can be written
 * in pieces. The generator keeps its place in the document. */
int jsonout_flush(yajl_gen gen, struct evbuffer *out);
/* Return a malloc'd NUL-terminated copy of the generated text and
 * reset the generator, or NULL when memory ran out. */
char *jsonout_take(yajl_gen gen);

/* Format a price the way the store prints it: 6, 3.5, 3.25. */
void jsonout_format_price(double price_usd, char *buf, size_t size);

#endif
