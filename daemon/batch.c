/* Batching jobs into requests: groups of compatible jobs, the in-flight limits, and what each response means. */
#include "daemon/batch.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "common/json.h"
#include "common/log.h"
#include "common/uapi.h"
#include "daemon/certqd.h"
#include "daemon/metrics.h"
#include "daemon/reconcile.h"
#include "daemon/redisq.h"
#include "daemon/results.h"
#include "daemon/submit.h"

#define BREAKER_THRESHOLD 3
#define BREAKER_BASE_MS 5000
#define BREAKER_MAX_MS (5 * 60 * 1000)
#define AUTH_PAUSE_MS (5 * 60 * 1000)
#define LOG_MAX_IDS 20
#define ACCOUNT_BUSY_RETRY_MS 200

static void batch_release_memory(struct batch *b);

/* The account lease outlives the longest request, so a running request never loses it. */
static long long lease_ms(const struct daemon *d)
{
    return (long long)d->cfg->request_timeout_s * 1000 + 30000;
}

enum verdict { V_SUCCESS, V_SPLIT, V_FAILED, V_RETRY, V_AMBIGUOUS, V_UNKNOWN };

static void group_wait_over(evutil_socket_t fd, short what, void *arg);

static struct server_state *batch_server_state(struct daemon *d, const char *name)
{
    struct server_state *s = hmap_get(&d->servers, name);

    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->name = xstrdup(name);
        s->cfg = config_find_server(d->cfg, name);
        hmap_put(&d->servers, name, s);
    }
    return s;
}

static void refresh_server(const char *key, void *value, void *arg)
{
    struct server_state *s = value;

    s->cfg = config_find_server(arg, s->name);
}

void batch_config_changed(struct daemon *d)
{
    /* Every configured server gets its state now, so its metrics start at 0 rather than appear later. */
    for (size_t i = 0; i < d->cfg->server_count; i++)
        batch_server_state(d, d->cfg->servers[i].name);
    hmap_each(&d->servers, refresh_server, d->cfg);
}

static struct account *account_get(struct daemon *d, const char *server, const char *user)
{
    char key[256];
    struct account *a;

    snprintf(key, sizeof(key), "%s\x1f%s", server, user);
    a = hmap_get(&d->accounts, key);
    if (a == NULL) {
        a = xcalloc(1, sizeof(*a));
        a->key = xstrdup(key);
        TAILQ_INIT(&a->groups);
        hmap_put(&d->accounts, key, a);
    }
    return a;
}

static char *group_key_for(const struct held_job *hj)
{
    const struct job *job = hj->job;
    struct buf b;

    buf_init(&b);
    buf_printf(&b, "%s\x1f%s\x1f%s\x1f%s\x1f%s", job->server, job->user, job->provider, job->access_token,
               job->url_after_checkout ? job->url_after_checkout : "");
    /* A job that must go alone gets a group of its own. */
    if (hj->solo || !job->batch)
        buf_printf(&b, "\x1fsolo\x1f%s", hj->seq);
    return buf_steal(&b);
}

static bool group_is_solo(const struct group *g)
{
    return strstr(g->key, "\x1fsolo\x1f") != NULL;
}

static struct group *group_get(struct daemon *d, struct held_job *hj)
{
    char *key = group_key_for(hj);
    struct group *g = hmap_get(&d->groups, key);

    if (g) {
        free(key);
        return g;
    }
    const struct job *job = hj->job;
    g = xcalloc(1, sizeof(*g));
    g->key = key;
    g->d = d;
    g->server = xstrdup(job->server);
    g->user = xstrdup(job->user);
    g->provider = xstrdup(job->provider);
    g->access_token = xstrdup(job->access_token);
    g->url_after_checkout = job->url_after_checkout ? xstrdup(job->url_after_checkout) : NULL;
    g->account = account_get(d, job->server, job->user);
    g->server_state = batch_server_state(d, job->server);
    TAILQ_INSERT_TAIL(&g->account->groups, g, account_link);
    TAILQ_INIT(&g->pending);
    g->wait_timer = evtimer_new(d->base, group_wait_over, g);
    hmap_put(&d->groups, key, g);
    return g;
}

