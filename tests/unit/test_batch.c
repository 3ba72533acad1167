/*
 * Unit tests of the batching decisions (daemon/batch.c).  The file is included
 * here with its clock replaced by a scripted one, and the Redis, HTTP and
 * result calls it makes are stubs that record what they were asked to do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define mono_ms scripted_mono_ms
#include "daemon/batch.c"
#undef mono_ms

/* The clock: each read returns the next value of the script, then the last one again. */
static int64_t clock_script[8];
static size_t clock_len;
static size_t clock_at;

int64_t scripted_mono_ms(void)
{
    int64_t v = clock_script[clock_at];

    if (clock_at + 1 < clock_len)
        clock_at++;
    return v;
}

static void clock_set(size_t count, ...)
{
    va_list ap;

    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        clock_script[i] = va_arg(ap, int64_t);
    va_end(ap);
    clock_len = count;
    clock_at = 0;
}

/* ---- stubs of what batch.c calls outside common/ ---- */

static int marks_sent;
static void *last_mark;

struct rcmds *rcmds_new(void)
{
    return NULL;
}

void rcmds_cmd(struct rcmds *c, const char *name)
{
}

void rcmds_arg(struct rcmds *c, const char *s)
{
}

void rcmds_argf(struct rcmds *c, const char *fmt, ...)
{
}

void redisq_exec(struct redisq *rq, struct rcmds *c, redisq_done_fn done, void *arg)
{
}

void redisq_script(struct redisq *rq, enum redisq_script script, int key_count, struct rcmds *c,
                   redisq_done_fn done, void *arg)
{
    if (script == SCRIPT_MARK) {
        marks_sent++;
        last_mark = arg;
    }
}

void daemon_check_stopped(struct daemon *d)
{
}

void metrics_observe_request(struct daemon *d, double seconds, size_t certificates)
{
}

void queue_job_release(struct daemon *d, struct held_job *hj)
{
}

void reconcile_add(struct daemon *d, struct rcmds *c, struct held_job *hj, const char *reason)
{
}

void reconcile_start(struct daemon *d, struct held_job *hj)
{
}

void results_add_final(struct daemon *d, struct rcmds *c, struct held_job *hj, const struct job_outcome *o)
{
}

void results_add_retry(struct daemon *d, struct rcmds *c, struct held_job *hj, int64_t due_ms, const char *error)
{
}

void results_add_stat(struct daemon *d, struct rcmds *c, const char *counter, long long by)
{
}

void results_commit(struct daemon *d, struct rcmds *c, struct held_job **jobs, size_t count)
{
}

void submit_start(struct submitter *sub, struct batch *b)
{
}

/* ---- a daemon with one server, cp1 ---- */

struct world {
    struct daemon d;
    struct config cfg;
    struct server_config server;
};

static int setup(void **state)
{
    struct world *w = xcalloc(1, sizeof(*w));

    w->server.name = xstrdup("cp1");
    w->server.url = xstrdup("https://127.0.0.1:1");
    w->server.auth = AUTH_CPANEL;
    w->server.user = xstrdup("bob");
    w->server.token = xstrdup("servertoken");
    w->server.max_in_flight = 8;
    w->server.per_user_in_flight = 1;
    w->cfg.key_prefix = xstrdup("certq");
    w->cfg.batch_wait_ms = 200;
    w->cfg.batch_max_certificates = 100;
    w->cfg.max_in_flight = 100;
    w->cfg.request_timeout_s = 60;
    w->cfg.servers = &w->server;
    w->cfg.server_count = 1;
    w->d.cfg = &w->cfg;
    w->d.base = event_base_new();
    snprintf(w->d.instance_id, sizeof(w->d.instance_id), "test");
    hmap_init(&w->d.held);
    hmap_init(&w->d.groups);
    hmap_init(&w->d.accounts);
    hmap_init(&w->d.servers);
    TAILQ_INIT(&w->d.blocked);
    batch_config_changed(&w->d);
    log_set_level(LOG_WARN);
    marks_sent = 0;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;

    /* A batch still being marked goes back to its group, as when another instance has the account's lease. */
    if (last_mark) {
        redisReply busy = { .type = REDIS_REPLY_INTEGER, .integer = 0 };
        mark_done(&w->d, last_mark, &busy);
        last_mark = NULL;
    }
    batch_free_all(&w->d);
    hmap_destroy(&w->d.held);
    hmap_destroy(&w->d.groups);
    hmap_destroy(&w->d.accounts);
    hmap_destroy(&w->d.servers);
    event_base_free(w->d.base);
    free(w->server.name);
    free(w->server.url);
    free(w->server.user);
    free(w->server.token);
    free(w->cfg.key_prefix);
    free(w);
    return 0;
}

/* Adds a one-certificate job for account bob of cp1 at the clock's current value. */
static struct held_job *add_job(struct world *w, const char *id)
{
    char payload[512], err[256];
    struct job_limits limits = { .max_bytes = 65536, .reply_prefix = "certq:reply:" };
    struct held_job *hj = xcalloc(1, sizeof(*hj));

    snprintf(payload, sizeof(payload),
             "{\"id\":\"%s\",\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
             "\"certificates\":[{\"product_id\":143,\"price\":6,\"subject_names\":[[\"dNSName\",\"%s.example.com\"]]}]}",
             id, id);
    hj->d = &w->d;
    hj->seq = xstrdup(id);
    hj->payload = xstrdup(payload);
    hj->job = job_parse(payload, strlen(payload), &limits, err, sizeof(err));
    assert_non_null(hj->job);
    hj->job->user = xstrdup("bob");
    batch_add_job(&w->d, hj);
    return hj;
}

static struct group *only_group(struct world *w)
{
    assert_int_equal(w->d.groups.count, 1);
    for (size_t i = 0; i < w->d.groups.bucket_count; i++)
        if (w->d.groups.buckets[i])
            return w->d.groups.buckets[i]->value;
    fail();
    return NULL;
}

/* Runs the group's wait timer as libevent would: no longer pending, then its callback. */
static void fire_wait_timer(struct group *g)
{
    evtimer_del(g->wait_timer);
    group_wait_over(-1, EV_TIMEOUT, g);
}

static void test_batch_job_waits_for_batch_wait(void **state)
{
    struct world *w = *state;

    clock_set(1, (int64_t)1000);
    add_job(w, "a");
    struct group *g = only_group(w);
    assert_int_equal(marks_sent, 0);
    assert_true(evtimer_pending(g->wait_timer, NULL));
}

static void test_batch_sent_once_wait_is_over(void **state)
{
    struct world *w = *state;

    clock_set(1, (int64_t)1000);
    add_job(w, "a");
    struct group *g = only_group(w);
    clock_set(1, (int64_t)1200);
    fire_wait_timer(g);
    assert_int_equal(marks_sent, 1);
}

/*
 * The wait timer fires when the clock reads 1199, and the wait ends at 1200
 * while the group is checked.  The group must then either send or
 * keep a timer; with neither its job would stay in memory for good.
 */
static void test_batch_wait_ending_during_check_keeps_job(void **state)
{
    struct world *w = *state;

    clock_set(1, (int64_t)1000);
    add_job(w, "a");
    struct group *g = only_group(w);
    clock_set(2, (int64_t)1199, (int64_t)1200);
    fire_wait_timer(g);
    assert_true(marks_sent == 1 || evtimer_pending(g->wait_timer, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_job_waits_for_batch_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sent_once_wait_is_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_wait_ending_during_check_keeps_job, setup, teardown),
    };

    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
