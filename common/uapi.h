/* The cPanel UAPI wire format for the Market functions: form encoding and both response envelopes. */
#ifndef CERTQD_UAPI_H
#define CERTQD_UAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct uapi_order_request {
    const char *whm_account;        /* the account for the WHM route; NULL on the cPanel route */
    const char *provider;
    const char *access_token;
    const char *url_after_checkout; /* may be NULL */
    const char *const *certificates; /* JSON objects, one "certificate" parameter each */
    size_t certificate_count;
};

/* Appends the application/x-www-form-urlencoded body of a request_ssl_certificates call. */
void uapi_encode_order(struct buf *out, const struct uapi_order_request *req);
/* Appends the body of a get_pending_ssl_certificates call (WHM route when whm_account is set). */
void uapi_encode_pending(struct buf *out, const char *whm_account);
/* Appends s URI-encoded: unreserved characters as they are, everything else as %XX. */
void uapi_urlencode(struct buf *out, const char *s);

enum uapi_outcome {
    UAPI_SUCCESS,      /* status 1 with one certificate entry per requested certificate */
    UAPI_REJECTED,     /* status 0: cPanel ran the function and refused; nothing was ordered */
    UAPI_MISMATCH,     /* status 1 but the data does not match the request: an order may exist */
    UAPI_UNREADABLE,   /* not JSON or not a UAPI envelope */
    UAPI_BAD_ACCOUNT,  /* the WHM route's top-level error for an unknown cpanel_jsonapi_user */
};

struct uapi_cert_result {
    char *key_id;
    char *order_item_id;
};

struct uapi_order_result {
    enum uapi_outcome outcome;
    char *order_id;
    char *checkout_url;
    struct uapi_cert_result *certs;
    size_t cert_count;
    char *errors_json;     /* JSON array of cPanel's errors, or "[]" */
    char *messages_json;   /* JSON array of cPanel's messages, or "[]" */
    char *error_text;      /* errors joined with "; ", or a description of what was wrong */
};

/*
 * Parses a request_ssl_certificates response.  whm selects the nested envelope;
 * expected is the number of certificates requested.  Always fills res.
 */
void uapi_parse_order(const char *body, size_t len, bool whm, size_t expected, struct uapi_order_result *res);
void uapi_order_result_free(struct uapi_order_result *res);

struct uapi_pending_item {
    char *provider;
    char *order_id;
    char *order_item_id;
    char *product_id;
    char **names;
    size_t name_count;
    int64_t created_s;
};

struct uapi_pending_list {
    bool ok;
    char *error_text;
    struct uapi_pending_item *items;
    size_t count;
};

/* Parses a get_pending_ssl_certificates response in either envelope. */
void uapi_parse_pending(const char *body, size_t len, bool whm, struct uapi_pending_list *list);
void uapi_pending_list_free(struct uapi_pending_list *list);

#endif
