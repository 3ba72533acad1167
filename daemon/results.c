/* Writing job states and final results to Redis: the job hash, reply list, events, stats and dead letters. */
#include "daemon/results.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/certqd.h"
#include "daemon/journal.h"
#include "daemon/redisq.h"

/*
 * Writes json, which certqd itself serialised, as the value of key without
 * parsing it again: yajl_gen_number copies its argument unchanged, so it serves
 * for any value.  NULL writes an empty array.
 */
static void gen_raw_json(yajl_gen gen, const char *key, const char *json)
{
    json_gen_str(gen, key);
    if (json == NULL) {
        yajl_gen_array_open(gen);
        yajl_gen_array_close(gen);
        return;
    }
    yajl_gen_number(gen, json, strlen(json));
}

char *results_document(const char *id, const struct job_outcome *o, int attempts)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", id);
    json_gen_kv_str(gen, "state", o->state);
    json_gen_kv_str(gen, "order_id", o->order_id);
    json_gen_kv_str(gen, "checkout_url", o->checkout_url);
    gen_raw_json(gen, "certificates", o->certificates_json);
    gen_raw_json(gen, "messages", o->messages_json);
    json_gen_kv_str(gen, "error", o->error);
    json_gen_kv_str(gen, "error_kind", o->error_kind);
    json_gen_kv_int(gen, "attempts", attempts);
    if (o->batch_id)
        json_gen_kv_str(gen, "batch_id", o->batch_id);
    yajl_gen_map_close(gen);
    return json_gen_finish(gen);
}

static void key_for(struct daemon *d, char *out, size_t len, const char *kind, const char *id)
{
    snprintf(out, len, "%s:%s:%s", d->cfg->key_prefix, kind, id);
}

#define MAX_COUNTERS 16

/*
 * Counter increments of the outcome being built.  Outcomes are built and
 * committed in one go on the single loop thread, so results_commit turns them
 * into one HINCRBY per counter instead of one per job.
 */
static struct {
    const char *name;
    long long by;
} counters[MAX_COUNTERS];
static size_t counter_count;

void results_add_stat(struct daemon *d, struct rcmds *c, const char *counter, long long by)
{
    for (size_t i = 0; i < counter_count; i++)
        if (!strcmp(counters[i].name, counter)) {
            counters[i].by += by;
            return;
        }
    if (counter_count < MAX_COUNTERS) {
        counters[counter_count].name = counter;
        counters[counter_count].by = by;
        counter_count++;
    }
}

static void add_counters(struct daemon *d, struct rcmds *c)
{
    char key[256];

    snprintf(key, sizeof(key), "%s:stats", d->cfg->key_prefix);
    for (size_t i = 0; i < counter_count; i++) {
        rcmds_cmd(c, "HINCRBY");
        rcmds_arg(c, key);
        rcmds_arg(c, counters[i].name);
        rcmds_argf(c, "%lld", counters[i].by);
    }
    counter_count = 0;
}

/* Deletes the held entries of all jobs of a commit with one HDEL. */
static void add_held_delete(struct daemon *d, struct rcmds *c, struct held_job **jobs, size_t count)
{
    char key[256];

    if (count == 0)
        return;
    key_for(d, key, sizeof(key), "held", d->instance_id);
    rcmds_cmd(c, "HDEL");
    rcmds_arg(c, key);
    for (size_t i = 0; i < count; i++)
        rcmds_arg(c, jobs[i]->seq);
}

static void add_reply(struct daemon *d, struct rcmds *c, const char *reply_to, const char *doc)
{
    char key[256];

    if (reply_to) {
        rcmds_cmd(c, "RPUSH");
        rcmds_arg(c, reply_to);
        rcmds_arg(c, doc);
        rcmds_cmd(c, "EXPIRE");
        rcmds_arg(c, reply_to);
        rcmds_argf(c, "%d", d->cfg->result_ttl_s);
    }
    /* Publishing to a channel without subscribers does nothing, so it is skipped. The subscriber count is read every second. */
    if (!d->figures.known || d->figures.event_subscribers > 0) {
        snprintf(key, sizeof(key), "%s:events", d->cfg->key_prefix);
        rcmds_cmd(c, "PUBLISH");
        rcmds_arg(c, key);
        rcmds_arg(c, doc);
    }
}

