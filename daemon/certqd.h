/* certqd's shared state: the daemon, jobs held in memory, batching groups and requests. */
#ifndef CERTQD_CERTQD_H
#define CERTQD_CERTQD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/config.h"
#include "common/hmap.h"
#include "common/job.h"
#include "common/util.h"

#define CERTQD_VERSION "0.1.0"

struct daemon;
struct redisq;
struct submitter;
struct group;
struct batch;
struct journal;
struct metrics;

/* A job taken from Redis and held in memory until its request has a final response. */
struct held_job {
    TAILQ_ENTRY(held_job) link;
    struct daemon *d;
    char *seq;               /* its field in this instance's held hash */
    char *payload;           /* the payload as stored in Redis, id included */
    struct job *job;         /* NULL until parsed */
    int attempts;            /* requests already sent for it */
    int reconcile_reads;     /* failed reads of the pending list so far */
    int64_t first_attempt_ms;
    int64_t arrived_ms;      /* monotonic time it joined its group */
    bool solo;               /* send alone: a batch it was in was refused */
};
TAILQ_HEAD(job_list, held_job);

/* One (server, account) pair: cPanel serialises orders per account, so requests are limited here. */
struct account {
    char *key;
    int in_flight;
    int64_t busy_until_ms;   /* another instance holds the account's lease */
    TAILQ_HEAD(, group) groups;
};

/* Jobs that can share one request: same server, account, provider, access token and checkout URL. */
struct group {
    TAILQ_ENTRY(group) blocked_link;   /* in the daemon's list of groups waiting for capacity */
    TAILQ_ENTRY(group) account_link;   /* in its account's list of groups */
    char *key;
    struct daemon *d;
    char *server;
    char *user;              /* the cPanel account the request acts for */
    char *provider;
    char *access_token;
    char *url_after_checkout;
    struct account *account;
    struct server_state *server_state;
    struct job_list pending;
    size_t pending_jobs;
    size_t pending_certs;
    struct event *wait_timer;  /* fires batch_wait_ms after the oldest pending job arrived */
    bool blocked;
    int batches_in_flight;
};
TAILQ_HEAD(group_list, group);

/* Per-server run-time state, kept across reloads by name. */
struct server_state {
    char *name;
    const struct server_config *cfg;  /* NULL once a reload removed the server */
    int in_flight;
    int consecutive_failures;
    int64_t paused_until_ms;
    char *pause_reason;
};

enum batch_phase { BATCH_MARKING, BATCH_SENDING, BATCH_DONE };

/* One request_ssl_certificates call and the jobs whose certificates it carries. */
struct batch {
    char id[37];
    struct daemon *d;
    struct group *group;
    struct server_state *server;
    struct server_config server_cfg;  /* copied at send time: a reload does not change a running request */
    struct job_list jobs;
    size_t job_count;
    size_t cert_count;
    enum batch_phase phase;
    void *transfer;                   /* the submitter's handle */
    int64_t started_ms;
    bool abandoned;                   /* shutdown gave up waiting for it */
};

struct stats {
    uint64_t received, succeeded, failed, unknown, duplicates, retries, requests, certificates, splits, invalid;
};

#define DURATION_BUCKETS 12
#define SIZE_BUCKETS 8

/* A Prometheus histogram with fixed upper bounds. */
struct histogram {
    uint64_t counts[DURATION_BUCKETS + 1];
    uint64_t count;
    double sum;
};

/* Figures read from Redis every second, for the metrics and the systemd status. */
struct queue_figures {
    long long queue, retry, reconcile, dead;
    long long event_subscribers;
    bool known;
};

struct daemon {
    struct event_base *base;
    struct config *cfg;
    char instance_id[128];
    char hostname[64];
    int64_t started_ms;

    struct redisq *rq;
    struct submitter *sub;
    struct journal *journal;

    struct hmap held;          /* seq -> held_job, for every job in this instance's memory */
    size_t held_count;
    uint64_t next_seq;

    struct hmap groups;        /* group key -> group */
    struct hmap accounts;      /* server + user -> account */
    struct hmap servers;       /* name -> server_state */
    struct group_list blocked; /* ready groups waiting for a server, the total limit, or a lease */
    int in_flight;

    struct stats stats;
    struct histogram request_seconds;
    struct histogram request_certificates;
    struct queue_figures figures;
    struct metrics *metrics;
    bool stopping;
    bool stop_now;
    struct event *shutdown_timer;
    struct event *stop_check;
    struct event *sig_int, *sig_term, *sig_hup;
    int exit_code;
};

/* queue.c: jobs from Redis to groups */
void queue_take_items(struct daemon *d, char **seqs, char **payloads, size_t count);
void queue_job_release(struct daemon *d, struct held_job *hj);

/* main.c */
void daemon_check_stopped(struct daemon *d);

#endif
