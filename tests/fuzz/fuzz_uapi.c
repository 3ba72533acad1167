/*
 * Fuzzes the parsers of cPanel's responses: uapi_parse_order on both routes
 * (the first input byte sets the number of certificates requested) and
 * uapi_parse_pending, with checks on what each result promises.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/uapi.h"
#include "tests/fuzz/fuzz.h"

static bool is_json(const char *s)
{
    char err[160];
    yajl_val v = json_parse(s, strlen(s), err, sizeof(err));

    if (v == NULL)
        return false;
    yajl_tree_free(v);
    return true;
}

static void check_order(const char *body, size_t len, bool whm, size_t expected)
{
    struct uapi_order_result res;

    uapi_parse_order(body, len, whm, expected, &res);
    FUZZ_CHECK(res.errors_json && is_json(res.errors_json), "errors_json is not JSON");
    FUZZ_CHECK(res.messages_json && is_json(res.messages_json), "messages_json is not JSON");
    if (res.outcome == UAPI_SUCCESS) {
        FUZZ_CHECK(res.order_id != NULL, "success without an order_id");
        FUZZ_CHECK(res.cert_count == expected, "success with %zu certificates for %zu requested", res.cert_count,
                   expected);
        for (size_t i = 0; i < res.cert_count; i++)
            FUZZ_CHECK(res.certs[i].key_id && res.certs[i].order_item_id, "success entry %zu lacks an id", i);
        FUZZ_CHECK(res.error_text == NULL, "success with an error text");
    } else {
        FUZZ_CHECK(res.error_text != NULL, "outcome %d without an error text", (int)res.outcome);
    }
    FUZZ_CHECK(whm || res.outcome != UAPI_BAD_ACCOUNT, "the cPanel route reported a WHM account error");
    uapi_order_result_free(&res);
}

static void check_pending(const char *body, size_t len, bool whm)
{
    struct uapi_pending_list list;

    uapi_parse_pending(body, len, whm, &list);
    FUZZ_CHECK(list.ok || list.error_text != NULL, "pending list failed without an error text");
    FUZZ_CHECK(list.ok || list.count == 0, "failed pending list has %zu items", list.count);
    for (size_t i = 0; i < list.count; i++) {
        /* The daemon multiplies created_s by 1000, so it must stay within the years 1970-9999. */
        FUZZ_CHECK(list.items[i].created_s >= 0 && list.items[i].created_s <= 253402300799LL,
                   "pending item %zu has created_s %lld", i, (long long)list.items[i].created_s);
        for (size_t j = 0; j < list.items[i].name_count; j++)
            FUZZ_CHECK(list.items[i].names[j] != NULL, "pending item %zu has a NULL name", i);
    }
    uapi_pending_list_free(&list);
}

int fuzz_uapi(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;

    /* 0-7 certificates covers the empty request and counts above what a response lists. */
    size_t expected = data[0] % 8;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    check_order(body, len, false, expected);
    check_order(body, len, true, expected);
    check_pending(body, len, false);
    check_pending(body, len, true);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_uapi(data, size);
}
#endif
