/* certq stats and certq watch: queue sizes, certqd's counters and its live instances, once or redrawn. */
#include "cli/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"

/* The counters certqd keeps in PREFIX:stats, in the order they are shown; others found there follow. */
static const char *const known_counters[] = {
    "received", "succeeded", "failed", "unknown", "invalid", "duplicates", "retries", "requests_sent",
    "certificates_ordered", "batches_split",
};
#define KNOWN_COUNTERS (sizeof(known_counters) / sizeof(known_counters[0]))

struct instance {
    char *id;
    redisReply *hash;       /* HGETALL of PREFIX:instance:ID; no fields when its heartbeat key expired */
};

struct snapshot {
    int64_t taken_mono_ms;
    long long queued, retrying, reconciling, dead;
    char **counter_names;
    long long *counter_values;
    size_t counter_count;
    struct instance *instances;
    size_t instance_count;
};

static long long read_integer(struct cli *cli, const char *command, const char *suffix)
{
    char key[CERTQ_KEY_MAX];

    rconn_key(cli, key, "%s", suffix);
    redisReply *r = rconn_run(cli, command, key, (char *)NULL);
    long long v = rconn_integer(r, 0);
    freeReplyObject(r);
    return v;
}

static void add_counter(struct snapshot *s, const char *name, long long value)
{
    s->counter_names = xrealloc(s->counter_names, (s->counter_count + 1) * sizeof(char *));
    s->counter_values = xrealloc(s->counter_values, (s->counter_count + 1) * sizeof(long long));
    s->counter_names[s->counter_count] = xstrdup(name);
    s->counter_values[s->counter_count] = value;
    s->counter_count++;
}

static bool is_known_counter(const char *name)
{
    for (size_t i = 0; i < KNOWN_COUNTERS; i++)
        if (!strcmp(known_counters[i], name))
            return true;
    return false;
}

static void read_counters(struct cli *cli, struct snapshot *s)
{
    char key[CERTQ_KEY_MAX];

    rconn_key(cli, key, "stats");
    redisReply *hash = rconn_run(cli, "HGETALL", key, (char *)NULL);
    for (size_t i = 0; i < KNOWN_COUNTERS; i++) {
        const char *v = rconn_hash_get(hash, known_counters[i]);
        add_counter(s, known_counters[i], v ? strtoll(v, NULL, 10) : 0);
    }
    for (size_t i = 0; i + 1 < hash->elements; i += 2)
        if (!is_known_counter(hash->element[i]->str))
            add_counter(s, hash->element[i]->str, strtoll(hash->element[i + 1]->str, NULL, 10));
    freeReplyObject(hash);
}

static void read_instances(struct cli *cli, struct snapshot *s)
{
    char key[CERTQ_KEY_MAX];

    rconn_key(cli, key, "instances");
    redisReply *members = rconn_run(cli, "SMEMBERS", key, (char *)NULL);
    s->instances = xcalloc(members->elements + 1, sizeof(struct instance));
    for (size_t i = 0; i < members->elements; i++) {
        struct instance *inst = &s->instances[s->instance_count++];
        inst->id = xstrdup(members->element[i]->str);
        rconn_key(cli, key, "instance:%s", inst->id);
        inst->hash = rconn_run(cli, "HGETALL", key, (char *)NULL);
    }
    freeReplyObject(members);
}

static void snapshot_read(struct cli *cli, struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->taken_mono_ms = mono_ms();
    s->queued = read_integer(cli, "LLEN", "queue");
    s->retrying = read_integer(cli, "ZCARD", "retry");
    s->reconciling = read_integer(cli, "ZCARD", "reconcile");
    s->dead = read_integer(cli, "LLEN", "dead");
    read_counters(cli, s);
    read_instances(cli, s);
}

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->counter_count; i++)
        free(s->counter_names[i]);
    free(s->counter_names);
    free(s->counter_values);
    for (size_t i = 0; i < s->instance_count; i++) {
        free(s->instances[i].id);
        freeReplyObject(s->instances[i].hash);
    }
    free(s->instances);
    memset(s, 0, sizeof(*s));
}

/* Returns the counter's change per second since prev, or a negative number when there is no earlier value. */
static double counter_rate(const struct snapshot *s, const struct snapshot *prev, size_t i)
{
    if (prev == NULL || prev->taken_mono_ms >= s->taken_mono_ms)
        return -1;
    for (size_t j = 0; j < prev->counter_count; j++)
        if (!strcmp(prev->counter_names[j], s->counter_names[i]))
            return (double)(s->counter_values[i] - prev->counter_values[j]) * 1000.0 /
                   (double)(s->taken_mono_ms - prev->taken_mono_ms);
    return -1;
}

static long long hash_ms(const redisReply *hash, const char *field)
{
    const char *v = rconn_hash_get(hash, field);

    return v ? strtoll(v, NULL, 10) : 0;
}

