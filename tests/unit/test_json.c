/* Unit tests of the JSON helpers: safe parsing, exact number output and quoting for messages (common/json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_not_contains(const char *text, const char *part)
{
    if (strstr(text, part) != NULL)
        fail_msg("\"%s\" contains \"%s\"", text, part);
}

/* Returns depth nested arrays, such as "[[[]]]" for 3. */
static char *nested_arrays(int depth)
{
    struct buf b;

    buf_init(&b);
    for (int i = 0; i < depth; i++)
        buf_puts(&b, "[");
    for (int i = 0; i < depth; i++)
        buf_puts(&b, "]");
    return buf_steal(&b);
}

static void test_json_error_hides_input(void **state)
{
    /* The syntax error (a bare x) sits between two secrets. */
    static const char text[] = "{\"before\":\"SECRETA-1f2e\", x \"after\":\"SECRETB-9d8c\"}";
    char err[256];

    assert_null(json_parse(text, strlen(text), err, sizeof(err)));
    assert_true(err[0] != '\0');
    assert_not_contains(err, "SECRET");
    assert_not_contains(err, "1f2e");
    assert_not_contains(err, "9d8c");
    assert_not_contains(err, "before");
    assert_not_contains(err, "after");
    assert_not_contains(err, "\n");
}

static void test_json_error_unterminated_string(void **state)
{
    static const char text[] = "{\"token\":\"SECRET-5a6b";
    char err[256];

    assert_null(json_parse(text, strlen(text), err, sizeof(err)));
    assert_not_contains(err, "SECRET");
    assert_not_contains(err, "5a6b");
}

static void test_json_error_names_offset(void **state)
{
    static const char text[] = "{\"a\":1,}";
    char err[256];

    assert_null(json_parse(text, strlen(text), err, sizeof(err)));
    assert_contains(err, "parse error");
    assert_contains(err, " at byte 8");
    assert_not_contains(err, "\n");
}

static void test_json_error_trailing_text(void **state)
{
    char err[256];

    assert_null(json_parse("{} {}", 5, err, sizeof(err)));
    assert_null(json_parse("", 0, err, sizeof(err)));
    assert_null(json_parse("{} // note", 10, err, sizeof(err)));
}

static void test_json_length_not_nul(void **state)
{
    /* Only len bytes count, so the text need not end in a NUL. */
    static const char text[] = "{\"a\":1}garbage";
    char err[256];
    yajl_val v = json_parse(text, 7, err, sizeof(err));

    assert_non_null(v);
    assert_true(YAJL_IS_OBJECT(v));
    assert_int_equal(v->u.object.len, 1);
    yajl_tree_free(v);
}

static void test_json_depth_limit(void **state)
{
    char err[256];
    char *deep = nested_arrays(100);
    char *at_limit = nested_arrays(64);
    char *over_limit = nested_arrays(65);
    char *shallow = nested_arrays(50);

    assert_null(json_parse(deep, strlen(deep), err, sizeof(err)));
    assert_contains(err, "nested deeper than 64 levels");
    assert_null(json_parse(over_limit, strlen(over_limit), err, sizeof(err)));
    assert_contains(err, "nested deeper than 64 levels");

    yajl_val v = json_parse(at_limit, strlen(at_limit), err, sizeof(err));
    assert_non_null(v);
    yajl_tree_free(v);
    v = json_parse(shallow, strlen(shallow), err, sizeof(err));
    assert_non_null(v);
    assert_true(YAJL_IS_ARRAY(v));
    yajl_tree_free(v);

    free(deep);
    free(at_limit);
    free(over_limit);
    free(shallow);
}

static void test_json_depth_objects(void **state)
{
    struct buf b;
    char err[256];

    buf_init(&b);
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "{\"a\":");
    buf_puts(&b, "1");
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "}");
    assert_null(json_parse(b.data, b.len, err, sizeof(err)));
    assert_contains(err, "nested deeper than 64 levels");
    buf_free(&b);
}

static void test_json_nul_in_string(void **state)
{
    static const char value[] = "{\"a\":\"x\\u0000y\"}";
    static const char key[] = "{\"a\\u0000b\":1}";
    char err[256];

    assert_null(json_parse(value, strlen(value), err, sizeof(err)));
    assert_contains(err, "NUL character");
    assert_null(json_parse(key, strlen(key), err, sizeof(err)));
    assert_contains(err, "NUL character");
}

