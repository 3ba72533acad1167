/*
 * bench-load: the load generator and sampler behind tests/bench/run.sh.
 * It fills certqd's queue with pipelined LPUSHes, waits for jobs to reach a
 * final state while sampling CPU, memory and descriptors from /proc, times
 * single jobs end to end, times the mock cPanel server alone, and runs a
 * fixed-rate producer.  Results go to stdout as KEY=VALUE lines.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "725431a1-d5bc-11e5-a28b-8b0e09a93f05"
#define QUEUE_KEY "certq:queue"
#define STATS_KEY "certq:stats"
#define REPLY_KEY "certq:reply:bench"
#define FILL_CHUNK 1000
#define MAX_PIDS 32
#define MAX_MOCKS 16
#define JOB_MAX 1024

struct options {
    const char *host;
    int port;
    long jobs;
    int servers;
    int accounts;
    bool unbatched;
    const char *tag;
    const char *server;
    const char *user;
    long long t0_ns;
    int interval_ms;
    int timeout_s;
    const char *pid_spec[MAX_PIDS];
    int pid_specs;
    const char *mock_url[MAX_MOCKS];
    int mock_urls;
    const char *metrics_url;
    const char *cacert;
    const char *token;
    int rate;
    int seconds;
    int warmup;
    bool count_fds;
};

/* One process watched from /proc, with the CPU time it had when watching began. */
struct watched {
    char role[32];
    int pid;
    double cpu_start_s;
    double cpu_end_s;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench-load: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static redisContext *redis_open(const struct options *o)
{
    redisContext *c = redisConnect(o->host, o->port);

    if (c == NULL || c->err)
        die("cannot connect to Redis at %s:%d: %s", o->host, o->port, c ? c->errstr : "out of memory");
    return c;
}

static redisReply *redis_run(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        die("Redis command failed: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        die("Redis returned an error: %s", r->str);
    return r;
}

/*
 * Writes job number n of a run as JSON into out.  Job n belongs to group
 * n % (servers * accounts): server s(g % servers + 1), account
 * s<server>u(g / servers + 1), so consecutive jobs go to different groups.
 */
static int job_json(char *out, size_t len, const struct options *o, long n, const char *reply_to)
{
    long groups = (long)o->servers * o->accounts;
    long g = n % groups;
    int server = (int)(g % o->servers) + 1;
    long account = g / o->servers + 1;
    char name[128];

    snprintf(name, sizeof(name), "j%ld.%s.example.com", n, o->tag);
    return snprintf(out, len,
                    "{\"id\":\"%s-%ld\",\"server\":\"s%d\",\"user\":\"s%du%ld\",\"provider\":\"cPStore\","
                    "\"access_token\":\"" TOKEN "\",%s%s%s%s"
                    "\"certificates\":[{\"product_id\":143,\"price\":6,\"subject_names\":[[\"dNSName\",\"%s\"]],"
                    "\"vhost_names\":[\"%s\"]}]}",
                    o->tag, n, server, server, account, o->unbatched ? "\"batch\":false," : "",
                    reply_to ? "\"reply_to\":\"" : "", reply_to ? reply_to : "", reply_to ? "\"," : "", name, name);
}

/* Appends one LPUSH of jobs [first, first + count) to the pipeline. */
static void append_lpush(redisContext *c, const struct options *o, long first, long count)
{
    const char **argv = calloc((size_t)count + 2, sizeof(char *));
    size_t *lens = calloc((size_t)count + 2, sizeof(size_t));
    char *jobs = malloc((size_t)count * JOB_MAX);

    if (argv == NULL || lens == NULL || jobs == NULL)
        die("out of memory");
    argv[0] = "LPUSH";
    argv[1] = QUEUE_KEY;
    lens[0] = 5;
    lens[1] = strlen(QUEUE_KEY);
    for (long i = 0; i < count; i++) {
        char *slot = jobs + i * JOB_MAX;
        int n = job_json(slot, JOB_MAX, o, first + i, NULL);
        argv[i + 2] = slot;
        lens[i + 2] = (size_t)n;
    }
    redisAppendCommandArgv(c, (int)count + 2, argv, lens);
    free(argv);
    free(lens);
    free(jobs);
}

static void read_replies(redisContext *c, int count)
{
    for (int i = 0; i < count; i++) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            die("Redis pipeline failed: %s", c->errstr);
        if (r->type == REDIS_REPLY_ERROR)
            die("Redis returned an error: %s", r->str);
        freeReplyObject(r);
    }
}

/* fill: pushes o->jobs jobs in LPUSHes of FILL_CHUNK, with up to 16 commands in flight. */
static int cmd_fill(const struct options *o)
{
    redisContext *c = redis_open(o);
    int64_t start = mono_ns();
    int outstanding = 0;

    for (long first = 0; first < o->jobs; first += FILL_CHUNK) {
        long count = o->jobs - first < FILL_CHUNK ? o->jobs - first : FILL_CHUNK;
        append_lpush(c, o, first, count);
        if (++outstanding == 16) {
            read_replies(c, outstanding);
            outstanding = 0;
        }
    }
    read_replies(c, outstanding);
    printf("filled=%ld\nfill_s=%.3f\n", o->jobs, (double)(mono_ns() - start) / 1e9);
    redisFree(c);
    return 0;
}

/* ---- /proc sampling ---- */

/* Returns the user + system CPU seconds of pid, or -1 when it is gone. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';

    /* The command name may contain spaces, so fields are counted from its closing parenthesis. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Returns a "VmRSS"-style field of /proc/PID/status in kB, or -1. */
static long proc_status_kb(int pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static long proc_fd_count(int pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    dir = opendir(path);
    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* Parses ROLE=PID specs; several specs may share a role, and their CPU adds up. */
static int watch_parse(const struct options *o, struct watched *w)
{
    for (int i = 0; i < o->pid_specs; i++) {
        const char *eq = strchr(o->pid_spec[i], '=');
        if (eq == NULL || (size_t)(eq - o->pid_spec[i]) >= sizeof(w[i].role))
            die("invalid --pid \"%s\": expected ROLE=PID", o->pid_spec[i]);
        memcpy(w[i].role, o->pid_spec[i], (size_t)(eq - o->pid_spec[i]));
        w[i].role[eq - o->pid_spec[i]] = '\0';
        w[i].pid = atoi(eq + 1);
        w[i].cpu_start_s = proc_cpu_s(w[i].pid);
        if (w[i].cpu_start_s < 0)
            die("process %d (%s) is not running", w[i].pid, w[i].role);
    }
    return o->pid_specs;
}

/* Prints ROLE_cpu_s (seconds used while watched) and ROLE_cpu_pct of wall time, summed per role. */
static void watch_report(struct watched *w, int count, double wall_s)
{
    for (int i = 0; i < count; i++) {
        bool first = true;
        double sum = 0;
        for (int j = 0; j < count; j++) {
            if (strcmp(w[i].role, w[j].role) != 0)
                continue;
            if (j < i)
                first = false;
            sum += w[j].cpu_end_s - w[j].cpu_start_s;
        }
        if (first)
            printf("%s_cpu_s=%.3f\n%s_cpu_pct=%.1f\n", w[i].role, sum, w[i].role, wall_s > 0 ? 100 * sum / wall_s : 0);
    }
}

static int watch_pid(const struct watched *w, int count, const char *role)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(w[i].role, role))
            return w[i].pid;
    return 0;
}

/* ---- HTTP sampling: the mock's control interface and certqd's /metrics ---- */

#define SAMPLE_BODY_MAX 65536

/* A response body, cut at SAMPLE_BODY_MAX - 1 bytes. */
struct sample_body {
    char data[SAMPLE_BODY_MAX];
    size_t len;
};

static size_t collect_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sample_body *out = userdata;
    size_t n = size * nmemb;
    size_t room = SAMPLE_BODY_MAX - 1 - out->len;
    size_t take = n < room ? n : room;

