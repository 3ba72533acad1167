/* Unit tests of the mock's form decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/mock/form.h"

static void decode_ok(const char *body, struct form *form)
{
	long error_offset = 0;

	assert_int_equal(form_decode(body, strlen(body), form, &error_offset), 0);
	assert_int_equal(error_offset, -1);
}

static void assert_field(const struct form *form, size_t i, const char *name,
    const char *value)
{
	assert_true(i < form->count);
	assert_string_equal(form->fields[i].name, name);
	assert_int_equal(form->fields[i].name_len, strlen(name));
	assert_string_equal(form->fields[i].value, value);
	assert_int_equal(form->fields[i].value_len, strlen(value));
}

static void test_form_plain_pairs(void **unused)
{
	struct form form;

	decode_ok("provider=cPStore&access_token=abc-123", &form);
	assert_int_equal(form.count, 2);
	assert_field(&form, 0, "provider", "cPStore");
	assert_field(&form, 1, "access_token", "abc-123");
	form_free(&form);
}

static void test_form_percent_and_plus(void **unused)
{
	struct form form;

	decode_ok("certificate=%7B%22a%22%3A+1%7d&x%2By=a+b%2Bc", &form);
	assert_int_equal(form.count, 2);
	assert_field(&form, 0, "certificate", "{\"a\": 1}");
	assert_field(&form, 1, "x+y", "a b+c");
	form_free(&form);
}

static void test_form_keeps_order_and_repeats(void **unused)
{
	struct form form;

	decode_ok("certificate=A&provider=p&certificate-0=B&certificate=C", &form);
	assert_int_equal(form.count, 4);
	assert_field(&form, 0, "certificate", "A");
	assert_field(&form, 2, "certificate-0", "B");
	assert_field(&form, 3, "certificate", "C");
	assert_string_equal(form_get(&form, "certificate"), "A");
	assert_null(form_get(&form, "missing"));
	form_free(&form);
}

static void test_form_empty_parts(void **unused)
{
	struct form form;

	decode_ok("&&a=&b&=v&", &form);
	assert_int_equal(form.count, 3);
	assert_field(&form, 0, "a", "");
	assert_field(&form, 1, "b", "");
	assert_field(&form, 2, "", "v");
	form_free(&form);

	decode_ok("", &form);
	assert_int_equal(form.count, 0);
	form_free(&form);
}

static void test_form_value_keeps_equals(void **unused)
{
	struct form form;

	decode_ok("token=a=b==", &form);
	assert_int_equal(form.count, 1);
	assert_field(&form, 0, "token", "a=b==");
	form_free(&form);
}

static void test_form_embedded_nul(void **unused)
{
	struct form form;

	decode_ok("v=a%00b", &form);
	assert_int_equal(form.count, 1);
	assert_int_equal(form.fields[0].value_len, 3);
	assert_memory_equal(form.fields[0].value, "a\0b", 4);
	form_free(&form);
}

static void test_form_all_bytes_round_trip(void **unused)
{
	char body[3 * 256 + 3];
	char *p = body;
	struct form form;

	p += sprintf(p, "v=");
	for (int b = 0; b < 256; b++)
		p += sprintf(p, "%%%02X", b);

	decode_ok(body, &form);
	assert_int_equal(form.count, 1);
	assert_int_equal(form.fields[0].value_len, 256);
	for (int b = 0; b < 256; b++)
		assert_int_equal((unsigned char)form.fields[0].value[b], b);
	form_free(&form);
}

static void test_form_length_not_nul(void **unused)
{
	struct form form;
	long error_offset;

	/* Only the first LEN bytes count, even without a NUL after them. */
	assert_int_equal(form_decode("a=1&b=2", 3, &form, &error_offset), 0);
	assert_int_equal(form.count, 1);
	assert_field(&form, 0, "a", "1");
	form_free(&form);
}

static void test_form_invalid_escapes(void **unused)
{
	static const struct {
		const char *body;
		long offset;
	} cases[] = {
		{ "a=%", 2 },
		{ "a=%4", 2 },
		{ "a=%zz", 2 },
		{ "a=1&b%g0=2", 5 },
		{ "a=%4%41", 2 },
	};
	struct form form;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long error_offset = 0;

		assert_int_equal(form_decode(cases[i].body, strlen(cases[i].body),
		    &form, &error_offset), -1);
		assert_int_equal(error_offset, cases[i].offset);
		assert_int_equal(form.count, 0);
		assert_null(form.fields);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_plain_pairs),
		cmocka_unit_test(test_form_percent_and_plus),
		cmocka_unit_test(test_form_keeps_order_and_repeats),
		cmocka_unit_test(test_form_empty_parts),
		cmocka_unit_test(test_form_value_keeps_equals),
		cmocka_unit_test(test_form_embedded_nul),
		cmocka_unit_test(test_form_all_bytes_round_trip),
		cmocka_unit_test(test_form_length_not_nul),
		cmocka_unit_test(test_form_invalid_escapes),
	};

	return cmocka_run_group_tests_name("mock form decoder", tests, NULL, NULL);
}