static void group_free(struct group *g)
{
    hmap_remove(&g->d->groups, g->key);
    if (g->blocked)
        TAILQ_REMOVE(&g->d->blocked, g, blocked_link);
    TAILQ_REMOVE(&g->account->groups, g, account_link);
    event_free(g->wait_timer);
    free(g->key);
    free(g->server);
    free(g->user);
    free(g->provider);
    explicit_bzero(g->access_token, strlen(g->access_token));
    free(g->access_token);
    free(g->url_after_checkout);
    free(g);
}

static void group_maybe_free(struct group *g)
{
    if (g->pending_jobs == 0 && g->batches_in_flight == 0)
        group_free(g);
}

static bool group_is_ready(const struct group *g)
{
    const struct held_job *first = TAILQ_FIRST(&g->pending);

    if (first == NULL)
        return false;
    return group_is_solo(g) || g->pending_certs >= (size_t)g->d->cfg->batch_max_certificates ||
           mono_ms() - first->arrived_ms >= g->d->cfg->batch_wait_ms;
}

/* Arms the wait timer for the moment the oldest pending job has waited batch_wait_ms. */
static void group_arm_timer(struct group *g)
{
    const struct held_job *first = TAILQ_FIRST(&g->pending);

    if (first == NULL) {
        evtimer_del(g->wait_timer);
        return;
    }
    int64_t left = first->arrived_ms + g->d->cfg->batch_wait_ms - mono_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = { (time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000) };
    evtimer_add(g->wait_timer, &tv);
}

static void group_block(struct group *g)
{
    if (!g->blocked) {
        TAILQ_INSERT_TAIL(&g->d->blocked, g, blocked_link);
        g->blocked = true;
    }
}

static void group_unblock(struct group *g)
{
    if (g->blocked) {
        TAILQ_REMOVE(&g->d->blocked, g, blocked_link);
        g->blocked = false;
    }
}

static void group_try(struct daemon *d, struct group *g);

static void group_wait_over(evutil_socket_t fd, short what, void *arg)
{
    struct group *g = arg;

    group_try(g->d, g);
}

struct release_ctx {
    struct held_job **jobs;
    size_t count;
};

static void release_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct release_ctx *ctx = arg;

    log_info("returned unsent jobs to the queue: count=%zu", ctx->count);
    for (size_t i = 0; i < ctx->count; i++)
        queue_job_release(d, ctx->jobs[i]);
    free(ctx->jobs);
    free(ctx);
}

/* Puts jobs that were never sent back at the consuming end of the queue; takes ownership of the array. */
static void release_jobs(struct daemon *d, struct held_job **jobs, size_t count)
{
    struct release_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct rcmds *args = rcmds_new();

    ctx->jobs = jobs;
    ctx->count = count;
    rcmds_cmd(args, "ARGS");
    rcmds_arg(args, d->cfg->key_prefix);
    rcmds_arg(args, d->instance_id);
    for (size_t i = 0; i < count; i++) {
        rcmds_arg(args, jobs[i]->seq);
        rcmds_arg(args, jobs[i]->job ? jobs[i]->job->id : "");
    }
    redisq_script(d->rq, SCRIPT_RELEASE, 0, args, release_done, ctx);
}

struct collect {
    struct held_job **jobs;
    size_t count;
    size_t cap;
};

static void collect_group(const char *key, void *value, void *arg)
{
    struct group *g = value;
    struct collect *col = arg;
    struct held_job *hj;

    while ((hj = TAILQ_FIRST(&g->pending)) != NULL) {
        TAILQ_REMOVE(&g->pending, hj, link);
        if (col->count == col->cap) {
            col->cap = col->cap ? col->cap * 2 : 64;
            col->jobs = xrealloc(col->jobs, col->cap * sizeof(*col->jobs));
        }
        col->jobs[col->count++] = hj;
    }
    g->pending_jobs = 0;
    g->pending_certs = 0;
    evtimer_del(g->wait_timer);
}

