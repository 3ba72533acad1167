/* Unit tests of the UAPI form encoding and both response envelopes (common/uapi.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/uapi.h"
#include "common/util.h"

#define TOKEN "725431a1-d5bc-11e5-a28b-8b0e09a93f05"

/* The success data of cPanel's documented example, with null for Perl's undef. */
#define SUCCESS_DATA                                                                            \
    "{\"checkout_url\":\"http://store.example.com/showmethemoney.cgi\",\"certificates\":["    \
    "{\"key_id\":\"ac90f_639fd_6c236062f0d7a4579a30e01612c4cee0\",\"order_item_id\":\"12345\"}," \
    "{\"key_id\":\"ac90f_639fd_6c236062f0d7a4579a30e01612c4cee1\",\"order_item_id\":\"67890\"}]," \
    "\"order_id\":\"8675309\"}"

#define SUCCESS_FLAT "{\"data\":" SUCCESS_DATA ",\"errors\":null,\"messages\":null,\"metadata\":{},\"status\":1}"

#define WHM_WRAP(result) "{\"apiversion\":3,\"func\":\"request_ssl_certificates\",\"module\":\"Market\",\"result\":" result "}"

static const char *const two_certs[] = {
    "{\"product_id\":143,\"subject_names\":[[\"dNSName\",\"example.com\"]],\"price\":6}",
    "{\"product_id\":\"176\",\"price\":3}",
};

static void parse_order(const char *body, bool whm, size_t expected, struct uapi_order_result *res)
{
    uapi_parse_order(body, strlen(body), whm, expected, res);
}

static void assert_documented_success(const struct uapi_order_result *res)
{
    assert_int_equal(res->outcome, UAPI_SUCCESS);
    assert_string_equal(res->order_id, "8675309");
    assert_string_equal(res->checkout_url, "http://store.example.com/showmethemoney.cgi");
    assert_int_equal(res->cert_count, 2);
    assert_string_equal(res->certs[0].key_id, "ac90f_639fd_6c236062f0d7a4579a30e01612c4cee0");
    assert_string_equal(res->certs[0].order_item_id, "12345");
    assert_string_equal(res->certs[1].key_id, "ac90f_639fd_6c236062f0d7a4579a30e01612c4cee1");
    assert_string_equal(res->certs[1].order_item_id, "67890");
    assert_string_equal(res->errors_json, "[]");
    assert_string_equal(res->messages_json, "[]");
    assert_null(res->error_text);
}

static void test_uapi_encode_order_cpanel(void **state)
{
    struct uapi_order_request req = {
        .provider = "cPStore",
        .access_token = TOKEN,
        .url_after_checkout = "https://panel.example.com/ssl/done",
        .certificates = two_certs,
        .certificate_count = 2,
    };
    struct buf out;

    buf_init(&out);
    uapi_encode_order(&out, &req);
    assert_string_equal(out.data,
                        "provider=cPStore&access_token=" TOKEN
                        "&url_after_checkout=https%3A%2F%2Fpanel.example.com%2Fssl%2Fdone"
                        "&certificate=%7B%22product_id%22%3A143%2C%22subject_names%22%3A%5B%5B%22dNSName%22%2C"
                        "%22example.com%22%5D%5D%2C%22price%22%3A6%7D"
                        "&certificate=%7B%22product_id%22%3A%22176%22%2C%22price%22%3A3%7D");
    buf_free(&out);
}

static void test_uapi_encode_order_whm(void **state)
{
    struct uapi_order_request req = {
        .whm_account = "bob",
        .provider = "cPStore",
        .access_token = TOKEN,
        .certificates = two_certs,
        .certificate_count = 1,
    };
    struct buf out;

    buf_init(&out);
    uapi_encode_order(&out, &req);
    assert_string_equal(out.data,
                        "cpanel_jsonapi_user=bob&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=Market"
                        "&cpanel_jsonapi_func=request_ssl_certificates&provider=cPStore&access_token=" TOKEN
                        "&certificate=%7B%22product_id%22%3A143%2C%22subject_names%22%3A%5B%5B%22dNSName%22%2C"
                        "%22example.com%22%5D%5D%2C%22price%22%3A6%7D");
    buf_free(&out);
}

static void test_uapi_encode_certificate_order(void **state)
{
    static const char *const certs[] = { "A", "B", "C" };
    struct uapi_order_request req = {
        .provider = "p",
        .access_token = "t",
        .certificates = certs,
        .certificate_count = 3,
    };
    struct buf out;

    buf_init(&out);
    uapi_encode_order(&out, &req);
    assert_string_equal(out.data, "provider=p&access_token=t&certificate=A&certificate=B&certificate=C");
    buf_free(&out);
}

