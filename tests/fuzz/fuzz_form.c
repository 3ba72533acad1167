/*
 * Fuzzes the round trip of a request_ssl_certificates body: uapi_encode_order
 * on both routes, then the mock's form_decode, which must give back every
 * name and value byte for byte and in order.
 *
 * Input: a flags byte, then NUL-separated strings: WHM account, provider,
 * token, url_after_checkout, and up to four certificates.  Bit 0 of the
 * flags leaves url_after_checkout out; bits 1-2 pick 1-4 certificates.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/uapi.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"
#include "tests/mock/form.h"

#define MAX_CERTS 4
#define MAX_PIECES (4 + MAX_CERTS)
#define MAX_PARAMS (8 + MAX_CERTS)

struct param {
    const char *name;
    const char *value;
};

static void check_field(const struct form_field *f, const struct param *want, size_t i)
{
    size_t name_len = strlen(want->name);
    size_t value_len = strlen(want->value);

    FUZZ_CHECK(f->name_len == name_len && memcmp(f->name, want->name, name_len) == 0,
               "field %zu: name differs from %s", i, want->name);
    FUZZ_CHECK(f->value_len == value_len && memcmp(f->value, want->value, value_len) == 0,
               "field %zu (%s): value differs after the round trip", i, want->name);
}

static void round_trip(const struct uapi_order_request *req)
{
    struct param want[MAX_PARAMS];
    size_t n = 0;
    struct buf body;
    struct form form;
    long error_offset;

    if (req->whm_account) {
        want[n++] = (struct param){ "cpanel_jsonapi_user", req->whm_account };
        want[n++] = (struct param){ "cpanel_jsonapi_apiversion", "3" };
        want[n++] = (struct param){ "cpanel_jsonapi_module", "Market" };
        want[n++] = (struct param){ "cpanel_jsonapi_func", "request_ssl_certificates" };
    }
    want[n++] = (struct param){ "provider", req->provider };
    want[n++] = (struct param){ "access_token", req->access_token };
    if (req->url_after_checkout)
        want[n++] = (struct param){ "url_after_checkout", req->url_after_checkout };
    for (size_t i = 0; i < req->certificate_count; i++)
        want[n++] = (struct param){ "certificate", req->certificates[i] };

    buf_init(&body);
    uapi_encode_order(&body, req);
    int rc = form_decode(body.data, body.len, &form, &error_offset);
    FUZZ_CHECK(rc == 0, "form_decode rejected the encoder's output at byte %ld", error_offset);
    if (rc == 0) {
        FUZZ_CHECK(form.count == n, "%zu fields decoded for %zu encoded", form.count, n);
        for (size_t i = 0; i < n && i < form.count; i++)
            check_field(&form.fields[i], &want[i], i);
        form_free(&form);
    }
    buf_free(&body);
}

int fuzz_form(const uint8_t *data, size_t size)
{
    const char *pieces[MAX_PIECES];
    size_t count = 0;

    if (size == 0)
        return 0;
    uint8_t flags = data[0];

    /* Copy the rest with a final NUL, so the last piece ends like the others. */
    char *text = xstrndup((const char *)data + 1, size - 1);
    const char *p = text;
    const char *end = text + size - 1;
    while (count < MAX_PIECES) {
        pieces[count++] = p;
        const char *nul = memchr(p, '\0', (size_t)(end - p) + 1);
        if (nul == end)
            break;
        p = nul + 1;
    }
    while (count < MAX_PIECES)
        pieces[count++] = "";

    struct uapi_order_request req = {
        .whm_account = NULL,
        .provider = pieces[1],
        .access_token = pieces[2],
        .url_after_checkout = (flags & 1) ? NULL : pieces[3],
        .certificates = &pieces[4],
        .certificate_count = 1 + (size_t)((flags >> 1) & 3),
    };
    round_trip(&req);
    req.whm_account = pieces[0];
    round_trip(&req);

    free(text);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_form(data, size);
}
#endif