void batch_release_unsent(struct daemon *d)
{
    struct collect col = { 0 };

    hmap_each(&d->groups, collect_group, &col);
    if (col.count == 0) {
        free(col.jobs);
        return;
    }
    release_jobs(d, col.jobs, col.count);
}

static void free_group_entry(const char *key, void *value, void *arg)
{
    struct group *g = value;
    struct held_job *hj;

    while ((hj = TAILQ_FIRST(&g->pending)) != NULL) {
        TAILQ_REMOVE(&g->pending, hj, link);
        job_free(hj->job);
        free(hj->seq);
        free(hj->payload);
        free(hj);
    }
    event_free(g->wait_timer);
    free(g->key);
    free(g->server);
    free(g->user);
    free(g->provider);
    free(g->access_token);
    free(g->url_after_checkout);
    free(g);
}

static void free_account_entry(const char *key, void *value, void *arg)
{
    struct account *a = value;

    free(a->key);
    free(a);
}

static void free_server_entry(const char *key, void *value, void *arg)
{
    struct server_state *s = value;

    free(s->name);
    free(s->pause_reason);
    free(s);
}

struct waiting {
    yajl_gen gen;
    size_t max;
    size_t count;
    int64_t now;
};

/* Names why a group with pending jobs has not sent them. */
static const char *waiting_reason(struct daemon *d, const struct group *g)
{
    if (g->blocked) {
        const struct server_state *s = g->server_state;
        if (s->paused_until_ms > mono_ms())
            return "server_paused";
        if (g->account->busy_until_ms > mono_ms())
            return "account_busy_elsewhere";
        return "limits";
    }
    if (g->server_state->cfg && g->account->in_flight >= g->server_state->cfg->per_user_in_flight)
        return "account_in_flight";
    if (evtimer_pending(g->wait_timer, NULL))
        return "batch_wait";
    return "none";
}

static void status_group(const char *key, void *value, void *arg)
{
    struct group *g = value;
    struct waiting *w = arg;
    const struct held_job *first = TAILQ_FIRST(&g->pending);

    if (first == NULL)
        return;
    if (w->count++ >= w->max)
        return;
    yajl_gen_map_open(w->gen);
    json_gen_kv_str(w->gen, "server", g->server);
    json_gen_kv_str(w->gen, "user", g->user);
    json_gen_kv_int(w->gen, "jobs", (long long)g->pending_jobs);
    json_gen_kv_int(w->gen, "certificates", (long long)g->pending_certs);
    json_gen_kv_int(w->gen, "waited_ms", w->now - first->arrived_ms);
    json_gen_kv_str(w->gen, "reason", waiting_reason(g->d, g));
    yajl_gen_map_close(w->gen);
}

size_t batch_status_waiting(struct daemon *d, yajl_gen gen, size_t max)
{
    struct waiting w = { .gen = gen, .max = max, .now = mono_ms() };

    yajl_gen_array_open(gen);
    hmap_each(&d->groups, status_group, &w);
    yajl_gen_array_close(gen);
    return w.count;
}

void batch_free_all(struct daemon *d)
{
    hmap_each(&d->groups, free_group_entry, NULL);
    hmap_each(&d->accounts, free_account_entry, NULL);
    hmap_each(&d->servers, free_server_entry, NULL);
}

void batch_add_job(struct daemon *d, struct held_job *hj)
{
    if (d->stopping) {
        struct held_job **jobs = xcalloc(1, sizeof(*jobs));
        jobs[0] = hj;
        release_jobs(d, jobs, 1);
        return;
    }

    struct group *g = group_get(d, hj);

    hj->arrived_ms = mono_ms();
    TAILQ_INSERT_TAIL(&g->pending, hj, link);
    g->pending_jobs++;
    g->pending_certs += hj->job->cert_count;
    if (g->pending_jobs == 1 && !group_is_ready(g))
        group_arm_timer(g);
    else
        group_try(d, g);
}

enum send_check { SEND_OK, SEND_ACCOUNT_FULL, SEND_WAIT };

