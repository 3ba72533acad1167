/* The HTTP listener for operators: Prometheus /metrics, /healthz and /status, on libevent's HTTP server. */
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/certqd.h"
#include "daemon/journal.h"
#include "daemon/redisq.h"

/* Groups listed under "waiting" in /status; all are counted. */
#define STATUS_WAITING_MAX 50

struct metrics {
    struct daemon *d;
    struct evhttp *http;
};

static const double duration_bounds[DURATION_BUCKETS] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };
static const double size_bounds[SIZE_BUCKETS] = { 1, 2, 5, 10, 20, 50, 100, 1000 };

static void observe(struct histogram *h, const double *bounds, size_t bound_count, double value)
{
    size_t i = 0;

    while (i < bound_count && value > bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += value;
}

void metrics_observe_request(struct daemon *d, double seconds, size_t certificates)
{
    observe(&d->request_seconds, duration_bounds, DURATION_BUCKETS, seconds);
    observe(&d->request_certificates, size_bounds, SIZE_BUCKETS, (double)certificates);
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t value)
{
    buf_printf(b, "# HELP certqd_%s %s\n# TYPE certqd_%s counter\ncertqd_%s %llu\n", name, help, name, name,
               (unsigned long long)value);
}

static void gauge(struct buf *b, const char *name, const char *help, double value)
{
    buf_printf(b, "# HELP certqd_%s %s\n# TYPE certqd_%s gauge\ncertqd_%s %.17g\n", name, help, name, name, value);
}

static void histogram(struct buf *b, const char *name, const char *help, const struct histogram *h,
                      const double *bounds, size_t bound_count)
{
    uint64_t cumulative = 0;

    buf_printf(b, "# HELP certqd_%s %s\n# TYPE certqd_%s histogram\n", name, help, name);
    for (size_t i = 0; i < bound_count; i++) {
        cumulative += h->counts[i];
        buf_printf(b, "certqd_%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cumulative);
    }
    buf_printf(b, "certqd_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    buf_printf(b, "certqd_%s_sum %.17g\ncertqd_%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

struct server_lines {
    struct buf *b;
    const char *metric;
    int kind;
};

static void server_line(const char *key, void *value, void *arg)
{
    struct server_lines *sl = arg;
    const struct server_state *s = value;
    double v;

    if (sl->kind == 0)
        v = s->in_flight;
    else
        v = s->paused_until_ms > mono_ms() ? 1 : 0;
    buf_printf(sl->b, "certqd_%s{server=\"%s\"} %.17g\n", sl->metric, s->name, v);
}

char *metrics_render(struct daemon *d)
{
    struct buf b;
    struct server_lines sl;

    buf_init(&b);
    counter(&b, "jobs_received_total", "Jobs taken from the queue by this instance, invalid ones and duplicates included.",
            d->stats.received);
    counter(&b, "jobs_succeeded_total", "Jobs that reached the succeeded state.", d->stats.succeeded);
    counter(&b, "jobs_failed_total", "Jobs that reached the failed state.", d->stats.failed);
    counter(&b, "jobs_unknown_total", "Jobs held for an operator because an order may exist.", d->stats.unknown);
    counter(&b, "jobs_invalid_total", "Jobs rejected before any request, sent to the dead-letter list.", d->stats.invalid);
    counter(&b, "jobs_duplicate_total", "Jobs whose id already had a result, not submitted again.", d->stats.duplicates);
    counter(&b, "retries_total", "Jobs scheduled for another attempt.", d->stats.retries);
    counter(&b, "requests_sent_total", "request_ssl_certificates calls sent to cPanel.", d->stats.requests);
    counter(&b, "certificates_ordered_total", "Certificates in successful orders.", d->stats.certificates);
    counter(&b, "batches_split_total", "Batches refused by cPanel and sent again job by job.", d->stats.splits);

    gauge(&b, "queue_depth", "Jobs waiting in the Redis queue (read every second; -1 when unknown).",
          d->figures.known ? (double)d->figures.queue : -1);
    gauge(&b, "retry_depth", "Jobs waiting in the Redis retry set.", d->figures.known ? (double)d->figures.retry : -1);
    gauge(&b, "reconcile_depth", "Jobs waiting for a pending-list check.",
          d->figures.known ? (double)d->figures.reconcile : -1);
    gauge(&b, "dead_letters", "Entries in the dead-letter list.", d->figures.known ? (double)d->figures.dead : -1);
    gauge(&b, "jobs_held", "Jobs this instance holds in memory.", (double)d->held_count);
    gauge(&b, "requests_running", "Requests to cPanel in flight, all servers together.", d->in_flight);
    gauge(&b, "redis_connected", "1 when the Redis command connection is up.", redisq_connected(d->rq) ? 1 : 0);
    gauge(&b, "redis_backlog", "Redis operations not yet confirmed.", (double)redisq_backlog(d->rq));
    gauge(&b, "journal_pending", "Outcomes in the journal not yet confirmed by Redis.",
          d->journal ? (double)journal_pending(d->journal) : 0);

    buf_puts(&b, "# HELP certqd_requests_in_flight Requests to cPanel in flight, per server.\n"
                 "# TYPE certqd_requests_in_flight gauge\n");
    sl = (struct server_lines){ &b, "requests_in_flight", 0 };
    hmap_each(&d->servers, server_line, &sl);
    buf_puts(&b, "# HELP certqd_server_paused 1 while the circuit breaker pauses a server.\n"
                 "# TYPE certqd_server_paused gauge\n");
    sl = (struct server_lines){ &b, "server_paused", 1 };
    hmap_each(&d->servers, server_line, &sl);

    histogram(&b, "request_duration_seconds", "Time from sending a request to cPanel to its answer.",
              &d->request_seconds, duration_bounds, DURATION_BUCKETS);
    histogram(&b, "request_certificates", "Certificates per request.", &d->request_certificates, size_bounds,
              SIZE_BUCKETS);
    return buf_steal(&b);
}

bool metrics_healthy(struct daemon *d, char *why, size_t why_len)
{
    if (!redisq_connected(d->rq)) {
        snprintf(why, why_len, "Redis is not connected (%s)", d->cfg->redis_url);
        return false;
    }
    if (redisq_stalled_ms(d->rq) > d->cfg->redis_reply_timeout_ms / 2) {
        snprintf(why, why_len, "Redis has not replied for %lld ms", (long long)redisq_stalled_ms(d->rq));
        return false;
    }
    if (d->stopping) {
        snprintf(why, why_len, "certqd is stopping");
        return false;
    }
    snprintf(why, why_len, "ok");
    return true;
}

static void reply(struct evhttp_request *req, int code, const char *type, const char *body)
{
    struct evbuffer *out = evbuffer_new();

    evbuffer_add(out, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    const char *reason = "Service Unavailable";
    if (code == 200)
        reason = "OK";
    else if (code == 404)
        reason = "Not Found";
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    char *text = metrics_render(m->d);

    reply(req, 200, "text/plain; version=0.0.4", text);
    free(text);
}

static void on_health(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    char why[256], body[300];
    bool ok = metrics_healthy(m->d, why, sizeof(why));

    snprintf(body, sizeof(body), "%s\n", why);
    reply(req, ok ? 200 : 503, "text/plain", body);
}

struct status_servers {
    yajl_gen gen;
};

static void status_server(const char *key, void *value, void *arg)
{
    yajl_gen gen = arg;
    const struct server_state *s = value;
    int64_t left = s->paused_until_ms - mono_ms();

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "name", s->name);
    json_gen_kv_int(gen, "in_flight", s->in_flight);
    json_gen_kv_int(gen, "consecutive_failures", s->consecutive_failures);
    json_gen_kv_int(gen, "paused_for_ms", left > 0 ? left : 0);
    json_gen_kv_str(gen, "pause_reason", left > 0 ? s->pause_reason : NULL);
    yajl_gen_map_close(gen);
}

static void on_status(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    struct daemon *d = m->d;
    yajl_gen gen = yajl_gen_alloc(NULL);
    char why[256];
    bool ok = metrics_healthy(d, why, sizeof(why));

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "instance", d->instance_id);
    json_gen_kv_str(gen, "version", CERTQD_VERSION);
    json_gen_kv_int(gen, "pid", getpid());
    json_gen_kv_int(gen, "uptime_s", (now_ms() - d->started_ms) / 1000);
    json_gen_kv_str(gen, "health", why);
    json_gen_str(gen, "healthy");
    yajl_gen_bool(gen, ok);
    json_gen_str(gen, "stopping");
    yajl_gen_bool(gen, d->stopping);
    json_gen_str(gen, "redis_connected");
    yajl_gen_bool(gen, redisq_connected(d->rq));
    json_gen_kv_int(gen, "redis_backlog", (long long)redisq_backlog(d->rq));
    json_gen_kv_int(gen, "jobs_held", (long long)d->held_count);
    json_gen_kv_int(gen, "requests_in_flight", d->in_flight);
    json_gen_kv_int(gen, "queue_depth", d->figures.known ? d->figures.queue : -1);
    json_gen_kv_int(gen, "retry_depth", d->figures.known ? d->figures.retry : -1);
    json_gen_kv_int(gen, "reconcile_depth", d->figures.known ? d->figures.reconcile : -1);
    json_gen_kv_int(gen, "dead_letters", d->figures.known ? d->figures.dead : -1);
    json_gen_str(gen, "counters");
    yajl_gen_map_open(gen);
    json_gen_kv_int(gen, "received", (long long)d->stats.received);
    json_gen_kv_int(gen, "succeeded", (long long)d->stats.succeeded);
    json_gen_kv_int(gen, "failed", (long long)d->stats.failed);
    json_gen_kv_int(gen, "unknown", (long long)d->stats.unknown);
    json_gen_kv_int(gen, "invalid", (long long)d->stats.invalid);
    json_gen_kv_int(gen, "duplicates", (long long)d->stats.duplicates);
    json_gen_kv_int(gen, "retries", (long long)d->stats.retries);
    json_gen_kv_int(gen, "requests_sent", (long long)d->stats.requests);
    json_gen_kv_int(gen, "certificates_ordered", (long long)d->stats.certificates);
    json_gen_kv_int(gen, "batches_split", (long long)d->stats.splits);
    yajl_gen_map_close(gen);
    json_gen_str(gen, "servers");
    yajl_gen_array_open(gen);
    hmap_each(&d->servers, status_server, gen);
    yajl_gen_array_close(gen);
    json_gen_str(gen, "waiting");
    size_t waiting = batch_status_waiting(d, gen, STATUS_WAITING_MAX);
    json_gen_kv_int(gen, "waiting_groups", (long long)waiting);
    yajl_gen_map_close(gen);

    char *body = json_gen_finish(gen);
    reply(req, 200, "application/json", body);
    free(body);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    reply(req, 404, "text/plain", "not found: use /metrics, /healthz or /status\n");
}

struct metrics *metrics_start(struct daemon *d, const char *listen, char *err, size_t err_len)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    const char *colon = strrchr(listen, ':');
    char host[256];
    long port;
    char *end;

    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof(host)) {
        snprintf(err, err_len, "invalid metrics_listen \"%s\": use HOST:PORT, such as 127.0.0.1:9187", listen);
        goto fail;
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        snprintf(err, err_len, "invalid port in metrics_listen \"%s\"", listen);
        goto fail;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }

    m->d = d;
    m->http = evhttp_new(d->base);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(m->http, 10);
    evhttp_set_cb(m->http, "/metrics", on_metrics, m);
    evhttp_set_cb(m->http, "/healthz", on_health, m);
    evhttp_set_cb(m->http, "/status", on_status, m);
    evhttp_set_gencb(m->http, on_other, m);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port);
    if (bound == NULL) {
        snprintf(err, err_len, "cannot listen on metrics_listen %s; is the port in use? set metrics_listen = to turn it off",
                 listen);
        goto fail;
    }
    /* With port 0 the kernel picks one, so the log names the port actually bound. */
    union {
        struct sockaddr any;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr;
    memset(&addr, 0, sizeof(addr));
    socklen_t addr_len = sizeof(addr);
    int bound_port = (int)port;
    if (getsockname(evhttp_bound_socket_get_fd(bound), &addr.any, &addr_len) == 0)
        bound_port = addr.any.sa_family == AF_INET6 ? ntohs(addr.v6.sin6_port) : ntohs(addr.v4.sin_port);
    log_info("metrics listening: address=%s port=%d", host, bound_port);
    return m;

fail:
    metrics_stop(m);
    return NULL;
}

void metrics_stop(struct metrics *m)
{
    if (m == NULL)
        return;
    if (m->http)
        evhttp_free(m->http);
    free(m);
}
