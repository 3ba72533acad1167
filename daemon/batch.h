/* Batching jobs into requests: groups of compatible jobs, the in-flight limits, and what each response means. */
#ifndef CERTQD_BATCH_H
#define CERTQD_BATCH_H

#include <stddef.h>
#include <yajl/yajl_gen.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct held_job;
struct batch;

/* Adds an accepted job to its group and sends what is ready. */
void batch_add_job(struct daemon *d, struct held_job *hj);
/* Handles a job whose earlier request may have reached cPanel without a response. */
void batch_add_in_doubt(struct daemon *d, struct held_job *hj);
/* Sends every waiting batch that now fits the limits. */
void batch_dispatch(struct daemon *d);
/* Points server states at the reloaded config. */
void batch_config_changed(struct daemon *d);

/* The submitter's report of a finished transfer. */
struct transfer_result {
    long http_status;          /* 0 when no HTTP response came */
    int curl_code;
    const char *curl_error;
    bool request_sent;         /* bytes of the request left this host */
    const char *body;
    size_t body_len;
    bool truncated;            /* the response passed max_response_bytes */
    int64_t retry_after_s;     /* -1 when absent */
    int64_t duration_ms;
};

/* Decides the outcome of each job of b from its transfer, writes it, and frees b. */
void batch_finish(struct batch *b, const struct transfer_result *tr);

/* Returns every job that has not been sent yet to the queue, for shutdown. */
void batch_release_unsent(struct daemon *d);
/* Frees groups, accounts and servers at exit. */
void batch_free_all(struct daemon *d);

/*
 * Writes the groups whose jobs wait in memory to gen, as an array of at most
 * max objects: server, user, jobs, certificates, waited_ms and why they wait.
 * Returns the number of waiting groups, all of them counted.
 */
size_t batch_status_waiting(struct daemon *d, yajl_gen gen, size_t max);

#endif
