/* Decoder for application/x-www-form-urlencoded bodies and query strings. */
#include "tests/mock/form.h"

#include <stdlib.h>
#include <string.h>

static int form_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode SRC[0..LEN) into DST and NUL-terminate it. Returns the decoded
 * length, or -1 with *BAD_AT set to the offset of an invalid escape. */
static long form_unescape(const char *src, size_t len, char *dst,
    size_t *bad_at)
{
	size_t in = 0;
	size_t out = 0;

	while (in < len) {
		char c = src[in];

		if (c == '+') {
			dst[out++] = ' ';
			in++;
			continue;
		}
		if (c != '%') {
			dst[out++] = c;
			in++;
			continue;
		}

		int high = in + 1 < len ? form_hex_value(src[in + 1]) : -1;
		int low = in + 2 < len ? form_hex_value(src[in + 2]) : -1;
		if (high < 0 || low < 0) {
			*bad_at = in;
			return -1;
		}
		dst[out++] = (char)(high * 16 + low);
		in += 3;
	}

	dst[out] = '\0';
	return (long)out;
}

int form_decode(const char *body, size_t len, struct form *out,
    long *error_offset)
{
	size_t pairs = 1;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	*error_offset = -1;

	for (size_t i = 0; i < len; i++) {
		if (body[i] == '&')
			pairs++;
	}

	/* Decoded text never grows, and each pair adds at most two NULs. */
	out->text = malloc(len + 2 * pairs + 1);
	out->fields = calloc(pairs, sizeof(*out->fields));
	if (out->text == NULL || out->fields == NULL)
		goto fail;

	char *cursor = out->text;
	while (pos <= len) {
		const char *amp = memchr(body + pos, '&', len - pos);
		size_t end = amp != NULL ? (size_t)(amp - body) : len;

		if (end == pos) {
			pos = end + 1;
			continue;
		}

		const char *eq = memchr(body + pos, '=', end - pos);
		size_t name_end = eq != NULL ? (size_t)(eq - body) : end;
		size_t value_start = eq != NULL ? name_end + 1 : end;
		struct form_field *field = &out->fields[out->count];
		size_t bad_at;

		long n = form_unescape(body + pos, name_end - pos, cursor, &bad_at);
		if (n < 0) {
			*error_offset = (long)(pos + bad_at);
			goto fail;
		}
		field->name = cursor;
		field->name_len = (size_t)n;
		cursor += n + 1;

		n = form_unescape(body + value_start, end - value_start, cursor,
		    &bad_at);
		if (n < 0) {
			*error_offset = (long)(value_start + bad_at);
			goto fail;
		}
		field->value = cursor;
		field->value_len = (size_t)n;
		cursor += n + 1;

		out->count++;
		pos = end + 1;
	}
	return 0;

fail:
	form_free(out);
	return -1;
}

void form_free(struct form *form)
{
	free(form->fields);
	free(form->text);
	memset(form, 0, sizeof(*form));
}

const char *form_get(const struct form *form, const char *name)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < form->count; i++) {
		const struct form_field *field = &form->fields[i];

		if (field->name_len == name_len &&
		    memcmp(field->name, name, name_len) == 0)
			return field->value;
	}
	return NULL;
}