/*
 * Checks the limits for one more request of g.  SEND_ACCOUNT_FULL means the
 * account's own requests must finish first, which wakes the group again;
 * SEND_WAIT means the server, the total limit, a pause or another
 * instance's lease holds it, so it joins the blocked list.
 */
static enum send_check can_send(struct daemon *d, const struct group *g)
{
    const struct server_config *cfg = g->server_state->cfg;
    const struct server_state *s = g->server_state;
    int64_t now = mono_ms();

    if (cfg == NULL)
        return SEND_OK;   /* group_try fails the jobs of a server that a reload removed */
    if (g->account->in_flight >= cfg->per_user_in_flight)
        return SEND_ACCOUNT_FULL;
    if (s->paused_until_ms > now || g->account->busy_until_ms > now || s->in_flight >= cfg->max_in_flight ||
        d->in_flight >= d->cfg->max_in_flight)
        return SEND_WAIT;
    return SEND_OK;
}

static void log_batch_ids(struct buf *out, const struct job_list *jobs)
{
    struct held_job *hj;
    int n = 0;

    TAILQ_FOREACH(hj, jobs, link) {
        if (n == LOG_MAX_IDS) {
            buf_puts(out, ",...");
            break;
        }
        buf_printf(out, "%s%s", n ? "," : "", hj->job->id);
        n++;
    }
}

/*
 * Releases the account lease as soon as the response is in: the request is over,
 * and the account's next request (queued right after) must not find it taken.
 */
static void release_lease(struct daemon *d, const struct batch *b)
{
    char lease[512];
    struct rcmds *c = rcmds_new();

    snprintf(lease, sizeof(lease), "%s:lease:%s:%s", d->cfg->key_prefix, b->server_cfg.name, b->group->user);
    rcmds_cmd(c, "ZREM");
    rcmds_arg(c, lease);
    rcmds_argf(c, "%s|%s", d->instance_id, b->id);
    redisq_exec(d->rq, c, NULL, NULL);
}

static void batch_unreserve(struct batch *b)
{
    b->group->batches_in_flight--;
    b->group->account->in_flight--;
    b->server->in_flight--;
    b->d->in_flight--;
}

static void mark_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct batch *b = arg;
    struct held_job *hj;

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* Another instance has a request running for this account: put the jobs back and try again shortly. */
        log_debug("account busy in another instance, batch waits: batch=%s server=%s user=%s", b->id,
                  b->server_cfg.name, b->group->user);
        while ((hj = TAILQ_LAST(&b->jobs, job_list)) != NULL) {
            TAILQ_REMOVE(&b->jobs, hj, link);
            hj->attempts--;
            TAILQ_INSERT_HEAD(&b->group->pending, hj, link);
            b->group->pending_jobs++;
            b->group->pending_certs += hj->job->cert_count;
        }
        b->group->account->busy_until_ms = mono_ms() + ACCOUNT_BUSY_RETRY_MS;
        group_block(b->group);
        batch_unreserve(b);
        d->stats.requests--;
        batch_release_memory(b);
        daemon_check_stopped(d);
        return;
    }
    /* The jobs are recorded as submitting: only now may the request leave. */
    b->phase = BATCH_SENDING;
    b->started_ms = mono_ms();
    submit_start(d->sub, b);
}

static void fail_removed_server(struct daemon *d, struct group *g)
{
    struct rcmds *c = rcmds_new();
    struct held_job **jobs = xcalloc(g->pending_jobs, sizeof(*jobs));
    size_t n = 0;
    struct held_job *hj;
    char err[256];

    snprintf(err, sizeof(err), "server \"%s\" is no longer in certqd's config; add it back and requeue the job",
             g->server);
    while ((hj = TAILQ_FIRST(&g->pending)) != NULL) {
        struct job_outcome o = { .state = "failed", .error = err, .error_kind = "invalid_job" };
        TAILQ_REMOVE(&g->pending, hj, link);
        results_add_final(d, c, hj, &o);
        jobs[n++] = hj;
    }
    g->pending_jobs = 0;
    g->pending_certs = 0;
    results_commit(d, c, jobs, n);
}