    memcpy(out->data + out->len, ptr, take);
    out->len += take;
    out->data[out->len] = '\0';
    return n;
}

static CURL *sample_handle(const struct options *o, const char *url, struct sample_body *body)
{
    CURL *e = curl_easy_init();

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (o->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert);
    return e;
}

/* Fetches a sample into body; returns false when the request failed. */
static bool sample_fetch(CURL *e, struct sample_body *body)
{
    body->len = 0;
    body->data[0] = '\0';
    return curl_easy_perform(e) == CURLE_OK;
}

/* Returns the integer after "KEY": in a flat JSON object, or -1. */
static long json_int(const char *body, const char *key)
{
    char pattern[64];
    const char *p;

    snprintf(pattern, sizeof(pattern), "\"%s\":", key);
    p = strstr(body, pattern);
    if (p == NULL)
        return -1;
    p += strlen(pattern);
    while (isspace((unsigned char)*p))
        p++;
    return strtol(p, NULL, 10);
}

/* Returns the value of an unlabelled metric in Prometheus text format, or -1. */
static long metric_value(const char *body, const char *name)
{
    size_t len = strlen(name);

    for (const char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return (long)strtod(line + len + 1, NULL);
    return -1;
}

/* ---- drain ---- */

/* Reads succeeded, failed and unknown from the stats hash into out[3]; returns their sum. */
static long final_count(redisContext *c, long out[3])
{
    redisReply *r = redis_run(c, "HMGET " STATS_KEY " succeeded failed unknown");
    long sum = 0;

    for (size_t i = 0; i < 3; i++) {
        out[i] = (r->type == REDIS_REPLY_ARRAY && i < r->elements && r->element[i]->type == REDIS_REPLY_STRING)
                     ? atol(r->element[i]->str) : 0;
        sum += out[i];
    }
    freeReplyObject(r);
    return sum;
}

/*
 * drain: polls until o->jobs jobs have a final state or the timeout passes.
 * Wall time counts from --t0 (CLOCK_REALTIME ns, taken just before certqd
 * was started).  Peak RSS is certqd's VmHWM read before it exits.
 */
static int cmd_drain(const struct options *o)
{
    struct watched w[MAX_PIDS];
    int watched = watch_parse(o, w);
    int certqd = watch_pid(w, watched, "certqd");
    redisContext *c = redis_open(o);
    CURL *mocks[MAX_MOCKS], *metrics = NULL;
    static struct sample_body body;
    long peak_fds = -1, peak_running = -1, peak_metric = -1, peak_rss_kb = -1, commands = 0, finals[3] = { 0 };
    int64_t deadline = mono_ns() + (int64_t)o->timeout_s * 1000000000;
    bool timed_out = false;
    long done = 0;

    for (int i = 0; i < o->mock_urls; i++) {
        char url[512];
        snprintf(url, sizeof(url), "%s/__mock__/stats", o->mock_url[i]);
        mocks[i] = sample_handle(o, url, &body);
    }
    if (o->metrics_url)
        metrics = sample_handle(o, o->metrics_url, &body);

    for (;;) {
        done = final_count(c, finals);
        commands++;
        if (done >= o->jobs)
            break;
        if (mono_ns() > deadline) {
            timed_out = true;
            break;
        }
        if (certqd) {
            long rss = proc_status_kb(certqd, "VmRSS");
            if (rss < 0)
                die("certqd (pid %d) exited before the jobs were done; done=%ld of %ld", certqd, done, o->jobs);
            if (rss > peak_rss_kb)
                peak_rss_kb = rss;
            if (o->count_fds) {
                long fds = proc_fd_count(certqd);
                if (fds > peak_fds)
                    peak_fds = fds;
            }
        }
        if (o->mock_urls > 0) {
            long running = 0;
            for (int i = 0; i < o->mock_urls && running >= 0; i++) {
                long n = sample_fetch(mocks[i], &body) ? json_int(body.data, "running_calls") : -1;
                running = n < 0 ? -1 : running + n;
            }
            if (running > peak_running)
                peak_running = running;
        }
        if (metrics && sample_fetch(metrics, &body)) {
            long in_flight = metric_value(body.data, "certqd_requests_running");
            if (in_flight > peak_metric)
                peak_metric = in_flight;
        }
        sleep_ms(o->interval_ms);
    }

    double wall_s = (double)(real_ns() - o->t0_ns) / 1e9;
    for (int i = 0; i < watched; i++)
        w[i].cpu_end_s = proc_cpu_s(w[i].pid);
    if (certqd) {
        /* certqd's CPU counts from its start, not from when watching began. */
        for (int i = 0; i < watched; i++)
            if (w[i].pid == certqd)
                w[i].cpu_start_s = 0;
        long hwm = proc_status_kb(certqd, "VmHWM");
        if (hwm > peak_rss_kb)
            peak_rss_kb = hwm;
    }

    printf("jobs=%ld\ndone=%ld\nsucceeded=%ld\nfailed=%ld\nunknown=%ld\ntimed_out=%d\n", o->jobs, done, finals[0],
           finals[1], finals[2], timed_out ? 1 : 0);
    printf("wall_s=%.3f\njobs_per_s=%.0f\n", wall_s, wall_s > 0 ? (double)done / wall_s : 0);
    printf("peak_rss_kb=%ld\npeak_fds=%ld\npeak_running_calls=%ld\npeak_in_flight_metric=%ld\nown_commands=%ld\n",
           peak_rss_kb, peak_fds, peak_running, peak_metric, commands);
    watch_report(w, watched, wall_s);
    for (int i = 0; i < o->mock_urls; i++)
        curl_easy_cleanup(mocks[i]);
    if (metrics)
        curl_easy_cleanup(metrics);
    redisFree(c);
    return timed_out ? 2 : 0;
}

/* ---- latency ---- */

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Returns the q-quantile (0..1) of sorted samples by the nearest-rank method. */
static int64_t quantile(const int64_t *sorted, long n, double q)
{
    long rank = (long)(q * (double)n + 0.999999);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static void print_quantiles(const char *prefix, int64_t *samples, long n)
{
    double sum = 0;

    qsort(samples, (size_t)n, sizeof(*samples), compare_i64);
    for (long i = 0; i < n; i++)
        sum += (double)samples[i];
    printf("%s_n=%ld\n%s_p50_ms=%.3f\n%s_p90_ms=%.3f\n%s_p99_ms=%.3f\n%s_max_ms=%.3f\n%s_mean_ms=%.3f\n", prefix, n,
           prefix, (double)quantile(samples, n, 0.50) / 1e6, prefix, (double)quantile(samples, n, 0.90) / 1e6,
           prefix, (double)quantile(samples, n, 0.99) / 1e6, prefix, (double)samples[n - 1] / 1e6, prefix,
           sum / (double)n / 1e6);
}

/*
 * latency: pushes one job, waits for its reply with BLPOP, and repeats.  The
 * first o->warmup jobs are not counted: they open the connections.
 */
static int cmd_latency(const struct options *o)
{
    redisContext *c = redis_open(o);
    long total = o->jobs + o->warmup;
    int64_t *samples = calloc((size_t)o->jobs, sizeof(*samples));
    struct options one = *o;
    char job[JOB_MAX];

    if (samples == NULL)
        die("out of memory");
    one.servers = 1;
    one.accounts = 1;
    for (long n = 0; n < total; n++) {
        job_json(job, sizeof(job), &one, n, REPLY_KEY);
        int64_t start = mono_ns();
        redisReply *r = redis_run(c, "LPUSH " QUEUE_KEY " %s", job);
        freeReplyObject(r);
        r = redis_run(c, "BLPOP " REPLY_KEY " 10");
        int64_t took = mono_ns() - start;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            die("no reply for job %s-%ld within 10 s; see certqd's log", o->tag, n);
        if (strstr(r->element[1]->str, "\"state\":\"succeeded\"") == NULL)
            die("job %s-%ld did not succeed: %.300s", o->tag, n, r->element[1]->str);
        freeReplyObject(r);
        if (n >= o->warmup)
            samples[n - o->warmup] = took;
    }
    print_quantiles("latency", samples, o->jobs);
    free(samples);
    redisFree(c);
    return 0;
}

/* ---- mock time ---- */

/*
 * mocktime: times the request certqd sends for one job (a one-certificate
 * WHM order) straight to the mock, over one keep-alive HTTPS connection.
 */
static int cmd_mocktime(const struct options *o)
{
    long total = o->jobs + o->warmup;
    int64_t *samples = calloc((size_t)o->jobs, sizeof(*samples));
    static struct sample_body response;
    char url[512], auth[256], body[2048];
    struct curl_slist *headers = NULL;
    CURL *e = curl_easy_init();

    if (samples == NULL || e == NULL)
        die("out of memory");
    snprintf(url, sizeof(url), "%s/json-api/cpanel", o->mock_url[0]);
    snprintf(auth, sizeof(auth), "Authorization: whm root:%s", o->token);
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
    if (o->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert);

    for (long n = 0; n < total; n++) {
        snprintf(body, sizeof(body),
                 "cpanel_jsonapi_user=%s&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=Market&"
                 "cpanel_jsonapi_func=request_ssl_certificates&provider=cPStore&access_token=" TOKEN "&certificate="
                 "%%7B%%22product_id%%22%%3A143%%2C%%22price%%22%%3A6%%2C%%22subject_names%%22%%3A%%5B%%5B%%22dNSName"
                 "%%22%%2C%%22m%ld.%s.example.com%%22%%5D%%5D%%2C%%22vhost_names%%22%%3A%%5B%%22m%ld.%s.example.com"
                 "%%22%%5D%%7D",
                 o->user, n, o->tag, n, o->tag);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        response.len = 0;
        response.data[0] = '\0';
        int64_t start = mono_ns();
        CURLcode rc = curl_easy_perform(e);
        int64_t took = mono_ns() - start;
        if (rc != CURLE_OK)
            die("request to the mock failed: %s", curl_easy_strerror(rc));
        if (strstr(response.data, "\"status\":1") == NULL)
            die("the mock rejected the order: %.300s", response.data);
        if (n >= o->warmup)
            samples[n - o->warmup] = took;
    }
    print_quantiles("mock", samples, o->jobs);
    curl_slist_free_all(headers);
    curl_easy_cleanup(e);
    free(samples);
    return 0;
}

/* ---- steady load ---- */

/*
 * steady: pushes o->rate jobs per second for o->seconds seconds, in small
 * LPUSHes every 10 ms, and prints one sample per second: queue length,
 * jobs pushed but not final (queue plus jobs certqd holds), and certqd's RSS.
 */
static int cmd_steady(const struct options *o)
{
    struct watched w[MAX_PIDS];
    int watched = watch_parse(o, w);
    int certqd = watch_pid(w, watched, "certqd");
    redisContext *c = redis_open(o);
    int64_t start = mono_ns(), next_sample = start + 1000000000;
    long pushed = 0, finals[3];
    int second = 0;

    printf("# second queue_length outstanding rss_kb\n");
    while (second < o->seconds) {
        int64_t now = mono_ns();
        long due = (long)((double)(now - start) / 1e9 * o->rate);
        if (due > (long)o->rate * o->seconds)
            due = (long)o->rate * o->seconds;
        if (due > pushed) {
            append_lpush(c, o, pushed, due - pushed);
            read_replies(c, 1);
            pushed = due;
        }
        if (now >= next_sample) {
            second++;
            next_sample += 1000000000;
            redisReply *r = redis_run(c, "LLEN " QUEUE_KEY);
            long llen = r->integer;
            freeReplyObject(r);
            long outstanding = pushed - final_count(c, finals);
            long rss = certqd ? proc_status_kb(certqd, "VmRSS") : -1;
            if (certqd && rss < 0)
                die("certqd (pid %d) exited during the steady run", certqd);
            printf("sample=%d %ld %ld %ld\n", second, llen, outstanding, rss);
            fflush(stdout);
        }
        sleep_ms(10);
    }
    for (int i = 0; i < watched; i++)
        w[i].cpu_end_s = proc_cpu_s(w[i].pid);
    printf("pushed=%ld\n", pushed);
    watch_report(w, watched, (double)(mono_ns() - start) / 1e9);
    redisFree(c);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench-load COMMAND [OPTIONS]\n"
            "\n"
            "  fill      push --jobs jobs onto certq:queue\n"
            "  drain     wait until --jobs jobs are final (succeeded + failed + unknown in certq:stats)\n"
            "  latency   push one job at a time and time it until its reply arrives on " REPLY_KEY "\n"
            "  mocktime  time one-certificate WHM orders sent straight to --mock URL\n"
            "  steady    push --rate jobs per second for --seconds seconds, sampling every second\n"
            "\n"
            "  --port N           Redis port on 127.0.0.1 (default 6379)\n"
            "  --jobs N           jobs to push, wait for or time\n"
            "  --servers N        servers s1..sN (default 10)\n"
            "  --accounts N       accounts per server, named s<server>u<N> (default 100)\n"
            "  --unbatched        add \"batch\": false to each job\n"
            "  --tag WORD         job id prefix and name label, unique per run (default b)\n"
            "  --t0 NS            drain: CLOCK_REALTIME nanoseconds at certqd's start\n"
            "  --pid ROLE=PID     drain, steady: report the CPU of PID under ROLE (certqd, redis, mock); repeatable\n"
            "  --fds              drain: sample certqd's open descriptors\n"
            "  --mock URL         mocktime: the mock; drain: sample its running_calls; repeatable\n"
            "  --metrics URL      drain: sample certqd_requests_running from certqd's /metrics\n"
            "  --cacert FILE      CA certificate of the mock\n"
            "  --token TOKEN      mocktime: the mock's WHM token for root\n"
            "  --user NAME        mocktime: the account to order for\n"
            "  --interval-ms N    drain: polling interval (default 25)\n"
            "  --timeout-s N      drain: give up after N seconds (default 120)\n"
            "  --warmup N         latency, mocktime: untimed requests first (default 20)\n"
            "  --rate N --seconds N   steady: jobs per second and duration\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'p' },      { "jobs", required_argument, NULL, 'n' },
        { "servers", required_argument, NULL, 's' },   { "accounts", required_argument, NULL, 'a' },
        { "unbatched", no_argument, NULL, 'u' },       { "tag", required_argument, NULL, 'g' },
        { "t0", required_argument, NULL, 'T' },        { "pid", required_argument, NULL, 'P' },
        { "fds", no_argument, NULL, 'F' },             { "mock", required_argument, NULL, 'm' },
        { "cacert", required_argument, NULL, 'C' },    { "token", required_argument, NULL, 'k' },
        { "user", required_argument, NULL, 'U' },      { "interval-ms", required_argument, NULL, 'i' },
        { "timeout-s", required_argument, NULL, 't' }, { "warmup", required_argument, NULL, 'w' },
        { "rate", required_argument, NULL, 'r' },      { "seconds", required_argument, NULL, 'd' },
        { "metrics", required_argument, NULL, 'M' },   { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct options o = {
        .host = "127.0.0.1", .port = 6379, .servers = 10, .accounts = 100, .tag = "b", .user = "s1u1",
        .interval_ms = 25, .timeout_s = 120, .warmup = 20, .token = "roottoken",
    };
    int opt;

    if (argc < 2 || argv[1][0] == '-') {
        usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 1;
    }
    const char *command = argv[1];
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': o.port = atoi(optarg); break;
        case 'n': o.jobs = atol(optarg); break;
        case 's': o.servers = atoi(optarg); break;
        case 'a': o.accounts = atoi(optarg); break;
        case 'u': o.unbatched = true; break;
        case 'g': o.tag = optarg; break;
        case 'T': o.t0_ns = atoll(optarg); break;
        case 'P':
            if (o.pid_specs == MAX_PIDS)
                die("too many --pid options; at most %d", MAX_PIDS);
            o.pid_spec[o.pid_specs++] = optarg;
            break;
        case 'F': o.count_fds = true; break;
        case 'm':
            if (o.mock_urls == MAX_MOCKS)
                die("too many --mock options; at most %d", MAX_MOCKS);
            o.mock_url[o.mock_urls++] = optarg;
            break;
        case 'C': o.cacert = optarg; break;
        case 'M': o.metrics_url = optarg; break;
        case 'k': o.token = optarg; break;
        case 'U': o.user = optarg; break;
        case 'i': o.interval_ms = atoi(optarg); break;
        case 't': o.timeout_s = atoi(optarg); break;
        case 'w': o.warmup = atoi(optarg); break;
        case 'r': o.rate = atoi(optarg); break;
        case 'd': o.seconds = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (o.servers < 1 || o.accounts < 1)
        die("--servers and --accounts must be at least 1");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (!strcmp(command, "fill"))
        return cmd_fill(&o);
    if (!strcmp(command, "drain")) {
        if (o.t0_ns == 0)
            die("drain needs --t0, the CLOCK_REALTIME nanoseconds at certqd's start (date +%%s%%N)");
        return cmd_drain(&o);
    }
    if (!strcmp(command, "latency"))
        return cmd_latency(&o);
    if (!strcmp(command, "mocktime")) {
        if (o.mock_urls != 1)
            die("mocktime needs one --mock URL");
        return cmd_mocktime(&o);
    }
    if (!strcmp(command, "steady")) {
        if (o.rate < 1 || o.seconds < 1)
            die("steady needs --rate and --seconds of at least 1");
        return cmd_steady(&o);
    }
    die("unknown command \"%s\"; see bench-load --help", command);
}