static void test_uapi_encode_pending(void **state)
{
    struct buf out;

    buf_init(&out);
    uapi_encode_pending(&out, NULL);
    assert_int_equal(out.len, 0);
    uapi_encode_pending(&out, "bob");
    assert_string_equal(out.data, "cpanel_jsonapi_user=bob&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=Market"
                                  "&cpanel_jsonapi_func=get_pending_ssl_certificates");
    buf_free(&out);
}

static void test_uapi_urlencode_reserved(void **state)
{
    struct buf out;

    buf_init(&out);
    uapi_urlencode(&out, ":/?#[]@!$&'()*+,;=");
    assert_string_equal(out.data, "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D");
    buf_reset(&out);
    uapi_urlencode(&out, " %\"<>\\^`{|}\n\x7f\xc3\xa9");
    assert_string_equal(out.data, "%20%25%22%3C%3E%5C%5E%60%7B%7C%7D%0A%7F%C3%A9");
    buf_reset(&out);
    uapi_urlencode(&out, "AZaz09-._~");
    assert_string_equal(out.data, "AZaz09-._~");
    buf_reset(&out);
    uapi_urlencode(&out, "");
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

static void test_uapi_order_documented(void **state)
{
    struct uapi_order_result res;

    parse_order(SUCCESS_FLAT, false, 2, &res);
    assert_documented_success(&res);
    uapi_order_result_free(&res);
}

static void test_uapi_order_whm_envelope(void **state)
{
    struct uapi_order_result res;

    parse_order(WHM_WRAP(SUCCESS_FLAT), true, 2, &res);
    assert_documented_success(&res);
    uapi_order_result_free(&res);
}

static void test_uapi_order_numeric_ids(void **state)
{
    static const char body[] =
        "{\"status\":\"1\",\"data\":{\"order_id\":8675309,\"checkout_url\":\"https://store.example.com/c\","
        "\"certificates\":[{\"key_id\":\"k1\",\"order_item_id\":12345}]}}";
    struct uapi_order_result res;

    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_SUCCESS);
    assert_string_equal(res.order_id, "8675309");
    assert_int_equal(res.cert_count, 1);
    assert_string_equal(res.certs[0].key_id, "k1");
    assert_string_equal(res.certs[0].order_item_id, "12345");
    uapi_order_result_free(&res);
}

static void test_uapi_order_rejected(void **state)
{
    static const char body[] =
        "{\"data\":null,\"errors\":[\"The price is wrong.\",\"No such product.\"],\"messages\":null,\"status\":0}";
    struct uapi_order_result res;

    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_REJECTED);
    assert_string_equal(res.error_text, "The price is wrong.; No such product.");
    assert_string_equal(res.errors_json, "[\"The price is wrong.\",\"No such product.\"]");
    assert_null(res.order_id);
    assert_int_equal(res.cert_count, 0);
    uapi_order_result_free(&res);
}

static void test_uapi_order_rejected_whm(void **state)
{
    struct uapi_order_result res;

    parse_order(WHM_WRAP("{\"status\":0,\"errors\":[\"Market provider disabled\"]}"), true, 1, &res);
    assert_int_equal(res.outcome, UAPI_REJECTED);
    assert_string_equal(res.error_text, "Market provider disabled");
    uapi_order_result_free(&res);
}

static void test_uapi_order_rejected_no_reason(void **state)
{
    struct uapi_order_result res;

    parse_order("{\"status\":0,\"errors\":null}", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_REJECTED);
    assert_string_equal(res.error_text, "cPanel refused the request without giving a reason");
    assert_string_equal(res.errors_json, "[]");
    uapi_order_result_free(&res);
}

static void test_uapi_order_fewer_certificates(void **state)
{
    struct uapi_order_result res;

    parse_order(SUCCESS_FLAT, false, 3, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text, "cPanel reported success with 2 certificate entries for 3 requested");
    assert_string_equal(res.order_id, "8675309");
    assert_int_equal(res.cert_count, 2);
    uapi_order_result_free(&res);
}

static void test_uapi_order_more_certificates(void **state)
{
    struct uapi_order_result res;

    parse_order(SUCCESS_FLAT, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text, "cPanel reported success with 2 certificate entries for 1 requested");
    uapi_order_result_free(&res);
}

static void test_uapi_order_missing_order_id(void **state)
{
    static const char body[] =
        "{\"status\":1,\"data\":{\"checkout_url\":\"https://s.example.com/\","
        "\"certificates\":[{\"key_id\":\"k\",\"order_item_id\":\"1\"}]}}";
    struct uapi_order_result res;

    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text, "cPanel reported success without an order_id");
    assert_null(res.order_id);
    uapi_order_result_free(&res);
}

