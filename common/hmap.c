/* A string-keyed hash map with separate chaining (FNV-1a), doubling when the load passes 1. */
#include "common/hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *key; key++) {
        h ^= (unsigned char)*key;
        h *= 1099511628211ULL;
    }
    return h;
}

void hmap_init(struct hmap *m)
{
    m->bucket_count = 64;
    m->buckets = xcalloc(m->bucket_count, sizeof(*m->buckets));
    m->count = 0;
}

void hmap_destroy(struct hmap *m)
{
    for (size_t i = 0; i < m->bucket_count; i++) {
        struct hmap_entry *e = m->buckets[i];
        while (e) {
            struct hmap_entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->bucket_count = 0;
    m->count = 0;
}

static void grow(struct hmap *m)
{
    size_t count = m->bucket_count * 2;
    struct hmap_entry **buckets = xcalloc(count, sizeof(*buckets));

    for (size_t i = 0; i < m->bucket_count; i++) {
        struct hmap_entry *e = m->buckets[i];
        while (e) {
            struct hmap_entry *next = e->next;
            size_t b = hash_key(e->key) & (count - 1);
            e->next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->bucket_count = count;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    for (struct hmap_entry *e = m->buckets[hash_key(key) & (m->bucket_count - 1)]; e; e = e->next)
        if (!strcmp(e->key, key))
            return e->value;
    return NULL;
}

void hmap_put(struct hmap *m, const char *key, void *value)
{
    size_t b = hash_key(key) & (m->bucket_count - 1);

    for (struct hmap_entry *e = m->buckets[b]; e; e = e->next)
        if (!strcmp(e->key, key)) {
            e->value = value;
            return;
        }
    struct hmap_entry *e = xmalloc(sizeof(*e));
    e->key = xstrdup(key);
    e->value = value;
    e->next = m->buckets[b];
    m->buckets[b] = e;
    if (++m->count > m->bucket_count)
        grow(m);
}

void *hmap_remove(struct hmap *m, const char *key)
{
    struct hmap_entry **link = &m->buckets[hash_key(key) & (m->bucket_count - 1)];

    for (; *link; link = &(*link)->next) {
        struct hmap_entry *e = *link;
        if (strcmp(e->key, key) != 0)
            continue;
        void *value = e->value;
        *link = e->next;
        free(e->key);
        free(e);
        m->count--;
        return value;
    }
    return NULL;
}

void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->bucket_count; i++)
        for (struct hmap_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->value, arg);
}