static void batch_start(struct daemon *d, struct group *g, const struct server_config *cfg)
{
    struct batch *b = xcalloc(1, sizeof(*b));
    struct rcmds *c = rcmds_new();
    size_t max = (size_t)d->cfg->batch_max_certificates;
    int64_t now = now_ms();
    struct held_job *hj;
    struct buf ids;

    uuid_v4(b->id);
    rcmds_cmd(c, "ARGS");
    rcmds_arg(c, d->cfg->key_prefix);
    rcmds_argf(c, "%s:%s", g->server, g->user);
    rcmds_argf(c, "%s|%s", d->instance_id, b->id);
    rcmds_argf(c, "%d", cfg->per_user_in_flight);
    rcmds_argf(c, "%lld", lease_ms(d));
    rcmds_argf(c, "%lld", (long long)now);
    b->d = d;
    b->group = g;
    b->server = batch_server_state(d, g->server);
    b->server_cfg = *cfg;
    b->server_cfg.token = xstrdup(cfg->token);
    b->server_cfg.name = xstrdup(cfg->name);
    b->server_cfg.url = xstrdup(cfg->url);
    b->server_cfg.user = xstrdup(cfg->user);
    b->server_cfg.ca_file = cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
    TAILQ_INIT(&b->jobs);

    while ((hj = TAILQ_FIRST(&g->pending)) != NULL) {
        if (b->job_count > 0 && b->cert_count + hj->job->cert_count > max)
            break;
        TAILQ_REMOVE(&g->pending, hj, link);
        g->pending_jobs--;
        g->pending_certs -= hj->job->cert_count;
        TAILQ_INSERT_TAIL(&b->jobs, hj, link);
        b->job_count++;
        b->cert_count += hj->job->cert_count;

        hj->attempts++;
        if (hj->first_attempt_ms == 0)
            hj->first_attempt_ms = now;
        rcmds_arg(c, hj->job->id);
        rcmds_argf(c, "%d", hj->attempts);
        rcmds_argf(c, "%lld", (long long)hj->first_attempt_ms);
    }

    g->batches_in_flight++;
    g->account->in_flight++;
    b->server->in_flight++;
    d->in_flight++;
    d->stats.requests++;

    if (log_get_level() >= LOG_INFO) {
        buf_init(&ids);
        log_batch_ids(&ids, &b->jobs);
        log_info("batch sending: batch=%s server=%s user=%s jobs=%zu certificates=%zu attempt=%d job_ids=%s", b->id,
                 g->server, g->user, b->job_count, b->cert_count, TAILQ_FIRST(&b->jobs)->attempts, ids.data);
        buf_free(&ids);
    }

    b->phase = BATCH_MARKING;
    redisq_script(d->rq, SCRIPT_MARK, 0, c, mark_done, b);
}

/*
 * Sends as many batches of g as the limits allow, then blocks it, arms its
 * timer, or frees it.  Readiness is read once per decision: read again, the
 * clock could pass the end of batch_wait_ms in between and leave the group
 * with neither a request nor a timer.
 */
static void group_try(struct daemon *d, struct group *g)
{
    enum send_check check = SEND_OK;
    bool ready;

    if (d->stopping)
        return;
    while ((ready = group_is_ready(g)) && (check = can_send(d, g)) == SEND_OK) {
        if (g->server_state->cfg == NULL) {
            fail_removed_server(d, g);
            break;
        }
        batch_start(d, g, g->server_state->cfg);
    }
    if (ready && check == SEND_WAIT) {
        group_block(g);
        return;
    }
    group_unblock(g);
    if (g->pending_jobs > 0 && !ready)
        group_arm_timer(g);
    group_maybe_free(g);
}

/* Wakes the account's groups, whose turn may have come now that one of its requests ended. */
static void wake_account(struct daemon *d, struct account *a)
{
    struct group *g, *next;

    for (g = TAILQ_FIRST(&a->groups); g != NULL; g = next) {
        next = TAILQ_NEXT(g, account_link);
        if (a->in_flight > 0 && g->server_state->cfg && a->in_flight >= g->server_state->cfg->per_user_in_flight)
            break;
        group_try(d, g);
    }
}

