/* A certificate order job: parsing and validation of the JSON that producers push. */
#ifndef CERTQD_JOB_H
#define CERTQD_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_MAX 128
#define JOB_MAX_CERTIFICATES 1000

struct job_cert {
    char *json;             /* the certificate object as sent to cPanel, unknown fields kept */
    char *product_id;
    char **names;           /* subject names, lowercased, for matching pending orders */
    size_t name_count;
    bool has_vhosts;
};

struct job {
    char *id;
    bool id_generated;
    char *server;
    char *user;             /* NULL when the job names no account */
    char *provider;
    char *access_token;
    char *url_after_checkout;
    char *reply_to;
    bool batch;
    struct job_cert *certs;
    size_t cert_count;
};

struct job_limits {
    size_t max_bytes;
    const char *reply_prefix;
};

/*
 * Parses and validates one job payload.  On success returns the job; on failure
 * returns NULL and writes into err a message that names the field and value
 * (never the access token).  A job without an id gets a generated UUID.
 */
struct job *job_parse(const char *payload, size_t len, const struct job_limits *limits,
                      char *err, size_t err_len);
void job_free(struct job *job);

/*
 * Returns a copy of payload with the access_token value replaced, for the
 * dead-letter list and for logs.  Works on invalid JSON too, by a textual scan.
 */
char *job_redact_payload(const char *payload, size_t len);

/* Returns the payload with "id" set to job->id, for jobs whose id certqd generated. */
char *job_payload_with_id(const char *payload, size_t len, const char *id);

/*
 * Reads the id and reply_to of a payload that failed validation, so its failure
 * can still be reported.  Each comes back only when it is valid (reply_to must
 * start with reply_prefix); otherwise NULL.
 */
void job_peek(const char *payload, size_t len, const char *reply_prefix, char **id, char **reply_to);

bool job_id_valid(const char *id);
bool job_dns_name_valid(const char *name);

#endif
