/* Unit tests of the string-keyed hash map (common/hmap.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hmap.h"

#define MANY_KEYS 10000

static int values[MANY_KEYS];

static void test_hmap_put_get(void **state)
{
    struct hmap m;
    char key[] = "job-1";

    hmap_init(&m);
    hmap_put(&m, key, &values[1]);
    hmap_put(&m, "job-2", &values[2]);
    key[4] = '9';
    assert_int_equal(m.count, 2);
    assert_ptr_equal(hmap_get(&m, "job-1"), &values[1]);
    assert_ptr_equal(hmap_get(&m, "job-2"), &values[2]);
    assert_null(hmap_get(&m, "job-9"));
    assert_null(hmap_get(&m, ""));
    hmap_destroy(&m);
}

static void test_hmap_replace(void **state)
{
    struct hmap m;

    hmap_init(&m);
    hmap_put(&m, "k", &values[1]);
    hmap_put(&m, "k", &values[2]);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(hmap_get(&m, "k"), &values[2]);
    hmap_destroy(&m);
}

static void test_hmap_remove(void **state)
{
    struct hmap m;

    hmap_init(&m);
    hmap_put(&m, "a", &values[1]);
    hmap_put(&m, "b", &values[2]);
    assert_ptr_equal(hmap_remove(&m, "a"), &values[1]);
    assert_int_equal(m.count, 1);
    assert_null(hmap_get(&m, "a"));
    assert_ptr_equal(hmap_get(&m, "b"), &values[2]);
    assert_null(hmap_remove(&m, "a"));
    assert_null(hmap_remove(&m, "missing"));
    assert_int_equal(m.count, 1);
    hmap_put(&m, "a", &values[3]);
    assert_ptr_equal(hmap_get(&m, "a"), &values[3]);
    hmap_destroy(&m);
}

static void test_hmap_many_keys(void **state)
{
    struct hmap m;
    char key[32];

    hmap_init(&m);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        hmap_put(&m, key, &values[i]);
    }
    assert_int_equal(m.count, MANY_KEYS);
    assert_true(m.bucket_count >= MANY_KEYS);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (hmap_get(&m, key) != &values[i])
            fail_msg("%s lost after growth", key);
    }

    /* Remove the even keys and check that the odd ones stay. */
    for (int i = 0; i < MANY_KEYS; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_ptr_equal(hmap_remove(&m, key), &values[i]);
    }
    assert_int_equal(m.count, MANY_KEYS / 2);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (hmap_get(&m, key) != (i % 2 ? &values[i] : NULL))
            fail_msg("%s has the wrong value after removals", key);
    }
    hmap_destroy(&m);
}

struct visit {
    int seen[MANY_KEYS];
    size_t calls;
};

static void count_entry(const char *key, void *value, void *arg)
{
    struct visit *v = arg;
    int i = (int)((int *)value - values);

    assert_true(i >= 0 && i < MANY_KEYS);
    assert_int_equal(atoi(key + 4), i);
    v->seen[i]++;
    v->calls++;
}

static void test_hmap_each_once(void **state)
{
    struct hmap m;
    struct visit *v = calloc(1, sizeof(*v));
    char key[32];

    hmap_init(&m);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        hmap_put(&m, key, &values[i]);
    }
    hmap_each(&m, count_entry, v);
    assert_int_equal(v->calls, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(v->seen[i], 1);
    hmap_destroy(&m);
    free(v);
}

static void test_hmap_each_empty(void **state)
{
    struct hmap m;
    struct visit *v = calloc(1, sizeof(*v));

    hmap_init(&m);
    hmap_each(&m, count_entry, v);
    assert_int_equal(v->calls, 0);
    hmap_destroy(&m);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmap_put_get),
        cmocka_unit_test(test_hmap_replace),
        cmocka_unit_test(test_hmap_remove),
        cmocka_unit_test(test_hmap_many_keys),
        cmocka_unit_test(test_hmap_each_once),
        cmocka_unit_test(test_hmap_each_empty),
    };

    return cmocka_run_group_tests_name("hmap", tests, NULL, NULL);
}