static void print_instances(const struct snapshot *s)
{
    static const char *const headers[] = { "INSTANCE", "HOST", "PID", "VERSION", "UPTIME", "HEARTBEAT AGE", "JOBS HELD",
                                           "IN FLIGHT", "PAUSED SERVERS", NULL };
    static const bool right[] = { false, false, true, false, true, true, true, true, false };
    struct table t;
    size_t live = 0, stale = 0;
    long long now = now_ms();

    table_init(&t, headers, right);
    for (size_t i = 0; i < s->instance_count; i++) {
        const redisReply *h = s->instances[i].hash;
        char uptime[32], age[32];
        if (h->elements == 0) {
            stale++;
            continue;
        }
        live++;
        out_duration(uptime, sizeof(uptime), now - hash_ms(h, "started_ms"));
        out_duration(age, sizeof(age), now - hash_ms(h, "heartbeat_ms"));
        const char *paused = rconn_hash_get(h, "paused_servers");
        const char *cells[] = { s->instances[i].id, rconn_hash_get(h, "host"), rconn_hash_get(h, "pid"),
                                rconn_hash_get(h, "version"), uptime, age, rconn_hash_get(h, "jobs_held"),
                                rconn_hash_get(h, "requests_in_flight"), paused && paused[0] ? paused : "-" };
        table_add(&t, cells);
    }
    printf("\nInstances: %zu live\n", live);
    if (live > 0)
        table_print(&t, 2);
    else
        table_free(&t);
    if (stale > 0)
        printf("  %zu registered instance%s without a heartbeat; certqd recovers their jobs\n", stale,
               stale == 1 ? "" : "s");
}

static void print_text(const struct cli *cli, const struct snapshot *s, const struct snapshot *prev)
{
    static const char *const queue_headers[] = { "QUEUE", "JOBS", NULL };
    static const bool queue_right[] = { false, true };
    static const char *const counter_headers[] = { "COUNTER", "TOTAL", "PER SECOND", NULL };
    static const bool counter_right[] = { false, true, true };
    const char *prefix = cli->settings.key_prefix;
    struct table t;
    char name[CERTQ_KEY_MAX + 32], value[32], rate[32];

    table_init(&t, queue_headers, queue_right);
    const char *labels[] = { "queued", "retrying", "reconciling", "dead letters" };
    const char *keys[] = { "queue", "retry", "reconcile", "dead" };
    long long values[] = { s->queued, s->retrying, s->reconciling, s->dead };
    for (size_t i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "%s (%s:%s)", labels[i], prefix, keys[i]);
        snprintf(value, sizeof(value), "%lld", values[i]);
        table_add(&t, (const char *[]){ name, value });
    }
    table_print(&t, 0);
    putchar('\n');

    table_init(&t, counter_headers, counter_right);
    for (size_t i = 0; i < s->counter_count; i++) {
        double r = counter_rate(s, prev, i);
        snprintf(value, sizeof(value), "%lld", s->counter_values[i]);
        if (r < 0)
            snprintf(rate, sizeof(rate), "-");
        else
            snprintf(rate, sizeof(rate), "%.1f", r);
        table_add(&t, (const char *[]){ s->counter_names[i], value, rate });
    }
    table_print(&t, 0);

    print_instances(s);
}

static void print_json(const struct snapshot *s, const struct snapshot *prev)
{
    yajl_gen gen = out_json_begin(false);
    long long now = now_ms();

    yajl_gen_map_open(gen);
    json_gen_kv_int(gen, "queued", s->queued);
    json_gen_kv_int(gen, "retrying", s->retrying);
    json_gen_kv_int(gen, "reconciling", s->reconciling);
    json_gen_kv_int(gen, "dead", s->dead);

    json_gen_str(gen, "counters");
    yajl_gen_map_open(gen);
    for (size_t i = 0; i < s->counter_count; i++)
        json_gen_kv_int(gen, s->counter_names[i], s->counter_values[i]);
    yajl_gen_map_close(gen);

    if (prev) {
        json_gen_str(gen, "rates_per_s");
        yajl_gen_map_open(gen);
        for (size_t i = 0; i < s->counter_count; i++) {
            double r = counter_rate(s, prev, i);
            json_gen_str(gen, s->counter_names[i]);
            if (r < 0)
                yajl_gen_null(gen);
            else
                yajl_gen_double(gen, r);
        }
        yajl_gen_map_close(gen);
    }

    json_gen_str(gen, "instances");
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < s->instance_count; i++) {
        const redisReply *h = s->instances[i].hash;
        if (h->elements == 0)
            continue;
        yajl_gen_map_open(gen);
        json_gen_kv_str(gen, "id", s->instances[i].id);
        json_gen_kv_str(gen, "host", rconn_hash_get(h, "host"));
        json_gen_kv_int(gen, "pid", hash_ms(h, "pid"));
        json_gen_kv_str(gen, "version", rconn_hash_get(h, "version"));
        json_gen_kv_int(gen, "started_ms", hash_ms(h, "started_ms"));
        json_gen_kv_int(gen, "heartbeat_ms", hash_ms(h, "heartbeat_ms"));
        json_gen_kv_int(gen, "uptime_ms", now - hash_ms(h, "started_ms"));
        json_gen_kv_int(gen, "heartbeat_age_ms", now - hash_ms(h, "heartbeat_ms"));
        json_gen_kv_int(gen, "jobs_held", hash_ms(h, "jobs_held"));
        json_gen_kv_int(gen, "requests_in_flight", hash_ms(h, "requests_in_flight"));
        json_gen_kv_str(gen, "paused_servers", rconn_hash_get(h, "paused_servers"));
        yajl_gen_map_close(gen);
    }
    yajl_gen_array_close(gen);

    json_gen_str(gen, "stale_instances");
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < s->instance_count; i++)
        if (s->instances[i].hash->elements == 0)
            json_gen_str(gen, s->instances[i].id);
    yajl_gen_array_close(gen);
    yajl_gen_map_close(gen);
    out_json_finish(gen);
}

