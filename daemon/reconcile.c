/*
 * Jobs whose request may have reached cPanel without a response.  Before such a
 * job is sent again, certqd reads the account's pending certificates and adopts
 * an order that matches the job's products and names and was created after the
 * job's first attempt.  Only when the list shows no such order, and every
 * certificate carried vhost_names (without them cPanel keeps no pending entry,
 * so absence proves nothing), is the job sent again.
 */
#include "daemon/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "common/json.h"
#include "common/log.h"
#include "common/uapi.h"
#include "daemon/batch.h"
#include "daemon/certqd.h"
#include "daemon/redisq.h"
#include "daemon/results.h"
#include "daemon/submit.h"

#define RECONCILE_MAX_READS 5
/*
 * Clocks of certqd and cPanel differ.  NOTE: an order is matched when cPanel
 * created it at most this long before the first attempt; the figure is a guess.
 */
#define CLOCK_SLACK_MS 5000

struct check {
    struct daemon *d;
    struct held_job *hj;
    bool whm;
};

static void park(struct daemon *d, struct rcmds *c, struct held_job *hj, const char *reason, int64_t delay_ms)
{
    char key[256], zset[256];

    snprintf(key, sizeof(key), "%s:job:%s", d->cfg->key_prefix, hj->job->id);
    rcmds_cmd(c, "HSET");
    rcmds_arg(c, key);
    rcmds_arg(c, "reconcile_reason");
    rcmds_arg(c, reason);
    rcmds_arg(c, "updated_at_ms");
    rcmds_argf(c, "%lld", (long long)now_ms());
    rcmds_arg(c, "payload");
    rcmds_arg(c, hj->payload);
    snprintf(zset, sizeof(zset), "%s:reconcile", d->cfg->key_prefix);
    rcmds_cmd(c, "ZADD");
    rcmds_arg(c, zset);
    rcmds_argf(c, "%lld", (long long)now_ms() + (long long)delay_ms);
    rcmds_arg(c, hj->job->id);
}

void reconcile_add(struct daemon *d, struct rcmds *c, struct held_job *hj, const char *reason)
{
    /* cPanel may still be working on the request, so the pending list is read only after reconcile_delay_s. */
    log_warn("job in doubt, will check cPanel's pending list: job=%s server=%s user=%s delay_s=%d reason=\"%.300s\"",
             hj->job->id, hj->job->server, hj->job->user, d->cfg->reconcile_delay_s, reason);
    park(d, c, hj, reason, (int64_t)d->cfg->reconcile_delay_s * 1000);
}

static void finish_one(struct daemon *d, struct held_job *hj, const struct job_outcome *o)
{
    struct rcmds *c = rcmds_new();
    struct held_job **jobs = xcalloc(1, sizeof(*jobs));

    results_add_final(d, c, hj, o);
    jobs[0] = hj;
    results_commit(d, c, jobs, 1);
}

static void hold_for_operator(struct daemon *d, struct held_job *hj, const char *reason)
{
    struct job_outcome o = { .state = "unknown", .error = reason, .error_kind = "ambiguous" };

    d->stats.unknown++;
    finish_one(d, hj, &o);
}

static bool names_equal(const struct job_cert *cert, const struct uapi_pending_item *item)
{
    if (cert->name_count != item->name_count)
        return false;
    for (size_t i = 0; i < cert->name_count; i++) {
        bool found = false;
        for (size_t j = 0; j < item->name_count && !found; j++)
            found = !strcmp(cert->names[i], item->names[j]);
        if (!found)
            return false;
    }
    return true;
}

/* Returns the index of a pending item matching cert and not yet used, or -1. */
static long find_match(const struct held_job *hj, const struct job_cert *cert, const struct uapi_pending_list *list,
                       const bool *used)
{
    for (size_t i = 0; i < list->count; i++) {
        const struct uapi_pending_item *item = &list->items[i];
        if (used[i] || item->product_id == NULL || strcmp(item->product_id, cert->product_id) != 0)
            continue;
        if (item->provider && strcmp(item->provider, hj->job->provider) != 0)
            continue;
        if (item->created_s * 1000 + CLOCK_SLACK_MS < hj->first_attempt_ms)
            continue;
        if (names_equal(cert, item))
            return (long)i;
    }
    return -1;
}

static void adopt(struct daemon *d, struct held_job *hj, const struct uapi_pending_list *list, const long *match)
{
    yajl_gen gen = yajl_gen_alloc(NULL);
    const char *order_id = list->items[match[0]].order_id;

    yajl_gen_array_open(gen);
    for (size_t i = 0; i < hj->job->cert_count; i++) {
        yajl_gen_map_open(gen);
        json_gen_kv_str(gen, "key_id", NULL);
        json_gen_kv_str(gen, "order_item_id", list->items[match[i]].order_item_id);
        yajl_gen_map_close(gen);
    }
    yajl_gen_array_close(gen);
    char *certs = json_gen_finish(gen);

    struct job_outcome o = {
        .state = "succeeded",
        .order_id = order_id,
        .certificates_json = certs,
        .messages_json = "[\"certqd adopted this order from the account's pending certificates after cPanel's response was lost\"]",
    };
    log_info("job adopted from the pending list: job=%s order=%s server=%s user=%s", hj->job->id,
             order_id ? order_id : "-", hj->job->server, hj->job->user);
    d->stats.succeeded++;
    finish_one(d, hj, &o);
    free(certs);
}

