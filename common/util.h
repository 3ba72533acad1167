/* Small helpers shared by certqd's programs: clocks, memory, growable buffers, ids. */
#ifndef CERTQD_UTIL_H
#define CERTQD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch. */
int64_t now_ms(void);
/* Monotonic milliseconds, for durations and timers. */
int64_t mono_ms(void);

/* Allocators that abort on exhaustion: a daemon that cannot allocate a few bytes cannot recover. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

/* A growable byte buffer, always NUL-terminated. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The room decimal_digits needs: 20 digits, a sign and spare. */
#define DECIMAL_MAX 24
/* Writes magnitude in decimal, after a '-' when negative, to end at out + DECIMAL_MAX; returns the start. */
char *decimal_digits(char out[DECIMAL_MAX], unsigned long long magnitude, bool negative);
/* Appends n in decimal, without printf's cost on hot paths. */
void buf_put_uint(struct buf *b, unsigned long long n);
/* Detaches the buffer's string; the caller owns it and the buffer is empty again. */
char *buf_steal(struct buf *b);

/* Writes a random RFC 4122 version 4 UUID (36 characters and a NUL) into out. */
void uuid_v4(char out[37]);
/* Returns a uniformly random integer in [0, bound); bound must be > 0. */
uint64_t random_below(uint64_t bound);

/* Returns true when s is 1 to max_len characters, each in [A-Za-z0-9] or in extra. */
bool str_is_token(const char *s, size_t max_len, const char *extra);
bool str_has_prefix(const char *s, const char *prefix);

/* Reads a whole file into a new string; returns NULL and sets errno on failure. */
char *file_read_all(const char *path, size_t max_bytes, size_t *len_out);

#endif
