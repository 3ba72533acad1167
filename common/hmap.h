/* A string-keyed hash map with separate chaining; keys are copied, values are borrowed pointers. */
#ifndef CERTQD_HMAP_H
#define CERTQD_HMAP_H

#include <stddef.h>

struct hmap_entry {
    char *key;
    void *value;
    struct hmap_entry *next;
};

struct hmap {
    struct hmap_entry **buckets;
    size_t bucket_count;
    size_t count;
};

void hmap_init(struct hmap *m);
/* Frees the map's own memory; values are the caller's to free first. */
void hmap_destroy(struct hmap *m);
void *hmap_get(const struct hmap *m, const char *key);
/* Sets key to value, replacing any previous value. */
void hmap_put(struct hmap *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *hmap_remove(struct hmap *m, const char *key);

/* Calls fn for every entry; fn must not change the map. */
void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