static void add_dead(struct daemon *d, struct rcmds *c, const char *id, const char *error, const char *kind,
                     const char *payload)
{
    char key[256];
    yajl_gen gen = yajl_gen_alloc(NULL);
    char *redacted = job_redact_payload(payload, strlen(payload));

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", id);
    json_gen_kv_str(gen, "error", error);
    json_gen_kv_str(gen, "error_kind", kind);
    json_gen_kv_int(gen, "failed_at_ms", now_ms());
    json_gen_kv_str(gen, "instance", d->instance_id);
    json_gen_kv_str(gen, "payload", redacted);
    yajl_gen_map_close(gen);
    char *entry = json_gen_finish(gen);
    free(redacted);

    /* The list is capped at dead_max; what the trim drops is counted, so no failure vanishes unseen. */
    snprintf(key, sizeof(key), "%s:dead", d->cfg->key_prefix);
    rcmds_cmd(c, "EVAL");
    rcmds_arg(c, "local n = redis.call('LPUSH', KEYS[1], ARGV[1])\n"
                 "local max = tonumber(ARGV[2])\n"
                 "if n > max then\n"
                 "  redis.call('LTRIM', KEYS[1], 0, max - 1)\n"
                 "  redis.call('HINCRBY', KEYS[2], 'dead_dropped', n - max)\n"
                 "end\n"
                 "return n");
    rcmds_arg(c, "2");
    rcmds_arg(c, key);
    rcmds_argf(c, "%s:stats", d->cfg->key_prefix);
    rcmds_arg(c, entry);
    rcmds_argf(c, "%d", d->cfg->dead_max);
    free(entry);
}

static void hset_pair(struct rcmds *c, const char *field, const char *value)
{
    if (value == NULL)
        return;
    rcmds_arg(c, field);
    rcmds_arg(c, value);
}

void results_add_final(struct daemon *d, struct rcmds *c, struct held_job *hj, const struct job_outcome *o)
{
    char key[256];
    const struct job *job = hj->job;
    char *doc = results_document(job->id, o, hj->attempts);

    key_for(d, key, sizeof(key), "job", job->id);
    rcmds_cmd(c, "HSET");
    rcmds_arg(c, key);
    hset_pair(c, "state", o->state);
    rcmds_arg(c, "attempts");
    rcmds_arg_int(c, hj->attempts);
    rcmds_arg(c, "updated_at_ms");
    rcmds_arg_int(c, now_ms());
    hset_pair(c, "batch_id", o->batch_id);
    hset_pair(c, "order_id", o->order_id);
    hset_pair(c, "checkout_url", o->checkout_url);
    hset_pair(c, "certificates", o->certificates_json);
    hset_pair(c, "messages", o->messages_json);
    hset_pair(c, "error", o->error);
    hset_pair(c, "error_kind", o->error_kind);
    hset_pair(c, "result", doc);
    rcmds_arg(c, "owner");
    rcmds_arg(c, "");
    /* Only a job that was tried before can carry an older error or a parked payload. */
    if (o->error == NULL && hj->attempts > 1) {
        rcmds_cmd(c, "HDEL");
        rcmds_arg(c, key);
        rcmds_arg(c, "error");
        rcmds_arg(c, "error_kind");
        rcmds_arg(c, "payload");
    }
    rcmds_cmd(c, "EXPIRE");
    rcmds_arg(c, key);
    rcmds_arg_int(c, d->cfg->result_ttl_s);

    add_reply(d, c, job->reply_to, doc);
    if (!strcmp(o->state, "failed"))
        add_dead(d, c, job->id, o->error, o->error_kind, hj->payload);
    results_add_stat(d, c, o->state, 1);
    if (!strcmp(o->state, "succeeded"))
        results_add_stat(d, c, "certificates_ordered", (long long)job->cert_count);
    free(doc);

    log_info("job %s: job=%s batch=%s server=%s user=%s attempts=%d%s%s%s%s%s", o->state, job->id,
             o->batch_id ? o->batch_id : "-", job->server, job->user ? job->user : "-", hj->attempts,
             o->order_id ? " order=" : "", o->order_id ? o->order_id : "", o->error_kind ? " error_kind=" : "",
             o->error_kind ? o->error_kind : "", "");
    if (o->error) {
        char quoted[340];
        json_quote_for_message(quoted, sizeof(quoted), o->error, 300);
        log_info("job %s reason: job=%s error=%s", o->state, job->id, quoted);
    }
}

void results_add_retry(struct daemon *d, struct rcmds *c, struct held_job *hj, int64_t due_ms, const char *error)
{
    char key[256], zset[256];

    key_for(d, key, sizeof(key), "job", hj->job->id);
    rcmds_cmd(c, "HSET");
    rcmds_arg(c, key);
    rcmds_arg(c, "state");
    rcmds_arg(c, "retrying");
    rcmds_arg(c, "attempts");
    rcmds_argf(c, "%d", hj->attempts);
    rcmds_arg(c, "updated_at_ms");
    rcmds_argf(c, "%lld", (long long)now_ms());
    rcmds_arg(c, "retry_at_ms");
    rcmds_argf(c, "%lld", (long long)due_ms);
    rcmds_arg(c, "error");
    rcmds_arg(c, error);
    /* The payload (with its access token) waits in the job hash until the retry takes it back. */
    rcmds_arg(c, "payload");
    rcmds_arg(c, hj->payload);
    snprintf(zset, sizeof(zset), "%s:retry", d->cfg->key_prefix);
    rcmds_cmd(c, "ZADD");
    rcmds_arg(c, zset);
    rcmds_argf(c, "%lld", (long long)due_ms);
    rcmds_arg(c, hj->job->id);
    results_add_stat(d, c, "retries", 1);
}