void batch_dispatch(struct daemon *d)
{
    struct group *g, *last;

    if (d->stopping || TAILQ_EMPTY(&d->blocked))
        return;
    /* Each blocked group gets one try; a group that blocks again goes to the end, after last. */
    last = TAILQ_LAST(&d->blocked, group_list);
    while ((g = TAILQ_FIRST(&d->blocked)) != NULL) {
        bool was_last = g == last;
        group_unblock(g); /* NOLINT(clang-analyzer-unix.Malloc): g is off d->blocked before group_try can free it */
        group_try(d, g);
        if (was_last || d->in_flight >= d->cfg->max_in_flight)
            break;
    }
}

void batch_add_in_doubt(struct daemon *d, struct held_job *hj)
{
    reconcile_start(d, hj);
}

/* ---- outcomes ---- */

static void server_record_failure(struct daemon *d, struct server_state *s, const char *reason)
{
    s->consecutive_failures++;
    if (s->consecutive_failures < BREAKER_THRESHOLD)
        return;

    int shift = s->consecutive_failures - BREAKER_THRESHOLD;
    int64_t pause = (int64_t)BREAKER_BASE_MS << (shift < 10 ? shift : 10);
    if (pause > BREAKER_MAX_MS)
        pause = BREAKER_MAX_MS;
    s->paused_until_ms = mono_ms() + pause;
    free(s->pause_reason);
    s->pause_reason = xstrdup(reason);
    log_warn("server paused after repeated failures: server=%s failures=%d pause_ms=%lld reason=\"%s\"", s->name,
             s->consecutive_failures, (long long)pause, reason);
}

static void server_record_success(struct server_state *s)
{
    if (s->paused_until_ms)
        log_info("server responding again: server=%s", s->name);
    s->consecutive_failures = 0;
    s->paused_until_ms = 0;
    free(s->pause_reason);
    s->pause_reason = NULL;
}

static int64_t retry_delay_ms(const struct daemon *d, int attempts, int64_t retry_after_s)
{
    int64_t cap = d->cfg->retry_base_ms;

    for (int i = 1; i < attempts && cap < d->cfg->retry_max_ms; i++)
        cap *= 2;
    if (cap > d->cfg->retry_max_ms)
        cap = d->cfg->retry_max_ms;
    /* Full jitter spreads the jobs of a recovered server over the whole window. */
    int64_t delay = (int64_t)random_below((uint64_t)cap + 1);
    if (retry_after_s > 0 && retry_after_s * 1000 > delay)
        delay = retry_after_s * 1000 > d->cfg->retry_max_ms ? d->cfg->retry_max_ms : retry_after_s * 1000;
    return delay;
}

static char *slice_certificates(const struct uapi_order_result *res, size_t from, size_t count)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    yajl_gen_array_open(gen);
    for (size_t i = from; i < from + count && i < res->cert_count; i++) {
        yajl_gen_map_open(gen);
        json_gen_kv_str(gen, "key_id", res->certs[i].key_id);
        json_gen_kv_str(gen, "order_item_id", res->certs[i].order_item_id);
        yajl_gen_map_close(gen);
    }
    yajl_gen_array_close(gen);
    return json_gen_finish(gen);
}

static const char *kind_of_verdict(enum verdict v)
{
    switch (v) {
    case V_SUCCESS:
        return "succeeded";
    case V_SPLIT:
        return "split";
    case V_FAILED:
        return "failed";
    case V_RETRY:
        return "retry";
    case V_AMBIGUOUS:
        return "ambiguous";
    default:
        return "unknown";
    }
}

static void batch_free(struct batch *b)
{
    batch_unreserve(b);
    batch_release_memory(b);
}