static void test_json_numbers_exact(void **state)
{
    static const char text[] = "{\"price\":3.50,\"big\":123456789012345678901234567890,\"e\":1.0e2,\"neg\":-0}";
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    char *out = json_node_to_string(v);
    assert_string_equal(out, text);
    free(out);
    yajl_tree_free(v);
}

static void test_json_number_values(void **state)
{
    static const char text[] = "[7,-12,2.5,1e3,123456789012345678901234567890]";
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    assert_int_equal(v->u.array.len, 5);
    assert_true(YAJL_IS_INTEGER(v->u.array.values[0]));
    assert_int_equal(YAJL_GET_INTEGER(v->u.array.values[0]), 7);
    assert_true(YAJL_IS_INTEGER(v->u.array.values[1]));
    assert_int_equal(YAJL_GET_INTEGER(v->u.array.values[1]), -12);
    assert_false(YAJL_IS_INTEGER(v->u.array.values[2]));
    assert_true(YAJL_IS_DOUBLE(v->u.array.values[2]));
    assert_false(YAJL_IS_INTEGER(v->u.array.values[3]));
    assert_true(YAJL_IS_DOUBLE(v->u.array.values[3]));
    assert_false(YAJL_IS_INTEGER(v->u.array.values[4]));
    assert_string_equal(YAJL_GET_NUMBER(v->u.array.values[4]), "123456789012345678901234567890");
    yajl_tree_free(v);
}

static void test_json_duplicate_keys_kept(void **state)
{
    static const char text[] = "{\"a\":1,\"b\":[true,false,null],\"a\":\"x\"}";
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    assert_int_equal(v->u.object.len, 3);
    assert_string_equal(v->u.object.keys[0], "a");
    assert_string_equal(v->u.object.keys[2], "a");
    assert_string_equal(v->u.object.values[2]->u.string, "x");
    yajl_val b = v->u.object.values[1];
    assert_int_equal(b->u.array.len, 3);
    assert_true(YAJL_IS_TRUE(b->u.array.values[0]));
    assert_true(YAJL_IS_FALSE(b->u.array.values[1]));
    assert_true(YAJL_IS_NULL(b->u.array.values[2]));
    yajl_tree_free(v);
}

static void test_json_many_elements(void **state)
{
    struct buf text;
    char err[256];

    buf_init(&text);
    buf_puts(&text, "{");
    for (int i = 0; i < 1000; i++)
        buf_printf(&text, "%s\"k%d\":[%d]", i ? "," : "", i, i);
    buf_puts(&text, "}");
    yajl_val v = json_parse(text.data, text.len, err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(v->u.object.len, 1000);
    assert_string_equal(v->u.object.keys[999], "k999");
    assert_int_equal(YAJL_GET_INTEGER(v->u.object.values[999]->u.array.values[0]), 999);
    yajl_tree_free(v);
    buf_free(&text);
}

static void test_json_error_frees_partial_tree(void **state)
{
    static const char text[] = "{\"a\":[1,{\"b\":\"c\",\"d\":";
    char err[256];

    assert_null(json_parse(text, strlen(text), err, sizeof(err)));
    assert_contains(err, "at byte");
}

static void test_json_top_level_scalar(void **state)
{
    char err[256];
    yajl_val v = json_parse("\"abc\"", 5, err, sizeof(err));

    assert_non_null(v);
    assert_string_equal(v->u.string, "abc");
    yajl_tree_free(v);
}

static void test_json_strings_round_trip(void **state)
{
    static const char text[] = "[\"a\\\"b\",\"\\u00e9\",\"tab\\tnl\\n\",true,false,null,{}]";
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    char *out = json_node_to_string(v);
    assert_string_equal(out, "[\"a\\\"b\",\"\xc3\xa9\",\"tab\\tnl\\n\",true,false,null,{}]");
    free(out);
    yajl_tree_free(v);
}

static void test_json_get_values(void **state)
{
    static const char text[] = "{\"s\":\"text\",\"n\":5}";
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    assert_string_equal(json_get_string(v, "s"), "text");
    assert_null(json_get_string(v, "n"));
    assert_null(json_get_string(v, "missing"));
    assert_non_null(json_get(v, "n"));
    assert_true(YAJL_IS_NUMBER(json_get(v, "n")));
    assert_null(json_get(json_get(v, "s"), "s"));
    assert_null(json_get(NULL, "s"));
    yajl_tree_free(v);
}

static void test_json_type_names(void **state)
{
    static const char text[] = "[\"s\",1,{},[],true,false,null]";
    static const char *const names[] = {
        "a string", "a number", "an object", "an array", "a boolean", "a boolean", "null",
    };
    char err[256];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));

    assert_non_null(v);
    assert_int_equal(v->u.array.len, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(json_type_name(v->u.array.values[i]), names[i]);
    assert_string_equal(json_type_name(NULL), "null");
    yajl_tree_free(v);
}

