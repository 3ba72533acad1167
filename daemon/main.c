/* certqd: takes SSL certificate orders from a Redis list and submits them to cPanel in batches. */
#include <curl/curl.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/certqd.h"
#include "daemon/journal.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/redisq.h"
#include "daemon/results.h"
#include "daemon/submit.h"

#define EXIT_CONFIG 78
#define FLUSH_GRACE_S 5

static void usage(FILE *out)
{
    fprintf(out,
            "usage: certqd -c FILE [--check-config]\n"
            "\n"
            "Takes SSL certificate order jobs from a Redis list and submits them to cPanel's\n"
            "Market::request_ssl_certificates in batches.\n"
            "\n"
            "  -c, --config FILE   the INI config file (default /etc/certqd/certqd.conf)\n"
            "  -t, --check-config  check the config and exit: 0 when valid, 78 when not\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads the config; SIGTERM or SIGINT stops after in-flight\n"
            "requests finish (a second one stops at once).\n");
}

static void loop_exit(struct daemon *d)
{
    event_base_loopbreak(d->base);
}

static void final_cleanup_done(struct daemon *d, void *arg, redisReply *reply)
{
    log_info("stopped cleanly: instance=%s", d->instance_id);
    loop_exit(d);
}

/* Once nothing is held or in flight, returns the taking list's leftovers and unregisters this instance. */
static void final_cleanup(struct daemon *d)
{
    char key[256];
    struct rcmds *args = rcmds_new();

    rcmds_cmd(args, "ARGS");
    rcmds_arg(args, d->cfg->key_prefix);
    rcmds_arg(args, d->instance_id);
    redisq_script(d->rq, SCRIPT_RELEASE, 0, args, NULL, NULL);

    struct rcmds *c = rcmds_new();
    snprintf(key, sizeof(key), "%s:instance:%s", d->cfg->key_prefix, d->instance_id);
    rcmds_cmd(c, "DEL");
    rcmds_arg(c, key);
    snprintf(key, sizeof(key), "%s:instances", d->cfg->key_prefix);
    rcmds_cmd(c, "SREM");
    rcmds_arg(c, key);
    rcmds_arg(c, d->instance_id);
    redisq_exec(d->rq, c, final_cleanup_done, NULL);
}

static bool cleanup_started;

void daemon_check_stopped(struct daemon *d)
{
    if (!d->stopping || cleanup_started)
        return;
    if (d->held_count > 0 || d->in_flight > 0 || !redisq_idle(d->rq))
        return;
    cleanup_started = true;
    final_cleanup(d);
}

static void flush_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;

    log_error("Redis did not take the last writes within shutdown_timeout_s + %d s; exiting, and jobs still held in "
              "Redis (and outcomes in the journal) will be recovered by another instance or the next start: backlog=%zu",
              FLUSH_GRACE_S, redisq_backlog(d->rq));
    loop_exit(d);
}

static void shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    struct timeval grace = { FLUSH_GRACE_S, 0 };

    if (d->in_flight > 0)
        log_warn("shutdown_timeout_s passed with requests in flight; abandoning them as in doubt: in_flight=%d",
                 d->in_flight);
    submit_abort_all(d->sub);
    event_del(d->shutdown_timer);
    event_assign(d->shutdown_timer, d->base, -1, 0, flush_timeout, d);
    event_add(d->shutdown_timer, &grace);
}

static void stop_check(evutil_socket_t fd, short what, void *arg)
{
    daemon_check_stopped(arg);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    struct timeval tv = { d->cfg->shutdown_timeout_s, 0 };
    struct timeval check = { 0, 100000 };

    if (d->stopping) {
        log_warn("second stop signal: exiting now; jobs still held stay in Redis for recovery: held=%zu in_flight=%d",
                 d->held_count, d->in_flight);
        d->stop_now = true;
        loop_exit(d);
        return;
    }
    notify_send("STOPPING=1");
    log_info("stopping: signal=%s held=%zu in_flight=%d shutdown_timeout_s=%d", sig == SIGTERM ? "TERM" : "INT",
             d->held_count, d->in_flight, d->cfg->shutdown_timeout_s);
    d->stopping = true;
    redisq_stop_taking(d->rq);
    batch_release_unsent(d);
    d->shutdown_timer = evtimer_new(d->base, shutdown_timeout, d);
    evtimer_add(d->shutdown_timer, &tv);
    d->stop_check = event_new(d->base, -1, EV_PERSIST, stop_check, d);
    event_add(d->stop_check, &check);
    daemon_check_stopped(d);
}

