/* Decoder for application/x-www-form-urlencoded bodies and query strings. */
#ifndef MOCK_FORM_H
#define MOCK_FORM_H

#include <stddef.h>

/* One decoded name=value pair. Both strings are NUL-terminated, and the
 * lengths count the bytes before that NUL, so values may contain %00. */
struct form_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* Decoded fields in the order they appear in the input. */
struct form {
	struct form_field *fields;
	size_t count;
	char *text;
};

/* Decode BODY (LEN bytes, no NUL needed) into OUT. Pairs are separated by
 * '&', empty pairs are skipped, a pair without '=' has an empty value, '+'
 * becomes a space and %XX becomes the byte XX. Returns 0, or -1 with *ERROR_OFFSET
 * set to the position of an invalid percent escape or -1 when memory ran out;
 * OUT is empty after a failure. The caller frees OUT with form_free(). */
int form_decode(const char *body, size_t len, struct form *out,
    long *error_offset);

void form_free(struct form *form);

/* Return the value of the first field named NAME, or NULL. */
const char *form_get(const struct form *form, const char *name);

#endif