static void retry_read(struct daemon *d, struct held_job *hj, const char *why)
{
    char key[256];

    if (hj->reconcile_reads + 1 >= RECONCILE_MAX_READS) {
        struct buf reason;
        buf_init(&reason);
        buf_printf(&reason, "no response came, and the pending list could not be read after %d tries (%s); check the "
                            "account's orders and resolve the job by hand", RECONCILE_MAX_READS, why);
        hold_for_operator(d, hj, reason.data);
        buf_free(&reason);
        return;
    }

    struct rcmds *c = rcmds_new();
    struct held_job **jobs = xcalloc(1, sizeof(*jobs));

    char quoted[340];
    json_quote_for_message(quoted, sizeof(quoted), why, 300);
    log_warn("reading the pending list failed, will try again: job=%s server=%s error=%s", hj->job->id,
             hj->job->server, quoted);
    snprintf(key, sizeof(key), "%s:job:%s", d->cfg->key_prefix, hj->job->id);
    rcmds_cmd(c, "HINCRBY");
    rcmds_arg(c, key);
    rcmds_arg(c, "reconcile_reads");
    rcmds_arg(c, "1");
    park(d, c, hj, why, d->cfg->reconcile_delay_s > 0 ? (int64_t)d->cfg->reconcile_delay_s * 1000 : 1000);
    jobs[0] = hj;
    results_commit(d, c, jobs, 1);
}

static void decide(struct daemon *d, struct held_job *hj, const struct uapi_pending_list *list)
{
    long *match = xcalloc(hj->job->cert_count, sizeof(long));
    bool *used = xcalloc(list->count ? list->count : 1, sizeof(bool));
    size_t found = 0;
    bool all_vhosts = true;

    for (size_t i = 0; i < hj->job->cert_count; i++) {
        match[i] = find_match(hj, &hj->job->certs[i], list, used);
        if (match[i] >= 0) {
            used[match[i]] = true;
            found++;
        }
        all_vhosts = all_vhosts && hj->job->certs[i].has_vhosts;
    }

    if (found == hj->job->cert_count)
        adopt(d, hj, list, match);
    else if (found > 0)
        hold_for_operator(d, hj, "cPanel's pending list holds an order for some of the job's certificates but not all; "
                                 "check the account and resolve the job by hand");
    else if (!all_vhosts)
        hold_for_operator(d, hj, "no response came and the pending list cannot prove there is no order, because a "
                                 "certificate had no vhost_names; check the account's orders and resolve the job by hand");
    else if (hj->attempts >= d->cfg->max_attempts) {
        struct job_outcome o = { .state = "failed", .error = "no order found after the last attempt, which had no answer",
                                 .error_kind = "exhausted" };
        d->stats.failed++;
        finish_one(d, hj, &o);
    } else {
        log_info("job not in the pending list, sending again: job=%s server=%s user=%s attempts=%d", hj->job->id,
                 hj->job->server, hj->job->user, hj->attempts);
        batch_add_job(d, hj);
    }
    free(match);
    free(used);
}

static void pending_done(void *arg, const struct transfer_result *tr)
{
    struct check *ck = arg;
    struct daemon *d = ck->d;
    struct held_job *hj = ck->hj;
    struct uapi_pending_list list;
    char why[256];
    bool whm = ck->whm;

    free(ck);
    log_debug("pending list read: job=%s http_status=%ld duration_ms=%lld", hj->job->id, tr->http_status,
              (long long)tr->duration_ms);
    if (tr->http_status != 200) {
        snprintf(why, sizeof(why), "get_pending_ssl_certificates: %s (HTTP %ld)",
                 tr->http_status ? "unexpected status" : tr->curl_error, tr->http_status);
        retry_read(d, hj, why);
        return;
    }
    uapi_parse_pending(tr->body, tr->body_len, whm, &list);
    if (!list.ok) {
        snprintf(why, sizeof(why), "get_pending_ssl_certificates failed: %.200s", list.error_text ? list.error_text : "");
        uapi_pending_list_free(&list);
        retry_read(d, hj, why);
        return;
    }
    decide(d, hj, &list);
    uapi_pending_list_free(&list);
}

void reconcile_start(struct daemon *d, struct held_job *hj)
{
    const struct server_config *s = config_find_server(d->cfg, hj->job->server);
    struct buf body;

    if (d->cfg->ambiguous_policy == AMBIGUOUS_HOLD) {
        hold_for_operator(d, hj, "a request for this job may have reached cPanel without a response (ambiguous_policy = hold)");
        return;
    }
    if (d->cfg->ambiguous_policy == AMBIGUOUS_RETRY) {
        batch_add_job(d, hj);
        return;
    }
    if (s == NULL) {
        hold_for_operator(d, hj, "a request may have reached cPanel without a response, and its server is no longer configured");
        return;
    }

    struct check *ck = xcalloc(1, sizeof(*ck));
    ck->d = d;
    ck->hj = hj;
    ck->whm = s->auth == AUTH_WHM;
    buf_init(&body);
    uapi_encode_pending(&body, s->auth == AUTH_WHM ? hj->job->user : NULL);
    log_info("checking pending list: job=%s server=%s user=%s", hj->job->id, hj->job->server, hj->job->user);
    submit_request(d->sub, s, s->auth == AUTH_WHM ? "/json-api/cpanel" : "/execute/Market/get_pending_ssl_certificates",
                   body.data ? body.data : "", pending_done, ck);
    buf_free(&body);
}