static void batch_release_memory(struct batch *b)
{
    struct daemon *d = b->d;
    struct group *g = b->group;

    /* The group may be freed below, so its account is woken through a copy of the pointer. */
    struct account *a = g->account;
    group_try(d, g);
    wake_account(d, a);
    explicit_bzero(b->server_cfg.token, strlen(b->server_cfg.token));
    free(b->server_cfg.token);
    free(b->server_cfg.name);
    free(b->server_cfg.url);
    free(b->server_cfg.user);
    free(b->server_cfg.ca_file);
    free(b);
}

/* Classifies a transfer.  error receives the reason for anything but success. */
static enum verdict classify(struct batch *b, const struct transfer_result *tr, struct uapi_order_result *res,
                             struct buf *error, const char **error_kind)
{
    bool whm = b->server_cfg.auth == AUTH_WHM;

    *error_kind = NULL;
    if (tr->http_status == 0) {
        if (!tr->request_sent) {
            buf_printf(error, "the request never reached cPanel: %s", tr->curl_error);
            if (tr->curl_code == CURLE_PEER_FAILED_VERIFICATION)
                buf_printf(error, "; if server %s uses a self-signed certificate, set its ca_file", b->server_cfg.name);
            return V_RETRY;
        }
        buf_printf(error, "no response from cPanel after the request was sent: %s", tr->curl_error);
        return V_AMBIGUOUS;
    }
    if (tr->truncated) {
        buf_printf(error, "cPanel's response passed max_response_bytes (%d) and was cut off", b->d->cfg->max_response_bytes);
        return V_AMBIGUOUS;
    }
    if (tr->http_status == 401 || tr->http_status == 403) {
        buf_printf(error, "cPanel rejected server %s's API token (HTTP %ld); check token_file and user in the config",
                   b->server_cfg.name, tr->http_status);
        *error_kind = "auth";
        return V_FAILED;
    }
    if (tr->http_status == 429 || tr->http_status == 503) {
        buf_printf(error, "cPanel is busy or upgrading (HTTP %ld)", tr->http_status);
        return V_RETRY;
    }
    if (tr->http_status == 500 || tr->http_status == 502 || tr->http_status == 504) {
        buf_printf(error, "cPanel answered HTTP %ld after the request was sent, so an order may exist", tr->http_status);
        return V_AMBIGUOUS;
    }
    if (tr->http_status != 200) {
        buf_printf(error, "cPanel answered HTTP %ld; check the server's url in the config", tr->http_status);
        *error_kind = "rejected";
        return V_FAILED;
    }

    uapi_parse_order(tr->body, tr->body_len, whm, b->cert_count, res);
    switch (res->outcome) {
    case UAPI_SUCCESS:
        return V_SUCCESS;
    case UAPI_REJECTED:
        buf_puts(error, res->error_text);
        *error_kind = "rejected";
        return b->job_count > 1 ? V_SPLIT : V_FAILED;
    case UAPI_BAD_ACCOUNT:
        buf_printf(error, "cPanel does not know account \"%s\": %s", b->group->user, res->error_text);
        *error_kind = "rejected";
        return V_FAILED;
    case UAPI_MISMATCH:
        buf_printf(error, "%s; an order may exist, so the job is held for an operator", res->error_text);
        *error_kind = "ambiguous";
        return V_UNKNOWN;
    default:
        buf_printf(error, "%s; an order may exist", res->error_text);
        return V_AMBIGUOUS;
    }
}

