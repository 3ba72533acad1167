/* Helpers around yajl_gen for writing the mock's JSON responses. */
#include "tests/mock/jsonout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

yajl_gen jsonout_new(void)
{
	yajl_gen gen = yajl_gen_alloc(NULL);

	if (gen == NULL)
		return NULL;
	/* Certificates may carry any bytes a client sent; echo them back
	 * instead of failing the whole response. */
	yajl_gen_config(gen, yajl_gen_validate_utf8, 0);
	return gen;
}

void jsonout_string(yajl_gen gen, const char *s)
{
	if (s == NULL) {
		yajl_gen_null(gen);
		return;
	}
	yajl_gen_string(gen, (const unsigned char *)s, strlen(s));
}

void jsonout_string_len(yajl_gen gen, const char *s, size_t len)
{
	yajl_gen_string(gen, (const unsigned char *)s, len);
}

void jsonout_key(yajl_gen gen, const char *key)
{
	yajl_gen_string(gen, (const unsigned char *)key, strlen(key));
}

void jsonout_integer(yajl_gen gen, long long value)
{
	yajl_gen_integer(gen, value);
}

void jsonout_number_text(yajl_gen gen, const char *text)
{
	yajl_gen_number(gen, text, strlen(text));
}

void jsonout_double(yajl_gen gen, double value)
{
	char text[64];

	jsonout_format_price(value, text, sizeof(text));
	yajl_gen_number(gen, text, strlen(text));
}

void jsonout_value(yajl_gen gen, yajl_val value)
{
	if (value == NULL) {
		yajl_gen_null(gen);
		return;
	}

	switch (value->type) {
	case yajl_t_string:
		jsonout_string(gen, value->u.string);
		break;
	case yajl_t_number:
		yajl_gen_number(gen, value->u.number.r, strlen(value->u.number.r));
		break;
	case yajl_t_object:
		yajl_gen_map_open(gen);
		for (size_t i = 0; i < value->u.object.len; i++) {
			jsonout_key(gen, value->u.object.keys[i]);
			jsonout_value(gen, value->u.object.values[i]);
		}
		yajl_gen_map_close(gen);
		break;
	case yajl_t_array:
		yajl_gen_array_open(gen);
		for (size_t i = 0; i < value->u.array.len; i++)
			jsonout_value(gen, value->u.array.values[i]);
		yajl_gen_array_close(gen);
		break;
	case yajl_t_true:
		yajl_gen_bool(gen, 1);
		break;
	case yajl_t_false:
		yajl_gen_bool(gen, 0);
		break;
	case yajl_t_null:
	case yajl_t_any:
		yajl_gen_null(gen);
		break;
	}
}

void jsonout_string_array(yajl_gen gen, char *const *items, size_t count)
{
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < count; i++)
		jsonout_string(gen, items[i]);
	yajl_gen_array_close(gen);
}

int jsonout_flush(yajl_gen gen, struct evbuffer *out)
{
	const unsigned char *text;
	size_t len;

	if (yajl_gen_get_buf(gen, &text, &len) != yajl_gen_status_ok)
		return -1;
	if (evbuffer_add(out, text, len) < 0)
		return -1;
	yajl_gen_clear(gen);
	return 0;
}

char *jsonout_take(yajl_gen gen)
{
	const unsigned char *text;
	size_t len;
	char *copy;

	if (yajl_gen_get_buf(gen, &text, &len) != yajl_gen_status_ok)
		return NULL;
	copy = malloc(len + 1);
	if (copy != NULL) {
		memcpy(copy, text, len);
		copy[len] = '\0';
	}
	yajl_gen_clear(gen);
	yajl_gen_reset(gen, NULL);
	return copy;
}

void jsonout_format_price(double price_usd, char *buf, size_t size)
{
	char *dot;
	char *end;

	snprintf(buf, size, "%.2f", price_usd);
	dot = strchr(buf, '.');
	if (dot == NULL)
		return;

	end = buf + strlen(buf) - 1;
	while (end > dot && *end == '0')
		*end-- = '\0';
	if (end == dot)
		*end = '\0';
}