static void apply_fixed_options(struct daemon *d, struct config *next)
{
    struct config *cur = d->cfg;
    struct {
        const char *name;
        char **cur, **next;
    } fixed[] = {
        { "redis_url", &cur->redis_url, &next->redis_url },
        { "key_prefix", &cur->key_prefix, &next->key_prefix },
        { "state_dir", &cur->state_dir, &next->state_dir },
        { "instance_name", &cur->instance_name, &next->instance_name },
        { "metrics_listen", &cur->metrics_listen, &next->metrics_listen },
    };

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        const char *a = *fixed[i].cur ? *fixed[i].cur : "";
        const char *b = *fixed[i].next ? *fixed[i].next : "";
        if (strcmp(a, b) != 0)
            log_warn("reload: %s cannot change while certqd runs; keeping \"%s\" until a restart", fixed[i].name, a);
        char *keep = *fixed[i].next;
        *fixed[i].next = *fixed[i].cur;
        *fixed[i].cur = keep;
    }
    /* The parsed Redis address follows redis_url. */
    char *host = next->redis_host, *unix_path = next->redis_unix, *password = next->redis_password;
    int port = next->redis_port, db = next->redis_db;
    next->redis_host = cur->redis_host;
    next->redis_unix = cur->redis_unix;
    next->redis_password = cur->redis_password;
    next->redis_port = cur->redis_port;
    next->redis_db = cur->redis_db;
    cur->redis_host = host;
    cur->redis_unix = unix_path;
    cur->redis_password = password;
    cur->redis_port = port;
    cur->redis_db = db;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    char err[512];

    log_info("reloading config: file=%s", d->cfg->path);
    notify_send("RELOADING=1");
    struct config *next = config_load(d->cfg->path, err, sizeof(err));
    if (next == NULL) {
        log_error("reload failed, keeping the running config: %s", err);
        notify_send("READY=1");
        return;
    }
    apply_fixed_options(d, next);
    for (size_t i = 0; i < next->server_count; i++) {
        const struct server_config *was = config_find_server(d->cfg, next->servers[i].name);
        struct server_state *s = hmap_get(&d->servers, next->servers[i].name);
        if (was == NULL)
            log_info("reload: server added: server=%s", next->servers[i].name);
        else if (strcmp(was->token, next->servers[i].token) != 0 || strcmp(was->url, next->servers[i].url) != 0 ||
                 strcmp(was->user, next->servers[i].user) != 0) {
            log_info("reload: server changed: server=%s", next->servers[i].name);
            if (s) {
                s->paused_until_ms = 0;
                s->consecutive_failures = 0;
            }
        }
        if (!next->servers[i].tls_verify)
            log_warn("TLS verification is off for server %s (tls_verify = no)", next->servers[i].name);
    }
    for (size_t i = 0; i < d->cfg->server_count; i++)
        if (config_find_server(next, d->cfg->servers[i].name) == NULL)
            log_info("reload: server removed; its queued jobs will fail: server=%s", d->cfg->servers[i].name);

    struct config *old = d->cfg;
    d->cfg = next;
    batch_config_changed(d);
    submit_config_changed(d->sub);
    log_set_level((enum log_level)next->log_level);
    config_free(old);
    log_info("reload done: servers=%zu", next->server_count);
    notify_send("READY=1");
    batch_dispatch(d);
}

static void dispatch_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;

    batch_dispatch(d);
    if (notify_watchdog_ms() > 0)
        notify_send("WATCHDOG=1");
    notify_sendf("STATUS=queue=%lld retry=%lld reconcile=%lld held=%zu in_flight=%d redis=%s",
                 d->figures.known ? d->figures.queue : -1, d->figures.known ? d->figures.retry : -1,
                 d->figures.known ? d->figures.reconcile : -1, d->held_count, d->in_flight,
                 redisq_connected(d->rq) ? "connected" : "down");
}

