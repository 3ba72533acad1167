/* Jobs from Redis into memory: parsing, checks against the config, duplicates, and release when done. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/certqd.h"
#include "daemon/redisq.h"
#include "daemon/results.h"


struct accept_ctx {
    struct held_job **jobs;
    size_t count;
};

/*
 * Checks what the job parser cannot: that the server exists and that the
 * account fits the server's kind of token.  Returns the account the request
 * will act for, or NULL with err set.
 */
static const char *check_against_config(struct daemon *d, const struct job *job, char *err, size_t err_len)
{
    const struct server_config *s = config_find_server(d->cfg, job->server);

    if (s == NULL) {
        struct buf names;
        buf_init(&names);
        for (size_t i = 0; i < d->cfg->server_count && names.len < 200; i++)
            buf_printf(&names, "%s%s", i ? ", " : "", d->cfg->servers[i].name);
        snprintf(err, err_len, "server: \"%s\" is not a [server NAME] section of certqd's config; use one of: %s",
                 job->server, names.data ? names.data : "");
        buf_free(&names);
        return NULL;
    }
    if (s->auth == AUTH_WHM) {
        if (job->user == NULL) {
            snprintf(err, err_len, "user: missing; server \"%s\" uses a WHM token, so the job must name the cPanel account",
                     job->server);
            return NULL;
        }
        return job->user;
    }
    if (job->user && strcmp(job->user, s->user) != 0) {
        snprintf(err, err_len, "user: \"%s\" does not match account \"%s\" of server \"%s\", whose token acts only for that account; "
                 "omit user or use \"%s\"", job->user, s->user, job->server, s->user);
        return NULL;
    }
    return s->user;
}

static void send_duplicate_reply(struct daemon *d, struct held_job *hj, const char *state, const char *result)
{
    struct rcmds *c = rcmds_new();
    const struct job *job = hj->job;

    log_info("job duplicate, not submitted again: job=%s state=%s", job->id, state);
    if (job->reply_to) {
        char *doc = NULL;
        if (result == NULL || result[0] == '\0') {
            struct job_outcome o = { .state = state };
            doc = results_document(job->id, &o, 0);
        }
        rcmds_cmd(c, "RPUSH");
        rcmds_arg(c, job->reply_to);
        rcmds_arg(c, doc ? doc : result);
        rcmds_cmd(c, "EXPIRE");
        rcmds_arg(c, job->reply_to);
        rcmds_argf(c, "%d", d->cfg->result_ttl_s);
        free(doc);
    }
    results_add_stat(d, c, "received", 1);
    results_add_stat(d, c, "duplicates", 1);
    d->stats.duplicates++;
    d->stats.received++;

    struct held_job **jobs = xcalloc(1, sizeof(*jobs));
    jobs[0] = hj;
    results_commit(d, c, jobs, 1);
}

static void accept_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct accept_ctx *ctx = arg;

    for (size_t i = 0; i < ctx->count; i++) {
        struct held_job *hj = ctx->jobs[i];
        redisReply *r = (reply->type == REDIS_REPLY_ARRAY && i < reply->elements) ? reply->element[i] : NULL;
        bool in_doubt = false;

        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            /* A new job: the held_job's zeroed attempts and times are right as they are. */
        } else if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
            /* The script returns a result for every job; anything else is a bug, so keep the job for recovery. */
            log_error("unexpected reply from the accept script: job=%s; the job stays held for recovery", hj->job->id);
            continue;
        } else if (!strcmp(r->element[0]->str, "dup")) {
            send_duplicate_reply(d, hj, r->element[1]->str, r->element[2]->str);
            continue;
        } else {
            hj->attempts = (int)strtol(r->element[1]->str, NULL, 10);
            hj->first_attempt_ms = strtoll(r->element[2]->str, NULL, 10);
            hj->reconcile_reads = r->elements >= 5 ? (int)strtol(r->element[4]->str, NULL, 10) : 0;
            in_doubt = hj->first_attempt_ms > 0 && r->elements >= 4 && !strcmp(r->element[3]->str, "submitting");
        }
        if (hj->attempts == 0)
            d->stats.received++;
        log_debug("job accepted: job=%s seq=%s server=%s user=%s certificates=%zu attempts=%d", hj->job->id, hj->seq,
                  hj->job->server, hj->job->user ? hj->job->user : "-", hj->job->cert_count, hj->attempts);
        if (in_doubt)
            batch_add_in_doubt(d, hj);
        else
            batch_add_job(d, hj);
    }
    free(ctx->jobs);
    free(ctx);
}

void queue_take_items(struct daemon *d, char **seqs, char **payloads, size_t count)
{
    struct accept_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct rcmds *args = rcmds_new();
    struct job_limits limits = { .max_bytes = (size_t)d->cfg->max_job_bytes, .reply_prefix = d->cfg->reply_prefix };
    char err[512];

    ctx->jobs = xcalloc(count, sizeof(*ctx->jobs));
    rcmds_cmd(args, "ARGS");
    rcmds_arg(args, d->cfg->key_prefix);
    rcmds_arg(args, d->instance_id);
    rcmds_argf(args, "%lld", (long long)now_ms());

    for (size_t i = 0; i < count; i++) {
        if (hmap_get(&d->held, seqs[i]))
            continue;
        struct held_job *hj = xcalloc(1, sizeof(*hj));
        hj->d = d;
        hj->seq = xstrdup(seqs[i]);
        hj->payload = xstrdup(payloads[i]);
        hmap_put(&d->held, hj->seq, hj);
        d->held_count++;

        hj->job = job_parse(hj->payload, strlen(hj->payload), &limits, err, sizeof(err));
        const char *account = hj->job ? check_against_config(d, hj->job, err, sizeof(err)) : NULL;
        if (account == NULL) {
            d->stats.invalid++;
            d->stats.received++;
            d->stats.failed++;
            results_dead_letter(d, hj, err);
            continue;
        }
        char *with_id = NULL;
        if (hj->job->id_generated) {
            /* Store the generated id with the payload, so recovery and retries find the same job. */
            with_id = job_payload_with_id(hj->payload, strlen(hj->payload), hj->job->id);
            free(hj->payload);
            hj->payload = xstrdup(with_id);
        }
        if (hj->job->user == NULL)
            hj->job->user = xstrdup(account);
        rcmds_arg(args, hj->job->id);
        rcmds_arg(args, hj->seq);
        rcmds_arg(args, hj->job->server);
        rcmds_arg(args, account);
        rcmds_arg(args, hj->job->reply_to ? hj->job->reply_to : "");
        rcmds_arg(args, with_id ? with_id : "");
        free(with_id);
        ctx->jobs[ctx->count++] = hj;
    }

    if (ctx->count == 0) {
        rcmds_free(args);
        free(ctx->jobs);
        free(ctx);
        return;
    }
    redisq_script(d->rq, SCRIPT_ACCEPT, 0, args, accept_done, ctx);
}

void queue_job_release(struct daemon *d, struct held_job *hj)
{
    hmap_remove(&d->held, hj->seq);
    d->held_count--;
    job_free(hj->job);
    free(hj->seq);
    free(hj->payload);
    free(hj);
    redisq_poke(d->rq);
    daemon_check_stopped(d);
}