void batch_finish(struct batch *b, const struct transfer_result *tr)
{
    struct daemon *d = b->d;
    struct uapi_order_result res;
    struct buf error;
    const char *error_kind;
    struct held_job *hj;
    struct rcmds *c = rcmds_new();
    struct held_job **done = xcalloc(b->job_count, sizeof(*done));
    size_t done_count = 0, offset = 0;

    memset(&res, 0, sizeof(res));
    buf_init(&error);
    enum verdict v = classify(b, tr, &res, &error, &error_kind);

    char quoted[340] = "";
    if (error.len)
        json_quote_for_message(quoted, sizeof(quoted), error.data, 300);
    log_info("batch finished: batch=%s server=%s user=%s http_status=%ld duration_ms=%lld outcome=%s%s%s", b->id,
             b->server_cfg.name, b->group->user, tr->http_status, (long long)tr->duration_ms, kind_of_verdict(v),
             error.len ? " error=" : "", quoted);

    metrics_observe_request(d, (double)tr->duration_ms / 1000.0, b->cert_count);
    if (v == V_SUCCESS)
        server_record_success(b->server);
    else if (tr->http_status == 0 && (v == V_RETRY || (v == V_AMBIGUOUS && tr->curl_code == CURLE_OPERATION_TIMEDOUT)))
        server_record_failure(d, b->server, error.data);
    if (error_kind && !strcmp(error_kind, "auth")) {
        b->server->paused_until_ms = mono_ms() + AUTH_PAUSE_MS;
        free(b->server->pause_reason);
        b->server->pause_reason = xstrdup("token rejected");
        log_error("server paused: its API token was rejected: server=%s pause_ms=%d; fix the token and reload",
                  b->server_cfg.name, AUTH_PAUSE_MS);
    }
    if (v == V_AMBIGUOUS && d->cfg->ambiguous_policy == AMBIGUOUS_RETRY)
        v = V_RETRY;
    release_lease(d, b);
    if (v == V_SPLIT) {
        d->stats.splits++;
        results_add_stat(d, c, "batches_split", 1);
    }

    while ((hj = TAILQ_FIRST(&b->jobs)) != NULL) {
        TAILQ_REMOVE(&b->jobs, hj, link);
        struct job_outcome o = { .batch_id = b->id, .messages_json = res.messages_json };

        switch (v) {
        case V_SUCCESS: {
            char *certs = slice_certificates(&res, offset, hj->job->cert_count);
            o.state = "succeeded";
            o.order_id = res.order_id;
            o.checkout_url = res.checkout_url;
            o.certificates_json = certs;
            results_add_final(d, c, hj, &o);
            free(certs);
            done[done_count++] = hj;
            d->stats.succeeded++;
            d->stats.certificates += hj->job->cert_count;
            break;
        }
        case V_SPLIT:
            /* A refused batch ordered nothing: each job goes again alone, at no cost in attempts. */
            hj->attempts--;
            hj->solo = true;
            batch_add_job(d, hj);
            break;
        case V_RETRY:
            if (hj->attempts >= d->cfg->max_attempts) {
                struct buf why;
                buf_init(&why);
                buf_printf(&why, "gave up after %d attempts; last error: %s", hj->attempts, error.data);
                o.state = "failed";
                o.error = why.data;
                o.error_kind = "exhausted";
                results_add_final(d, c, hj, &o);
                buf_free(&why);
                d->stats.failed++;
            } else {
                int64_t delay = retry_delay_ms(d, hj->attempts, tr->retry_after_s);
                results_add_retry(d, c, hj, now_ms() + delay, error.data);
                log_info("job retrying: job=%s batch=%s attempts=%d delay_ms=%lld", hj->job->id, b->id, hj->attempts,
                         (long long)delay);
                d->stats.retries++;
            }
            done[done_count++] = hj;
            break;
        case V_AMBIGUOUS:
            if (d->cfg->ambiguous_policy == AMBIGUOUS_RECONCILE) {
                reconcile_add(d, c, hj, error.data);
                done[done_count++] = hj;
                break;
            }
            /* The hold policy keeps the job for an operator. */
            __attribute__((fallthrough));
        case V_UNKNOWN:
            o.state = "unknown";
            o.error = error.data;
            o.error_kind = "ambiguous";
            results_add_final(d, c, hj, &o);
            done[done_count++] = hj;
            d->stats.unknown++;
            break;
        case V_FAILED:
            o.state = "failed";
            o.error = error.data;
            o.error_kind = error_kind ? error_kind : "rejected";
            results_add_final(d, c, hj, &o);
            done[done_count++] = hj;
            d->stats.failed++;
            break;
        }
        offset += hj->job->cert_count;
    }

    results_commit(d, c, done, done_count);
    uapi_order_result_free(&res);
    buf_free(&error);
    batch_free(b);
    batch_dispatch(d);
    daemon_check_stopped(d);
}