struct commit_ctx {
    TAILQ_ENTRY(commit_ctx) link;
    struct held_job **jobs;
    size_t count;
    struct rcmds *cmds;
    uint64_t journal_id;
    uint64_t journal_position;  /* durable once the journal reports this many appends synced */
};
TAILQ_HEAD(commit_list, commit_ctx);

/* Outcomes appended to the journal but not yet synced: one fsync covers all of a loop turn's. */
static struct commit_list unsynced = TAILQ_HEAD_INITIALIZER(unsynced);
static struct event *sync_event;

static void commit_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct commit_ctx *ctx = arg;

    if (reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements; i++)
            if (reply->element[i]->type == REDIS_REPLY_ERROR)
                log_error("redis write of a result failed: error=\"%.200s\"", reply->element[i]->str);
    if (d->journal)
        journal_done(d->journal, ctx->journal_id);
    for (size_t i = 0; i < ctx->count; i++)
        queue_job_release(d, ctx->jobs[i]);
    free(ctx->jobs);
    free(ctx);
}

/* Sends every outcome whose journal record is durable, in order. */
static void send_synced(struct daemon *d, uint64_t synced_upto)
{
    struct commit_ctx *ctx;

    while ((ctx = TAILQ_FIRST(&unsynced)) != NULL && ctx->journal_position <= synced_upto) {
        TAILQ_REMOVE(&unsynced, ctx, link);
        redisq_exec(d->rq, ctx->cmds, commit_done, ctx);
        ctx->cmds = NULL;
    }
}

static void sync_finished(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    bool ok;
    uint64_t upto = journal_sync_finish(d->journal, &ok);

    if (!ok)
        log_error("outcomes go to Redis without a durable journal copy: state_dir=%s", d->cfg->state_dir);
    send_synced(d, upto);
    journal_sync_start(d->journal);
}

void results_commit(struct daemon *d, struct rcmds *c, struct held_job **jobs, size_t count)
{
    struct commit_ctx *ctx = xcalloc(1, sizeof(*ctx));

    ctx->jobs = jobs;
    ctx->count = count;
    ctx->cmds = c;
    add_held_delete(d, c, jobs, count);
    add_counters(d, c);
    if (d->journal == NULL) {
        redisq_exec(d->rq, c, commit_done, ctx);
        return;
    }
    ctx->journal_id = journal_append(d->journal, c);
    ctx->journal_position = journal_appended(d->journal);
    TAILQ_INSERT_TAIL(&unsynced, ctx, link);
    if (sync_event == NULL) {
        sync_event = event_new(d->base, journal_sync_fd(d->journal), EV_READ | EV_PERSIST, sync_finished, d);
        event_add(sync_event, NULL);
    }
    /* A sync already running takes no new records; the next starts when it reports back. */
    journal_sync_start(d->journal);
}

void results_flush(struct daemon *d)
{
    if (d->journal == NULL)
        return;
    if (!journal_sync(d->journal))
        log_error("outcomes go to Redis without a durable journal copy: state_dir=%s", d->cfg->state_dir);
    send_synced(d, journal_appended(d->journal));
}

void results_shutdown(void)
{
    if (sync_event)
        event_free(sync_event);
    sync_event = NULL;
}

static void replay_done(struct daemon *d, void *arg, redisReply *reply)
{
    uint64_t *id = arg;

    journal_done(d->journal, *id);
    free(id);
}

static void replay_one(void *arg, uint64_t id, struct rcmds *c)
{
    struct daemon *d = arg;
    uint64_t *copy = xmalloc(sizeof(*copy));

    /* The same transaction goes into the emptied journal, so a crash during replay loses nothing. */
    *copy = journal_append(d->journal, c);
    redisq_exec(d->rq, c, replay_done, copy);
}

void results_replay_journal(struct daemon *d)
{
    size_t n = journal_replay(d->journal, replay_one, d);

    journal_sync(d->journal);
    if (n > 0)
        log_warn("replaying outcomes that had not reached Redis before the last stop: count=%zu", n);
}

void results_dead_letter(struct daemon *d, struct held_job *hj, const char *error)
{
    struct rcmds *c = rcmds_new();
    char *id = NULL, *reply_to = NULL;
    struct job_outcome o = { .state = "failed", .error = error, .error_kind = "invalid_job" };

    job_peek(hj->payload, strlen(hj->payload), d->cfg->reply_prefix, &id, &reply_to);
    char quoted[340];
    json_quote_for_message(quoted, sizeof(quoted), error, 300);
    log_warn("job invalid, moved to the dead-letter list: job=%s seq=%s error=%s", id ? id : "-", hj->seq, quoted);

    add_dead(d, c, id, error, "invalid_job", hj->payload);
    char *doc = results_document(id, &o, 0);
    add_reply(d, c, reply_to, doc);
    free(doc);
    results_add_stat(d, c, "received", 1);
    results_add_stat(d, c, "invalid", 1);
    results_add_stat(d, c, "failed", 1);

    struct held_job **jobs = xcalloc(1, sizeof(*jobs));
    jobs[0] = hj;
    results_commit(d, c, jobs, 1);
    free(id);
    free(reply_to);
}