static void test_json_quote_escapes(void **state)
{
    char out[128];

    json_quote_for_message(out, sizeof(out), "a\nb\rc\x01\x7f", 80);
    assert_string_equal(out, "\"a\\x0ab\\x0dc\\x01\\x7f\"");
    json_quote_for_message(out, sizeof(out), "say \"hi\" \\o/", 80);
    assert_string_equal(out, "\"say \\\"hi\\\" \\\\o/\"");
    json_quote_for_message(out, sizeof(out), "", 80);
    assert_string_equal(out, "\"\"");
}

static void test_json_quote_truncates(void **state)
{
    char out[128];

    json_quote_for_message(out, sizeof(out), "abcdefgh", 3);
    assert_string_equal(out, "\"abc...\"");
    json_quote_for_message(out, sizeof(out), "abc", 3);
    assert_string_equal(out, "\"abc\"");
    json_quote_for_message(out, sizeof(out), "a\nbcdef", 2);
    assert_string_equal(out, "\"a\\x0a...\"");
}

static void test_json_quote_small_buffer(void **state)
{
    static const char long_text[] = "abcdefghijklmnopqrstuvwxyz\n\n\n\n\n\n\n\n";
    char out[64];

    for (size_t len = 8; len <= 20; len++) {
        memset(out, 'Z', sizeof(out));
        json_quote_for_message(out, len, long_text, 80);
        assert_true(strlen(out) < len);
        assert_int_equal(out[0], '"');
        assert_int_equal(out[strlen(out) - 1], '"');
        assert_int_equal(out[len], 'Z');
    }
    json_quote_for_message(out, 4, long_text, 80);
    assert_string_equal(out, "");
}

static void test_json_gen_helpers(void **state)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", "a\"b");
    json_gen_kv_str(gen, "none", NULL);
    json_gen_kv_int(gen, "n", -42);
    yajl_gen_map_close(gen);
    char *out = json_gen_finish(gen);
    assert_string_equal(out, "{\"id\":\"a\\\"b\",\"none\":null,\"n\":-42}");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_error_hides_input),
        cmocka_unit_test(test_json_error_unterminated_string),
        cmocka_unit_test(test_json_error_names_offset),
        cmocka_unit_test(test_json_error_trailing_text),
        cmocka_unit_test(test_json_length_not_nul),
        cmocka_unit_test(test_json_depth_limit),
        cmocka_unit_test(test_json_depth_objects),
        cmocka_unit_test(test_json_nul_in_string),
        cmocka_unit_test(test_json_numbers_exact),
        cmocka_unit_test(test_json_number_values),
        cmocka_unit_test(test_json_duplicate_keys_kept),
        cmocka_unit_test(test_json_many_elements),
        cmocka_unit_test(test_json_error_frees_partial_tree),
        cmocka_unit_test(test_json_top_level_scalar),
        cmocka_unit_test(test_json_strings_round_trip),
        cmocka_unit_test(test_json_get_values),
        cmocka_unit_test(test_json_type_names),
        cmocka_unit_test(test_json_quote_escapes),
        cmocka_unit_test(test_json_quote_truncates),
        cmocka_unit_test(test_json_quote_small_buffer),
        cmocka_unit_test(test_json_gen_helpers),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
