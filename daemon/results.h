/* Writing job states and final results to Redis: the job hash, reply list, events, stats and dead letters. */
#ifndef CERTQD_RESULTS_H
#define CERTQD_RESULTS_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct held_job;
struct rcmds;

struct job_outcome {
    const char *state;            /* succeeded, failed or unknown */
    const char *error;            /* NULL on success */
    const char *error_kind;       /* invalid_job, rejected, auth, exhausted, ambiguous */
    const char *batch_id;
    const char *order_id;
    const char *checkout_url;
    const char *certificates_json; /* this job's {key_id, order_item_id} entries */
    const char *messages_json;
};

/* Appends the commands that record a final state for hj. */
void results_add_final(struct daemon *d, struct rcmds *c, struct held_job *hj, const struct job_outcome *o);
/* Appends the commands that park hj in the retry set until due_ms (wall clock). */
void results_add_retry(struct daemon *d, struct rcmds *c, struct held_job *hj, int64_t due_ms, const char *error);
/* Adds to a stats counter; the next results_commit writes the sum. */
void results_add_stat(struct daemon *d, struct rcmds *c, const char *counter, long long by);

/*
 * Adds the held-entry deletions and counters of the jobs and appends c to the
 * journal.  Once the journal's worker thread has synced it, c goes to Redis as
 * one transaction, and the jobs leave memory when Redis confirms it.  Takes
 * ownership of c and of the jobs array.
 */
void results_commit(struct daemon *d, struct rcmds *c, struct held_job **jobs, size_t count);

/* Syncs the journal and sends every outcome waiting for it, at once. */
void results_flush(struct daemon *d);
void results_shutdown(void);
/* Sends again the outcomes the journal kept from an earlier run, and compacts it. */
void results_replay_journal(struct daemon *d);

/* Records an invalid payload in the dead-letter list, reports it, and releases hj. */
void results_dead_letter(struct daemon *d, struct held_job *hj, const char *error);

/* Builds the result document pushed to reply_to and published on events. */
char *results_document(const char *id, const struct job_outcome *o, int attempts);

#endif