static void test_uapi_order_incomplete_entry(void **state)
{
    static const char body[] =
        "{\"status\":1,\"data\":{\"order_id\":\"9\",\"certificates\":[{\"key_id\":\"k\"}]}}";
    struct uapi_order_result res;

    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text,
                        "cPanel reported success but a certificate entry lacks key_id or order_item_id");
    assert_string_equal(res.order_id, "9");
    uapi_order_result_free(&res);
}

static void test_uapi_order_missing_data(void **state)
{
    struct uapi_order_result res;

    parse_order("{\"status\":1,\"data\":null}", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text, "cPanel reported success without order data");
    uapi_order_result_free(&res);

    parse_order("{\"status\":1,\"data\":{\"order_id\":\"9\"}}", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_MISMATCH);
    assert_string_equal(res.error_text, "cPanel reported success without a certificates list");
    uapi_order_result_free(&res);
}

static void test_uapi_order_invalid_json(void **state)
{
    struct uapi_order_result res;

    parse_order("<html>502 Bad Gateway</html>", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    assert_true(str_has_prefix(res.error_text, "cPanel's response is not valid JSON: "));
    assert_string_equal(res.errors_json, "[]");
    assert_string_equal(res.messages_json, "[]");
    uapi_order_result_free(&res);
}

static void test_uapi_order_no_status(void **state)
{
    struct uapi_order_result res;

    parse_order("{\"data\":{}}", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    assert_string_equal(res.error_text, "cPanel's response has no status field");
    uapi_order_result_free(&res);

    parse_order("{\"status\":\"yes\"}", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    uapi_order_result_free(&res);

    parse_order("[1]", false, 1, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    uapi_order_result_free(&res);
}

static void test_uapi_order_flat_on_whm(void **state)
{
    struct uapi_order_result res;

    parse_order(SUCCESS_FLAT, true, 2, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    assert_string_equal(res.error_text, "cPanel's response has no result object with a status");
    assert_null(res.order_id);
    uapi_order_result_free(&res);
}

static void test_uapi_order_bad_account(void **state)
{
    static const char body[] =
        "{\"error\":\"User parameter is invalid or was not supplied\","
        "\"data\":{\"reason\":\"User parameter is invalid or was not supplied\",\"result\":\"0\"},\"type\":\"text\"}";
    struct uapi_order_result res;

    parse_order(body, true, 1, &res);
    assert_int_equal(res.outcome, UAPI_BAD_ACCOUNT);
    assert_string_equal(res.error_text, "User parameter is invalid or was not supplied");
    assert_string_equal(res.errors_json, "[]");
    uapi_order_result_free(&res);

    /* On the cPanel route the same body is not a UAPI envelope. */
    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_UNREADABLE);
    uapi_order_result_free(&res);
}

static void test_uapi_order_messages_kept(void **state)
{
    static const char body[] =
        "{\"status\":1,\"errors\":null,\"messages\":[\"The order was placed, but the pending queue was not updated.\"],"
        "\"data\":{\"order_id\":\"7\",\"checkout_url\":\"https://s.example.com/\","
        "\"certificates\":[{\"key_id\":\"k\",\"order_item_id\":\"1\"}]}}";
    struct uapi_order_result res;

    parse_order(body, false, 1, &res);
    assert_int_equal(res.outcome, UAPI_SUCCESS);
    assert_string_equal(res.messages_json, "[\"The order was placed, but the pending queue was not updated.\"]");
    assert_string_equal(res.errors_json, "[]");
    uapi_order_result_free(&res);
}

static void test_uapi_pending_flat(void **state)
{
    static const char body[] =
        "{\"status\":1,\"errors\":null,\"data\":[{\"provider\":\"cPStore\",\"order_id\":\"8675309\","
        "\"order_item_id\":12345,\"product_id\":143,\"created\":1700000000,\"subject_names\":["
        "\"Example.com\",[\"dNSName\",\"WWW.Example.com\"],{\"type\":\"dNSName\",\"name\":\"Mail.EXAMPLE.com\"}]}]}";
    struct uapi_pending_list list;

    uapi_parse_pending(body, strlen(body), false, &list);
    assert_true(list.ok);
    assert_null(list.error_text);
    assert_int_equal(list.count, 1);
    assert_string_equal(list.items[0].provider, "cPStore");
    assert_string_equal(list.items[0].order_id, "8675309");
    assert_string_equal(list.items[0].order_item_id, "12345");
    assert_string_equal(list.items[0].product_id, "143");
    assert_int_equal(list.items[0].created_s, 1700000000);
    assert_int_equal(list.items[0].name_count, 3);
    assert_string_equal(list.items[0].names[0], "example.com");
    assert_string_equal(list.items[0].names[1], "www.example.com");
    assert_string_equal(list.items[0].names[2], "mail.example.com");
    uapi_pending_list_free(&list);
}

static void test_uapi_pending_whm(void **state)
{
    static const char body[] =
        "{\"apiversion\":3,\"func\":\"get_pending_ssl_certificates\",\"module\":\"Market\",\"result\":"
        "{\"status\":1,\"data\":[{\"provider\":\"cPStore\",\"order_id\":1,\"order_item_id\":\"2\",\"created\":\"1700000001\","
        "\"subject_names\":[\"a.example.com\"]},{\"provider\":\"cPStore\",\"order_id\":3,\"order_item_id\":\"4\","
        "\"subject_names\":[]}]}}";
    struct uapi_pending_list list;

    uapi_parse_pending(body, strlen(body), true, &list);
    assert_true(list.ok);
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].order_id, "1");
    assert_int_equal(list.items[0].created_s, 1700000001);
    assert_int_equal(list.items[0].name_count, 1);
    assert_string_equal(list.items[0].names[0], "a.example.com");
    assert_string_equal(list.items[1].order_item_id, "4");
    assert_int_equal(list.items[1].name_count, 0);
    uapi_pending_list_free(&list);

    /* The WHM body read as a flat one has no status. */
    uapi_parse_pending(body, strlen(body), false, &list);
    assert_false(list.ok);
    uapi_pending_list_free(&list);
}

static void test_uapi_pending_empty(void **state)
{
    static const char body[] = "{\"status\":1,\"data\":[]}";
    struct uapi_pending_list list;

    uapi_parse_pending(body, strlen(body), false, &list);
    assert_true(list.ok);
    assert_int_equal(list.count, 0);
    uapi_pending_list_free(&list);
}

static void test_uapi_pending_errors(void **state)
{
    static const char rejected[] = "{\"status\":0,\"errors\":[\"Feature disabled\",\"Try later\"]}";
    static const char no_array[] = "{\"status\":1,\"data\":{}}";
    struct uapi_pending_list list;

    uapi_parse_pending(rejected, strlen(rejected), false, &list);
    assert_false(list.ok);
    assert_string_equal(list.error_text, "Feature disabled; Try later");
    uapi_pending_list_free(&list);

    uapi_parse_pending(no_array, strlen(no_array), false, &list);
    assert_false(list.ok);
    assert_string_equal(list.error_text, "cPanel's pending list is not an array");
    uapi_pending_list_free(&list);

    uapi_parse_pending("not json", 8, false, &list);
    assert_false(list.ok);
    assert_string_equal(list.error_text, "cPanel's response is not a UAPI envelope");
    assert_int_equal(list.count, 0);
    uapi_pending_list_free(&list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uapi_encode_order_cpanel),
        cmocka_unit_test(test_uapi_encode_order_whm),
        cmocka_unit_test(test_uapi_encode_certificate_order),
        cmocka_unit_test(test_uapi_encode_pending),
        cmocka_unit_test(test_uapi_urlencode_reserved),
        cmocka_unit_test(test_uapi_order_documented),
        cmocka_unit_test(test_uapi_order_whm_envelope),
        cmocka_unit_test(test_uapi_order_numeric_ids),
        cmocka_unit_test(test_uapi_order_rejected),
        cmocka_unit_test(test_uapi_order_rejected_whm),
        cmocka_unit_test(test_uapi_order_rejected_no_reason),
        cmocka_unit_test(test_uapi_order_fewer_certificates),
        cmocka_unit_test(test_uapi_order_more_certificates),
        cmocka_unit_test(test_uapi_order_missing_order_id),
        cmocka_unit_test(test_uapi_order_incomplete_entry),
        cmocka_unit_test(test_uapi_order_missing_data),
        cmocka_unit_test(test_uapi_order_invalid_json),
        cmocka_unit_test(test_uapi_order_no_status),
        cmocka_unit_test(test_uapi_order_flat_on_whm),
        cmocka_unit_test(test_uapi_order_bad_account),
        cmocka_unit_test(test_uapi_order_messages_kept),
        cmocka_unit_test(test_uapi_pending_flat),
        cmocka_unit_test(test_uapi_pending_whm),
        cmocka_unit_test(test_uapi_pending_empty),
        cmocka_unit_test(test_uapi_pending_errors),
    };

    return cmocka_run_group_tests_name("uapi", tests, NULL, NULL);
}