static void make_instance_id(struct daemon *d)
{
    char rnd[37];

    if (gethostname(d->hostname, sizeof(d->hostname)) != 0)
        snprintf(d->hostname, sizeof(d->hostname), "unknown");
    d->hostname[sizeof(d->hostname) - 1] = '\0';
    for (char *p = d->hostname; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            *p = '_';
    uuid_v4(rnd);
    rnd[8] = '\0';
    snprintf(d->instance_id, sizeof(d->instance_id), "%s-%d-%s",
             d->cfg->instance_name ? d->cfg->instance_name : d->hostname, (int)getpid(), rnd);
}

static int run(struct daemon *d)
{
    struct timeval second = { 0, 250000 };

    d->base = event_base_new();
    if (d->base == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }
    d->sub = submit_new(d);
    d->rq = redisq_new(d);
    char err[512];
    d->journal = journal_open(d->cfg->state_dir, err, sizeof(err));
    if (d->journal == NULL) {
        log_error("cannot start: %s", err);
        return 1;
    }
    results_replay_journal(d);
    if (d->cfg->metrics_listen[0] != '\0') {
        d->metrics = metrics_start(d, d->cfg->metrics_listen, err, sizeof(err));
        if (d->metrics == NULL) {
            log_error("cannot start: %s", err);
            return 1;
        }
    }
    d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_reload, d);
    event_add(d->sig_term, NULL);
    event_add(d->sig_int, NULL);
    event_add(d->sig_hup, NULL);
    struct event *tick = event_new(d->base, -1, EV_PERSIST, dispatch_tick, d);
    event_add(tick, &second);

    log_info("starting: version=%s instance=%s redis=%s key_prefix=%s servers=%zu ambiguous_policy=%s", CERTQD_VERSION,
             d->instance_id, d->cfg->redis_url, d->cfg->key_prefix, d->cfg->server_count,
             config_policy_name(d->cfg->ambiguous_policy));
    for (size_t i = 0; i < d->cfg->server_count; i++) {
        if (!d->cfg->servers[i].tls_verify)
            log_warn("TLS verification is off for server %s (tls_verify = no): its certificate is not checked",
                     d->cfg->servers[i].name);
        if (str_has_prefix(d->cfg->servers[i].url, "http://"))
            log_warn("server %s uses plain http: its API token and jobs' access tokens cross the network "
                     "unencrypted; use https://", d->cfg->servers[i].name);
    }
    batch_config_changed(d);
    redisq_start(d->rq);
    notify_send("READY=1");

    event_base_dispatch(d->base);
    metrics_stop(d->metrics);

    results_flush(d);
    results_shutdown();
    event_free(tick);
    event_free(d->sig_term);
    event_free(d->sig_int);
    event_free(d->sig_hup);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = "/etc/certqd/certqd.conf";
    bool check_only = false;
    char err[512];
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            printf("certqd %s\n", CERTQD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "certqd: unexpected argument \"%s\"; see certqd --help\n", argv[optind]);
        return EXIT_CONFIG;
    }

    struct config *cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        log_error("invalid config: %s", err);
        return EXIT_CONFIG;
    }
    if (check_only) {
        printf("%s: config is valid: servers=%zu redis=%s\n", path, cfg->server_count, cfg->redis_url);
        config_free(cfg);
        return 0;
    }
    log_set_level((enum log_level)cfg->log_level);

    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        config_free(cfg);
        return 1;
    }

    struct daemon d;
    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.started_ms = now_ms();
    hmap_init(&d.held);
    hmap_init(&d.groups);
    hmap_init(&d.accounts);
    hmap_init(&d.servers);
    TAILQ_INIT(&d.blocked);
    make_instance_id(&d);

    int rc = run(&d);

    journal_close(d.journal);
    batch_free_all(&d);
    redisq_free(d.rq);
    submit_free(d.sub);
    if (d.shutdown_timer)
        event_free(d.shutdown_timer);
    if (d.stop_check)
        event_free(d.stop_check);
    event_base_free(d.base);
    hmap_destroy(&d.held);
    hmap_destroy(&d.groups);
    hmap_destroy(&d.accounts);
    hmap_destroy(&d.servers);
    config_free(d.cfg);
    curl_global_cleanup();
    return rc;
}