static void print_snapshot(const struct cli *cli, const struct snapshot *s, const struct snapshot *prev)
{
    if (cli->json)
        print_json(s, prev);
    else
        print_text(cli, s, prev);
    fflush(stdout);
}

static void sleep_ms(long long ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

int stats_main(struct cli *cli, int argc, char **argv)
{
    static const struct option options[] = {
        { "rate", no_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct snapshot first, second;
    bool rate = false;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'r':
            rate = true;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: certq stats [--rate]\n"
                   "\n"
                   "Print the queue length, the sizes of the retry and reconcile sets, the dead-letter\n"
                   "length, every counter certqd keeps, and the live instances with their host, pid,\n"
                   "version, uptime, heartbeat age, jobs held and requests in flight.\n"
                   "\n"
                   "  --rate   read the counters twice, 1 s apart, and print each one's change per second\n"
                   "  --json   print one JSON object (counters, instances, and rates_per_s with --rate)\n"
                   "\n"
                   "Exit status: 0 success, 64 usage error, 69 Redis unavailable.\n");
            return EXIT_DONE;
        default:
            return cli_usage_error("stats", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("stats", "unexpected argument \"%s\"", argv[optind]);

    snapshot_read(cli, &first);
    if (!rate) {
        print_snapshot(cli, &first, NULL);
        snapshot_free(&first);
        return EXIT_DONE;
    }
    sleep_ms(1000);
    snapshot_read(cli, &second);
    print_snapshot(cli, &second, &first);
    snapshot_free(&first);
    snapshot_free(&second);
    return EXIT_DONE;
}

static volatile sig_atomic_t watch_stop;

static void on_interrupt(int signo)
{
    (void)signo;
    watch_stop = 1;
}

int watch_main(struct cli *cli, int argc, char **argv)
{
    static const struct option options[] = {
        { "interval", required_argument, NULL, 'i' },
        { "once", no_argument, NULL, 'o' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct snapshot prev = { 0 }, cur;
    double interval_s = 1;
    bool once = false, have_prev = false;
    char *end;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hi:", options, NULL)) != -1) {
        switch (opt) {
        case 'i':
            interval_s = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(interval_s >= 0.1 && interval_s <= 3600))
                return cli_usage_error("watch", "invalid --interval \"%s\": give seconds from 0.1 to 3600", optarg);
            break;
        case 'o':
            once = true;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: certq watch [--interval S] [--once]\n"
                   "\n"
                   "Clear the screen and redraw the 'certq stats' table every S seconds (default 1), with\n"
                   "each counter's change per second since the previous frame, until Ctrl-C.\n"
                   "\n"
                   "  -i, --interval S   seconds between frames, 0.1 to 3600\n"
                   "  --once             print one frame without clearing the screen, and exit\n"
                   "  --json             print one JSON object per frame instead of the table\n"
                   "\n"
                   "Exit status: 0 success, 64 usage error, 69 Redis unavailable.\n");
            return EXIT_DONE;
        case ':':
            return cli_usage_error("watch", "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("watch", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("watch", "unexpected argument \"%s\"", argv[optind]);

    struct sigaction sa = { .sa_handler = on_interrupt };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Frames are cleared only on a terminal, so output piped to a file stays readable. */
    bool clear = !once && !cli->json && isatty(STDOUT_FILENO);
    while (!watch_stop) {
        char when[64];
        time_t t = time(NULL);
        struct tm tm;

        snapshot_read(cli, &cur);
        if (clear)
            fputs("\033[H\033[2J", stdout);
        if (!cli->json) {
            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
            printf("certqd at %s, key prefix %s, %s%s\n\n", cli->settings.redis_url, cli->settings.key_prefix, when,
                   once ? "" : "; Ctrl-C to stop");
        }
        print_snapshot(cli, &cur, have_prev ? &prev : NULL);
        if (have_prev)
            snapshot_free(&prev);
        prev = cur;
        have_prev = true;
        if (once)
            break;
        sleep_ms((long long)(interval_s * 1000));
    }
    if (have_prev)
        snapshot_free(&prev);
    return EXIT_DONE;
}
