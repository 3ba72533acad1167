/* certq status and certq wait: read job hashes, once or until every job has a final state. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/job.h"
#include "common/util.h"

#define WAIT_POLL_MS 200
#define WAIT_DEFAULT_S 60

static bool is_final_state(const char *state)
{
    return state && (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "unknown"));
}

static redisReply *read_job(struct cli *cli, const char *id)
{
    char key[CERTQ_KEY_MAX];

    rconn_key(cli, key, "job:%s", id);
    return rconn_run(cli, "HGETALL", key, (char *)NULL);
}

static void report_not_found(const struct cli *cli, const char *id)
{
    cli_error("job %s not found: no key %s:job:%s; certqd has not taken it from the queue yet, it was invalid "
              "(see 'certq dead show --id %s'), its result expired after result_ttl_s, or the id or --prefix is wrong",
              id, cli->settings.key_prefix, id, id);
}

/* Prints each job's hash; returns EXIT_NOT_FOUND when any id has none, which is reported when report_missing. */
static int print_jobs(struct cli *cli, int count, char **ids, bool report_missing)
{
    int status = EXIT_DONE;

    for (int i = 0; i < count; i++) {
        redisReply *hash = read_job(cli, ids[i]);
        if (hash->elements == 0) {
            if (report_missing)
                report_not_found(cli, ids[i]);
            status = EXIT_NOT_FOUND;
        } else if (cli->json) {
            yajl_gen gen = out_json_begin(false);
            out_job_hash_json(gen, ids[i], hash);
            out_json_finish(gen);
        } else {
            if (i > 0)
                putchar('\n');
            out_job_hash_text(ids[i], hash);
        }
        freeReplyObject(hash);
    }
    return status;
}

static int check_ids(const char *command, int count, char **ids)
{
    if (count == 0)
        return cli_usage_error(command, "no job id given");
    for (int i = 0; i < count; i++)
        if (!job_id_valid(ids[i]))
            return cli_usage_error(command, "invalid job id \"%s\": use 1-%d characters of A-Z a-z 0-9 . _ : -", ids[i],
                                   JOB_ID_MAX);
    return 0;
}

int status_main(struct cli *cli, int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: certq status ID...\n"
                   "\n"
                   "Print each job's state, attempts, server, user, order, errors and times.  With --json,\n"
                   "print one JSON object of the job hash's fields per line, without the stored payload.\n"
                   "\n"
                   "Exit status: 0 every job found, 3 a job was not found, 64 usage error, 69 Redis unavailable.\n");
            return EXIT_DONE;
        default:
            return cli_usage_error("status", "unknown option %s", argv[optind - 1]);
        }
    }
    int status = check_ids("status", argc - optind, argv + optind);
    if (status != 0)
        return status;
    return print_jobs(cli, argc - optind, argv + optind, true);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Polls the states of ids until all are final or timeout_ms passes; returns false on timeout. */
static bool poll_until_final(struct cli *cli, int count, char **ids, long long timeout_ms)
{
    char key[CERTQ_KEY_MAX];
    bool *done = xcalloc((size_t)count, sizeof(bool));
    int left = count;
    int64_t deadline = mono_ms() + timeout_ms;

    for (;;) {
        for (int i = 0; i < count; i++) {
            if (done[i])
                continue;
            rconn_key(cli, key, "job:%s", ids[i]);
            redisReply *state = rconn_run(cli, "HGET", key, "state", (char *)NULL);
            if (state->type == REDIS_REPLY_STRING && is_final_state(state->str)) {
                done[i] = true;
                left--;
            }
            freeReplyObject(state);
        }
        if (left == 0 || mono_ms() >= deadline)
            break;
        sleep_ms(WAIT_POLL_MS);
    }

    for (int i = 0; i < count && left > 0; i++) {
        if (done[i])
            continue;
        rconn_key(cli, key, "job:%s", ids[i]);
        redisReply *state = rconn_run(cli, "HGET", key, "state", (char *)NULL);
        cli_error("wait: job %s is still %s after %.1f s; certqd may be stopped or busy (check 'certq stats'), or the "
                  "job was invalid (check 'certq dead show --id %s')", ids[i],
                  state->type == REDIS_REPLY_STRING ? state->str : "not taken from the queue", (double)timeout_ms / 1000.0,
                  ids[i]);
        freeReplyObject(state);
    }
    free(done);
    return left == 0;
}

/* Returns EXIT_DONE when every job succeeded, else EXIT_FAILED. */
static int final_status(struct cli *cli, int count, char **ids)
{
    char key[CERTQ_KEY_MAX];
    int status = EXIT_DONE;

    for (int i = 0; i < count; i++) {
        rconn_key(cli, key, "job:%s", ids[i]);
        redisReply *state = rconn_run(cli, "HGET", key, "state", (char *)NULL);
        if (state->type != REDIS_REPLY_STRING || strcmp(state->str, "succeeded") != 0)
            status = EXIT_FAILED;
        freeReplyObject(state);
    }
    return status;
}

int wait_main(struct cli *cli, int argc, char **argv)
{
    static const struct option options[] = {
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    double timeout_s = WAIT_DEFAULT_S;
    char *end;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":ht:", options, NULL)) != -1) {
        switch (opt) {
        case 't':
            timeout_s = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(timeout_s >= 0 && timeout_s <= 86400 * 365))
                return cli_usage_error("wait", "invalid --timeout \"%s\": give seconds, such as 60 or 0.5", optarg);
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: certq wait ID... [--timeout S]\n"
                   "\n"
                   "Poll until every job has a final state (succeeded, failed or unknown), then print the\n"
                   "jobs as 'certq status' does.\n"
                   "\n"
                   "  -t, --timeout S   give up after S seconds (default %d)\n"
                   "\n"
                   "Exit status: 0 every job succeeded, 1 a job failed or ended unknown, 2 timed out,\n"
                   "64 usage error, 69 Redis unavailable.\n",
                   WAIT_DEFAULT_S);
            return EXIT_DONE;
        case ':':
            return cli_usage_error("wait", "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("wait", "unknown option %s", argv[optind - 1]);
        }
    }
    int count = argc - optind;
    char **ids = argv + optind;
    int status = check_ids("wait", count, ids);
    if (status != 0)
        return status;

    if (!poll_until_final(cli, count, ids, (long long)(timeout_s * 1000))) {
        print_jobs(cli, count, ids, false);
        return EXIT_TIMEOUT;
    }
    print_jobs(cli, count, ids, false);
    return final_status(cli, count, ids);
}
