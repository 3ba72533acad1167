/*
 * certq unknown: jobs whose request may have reached cPanel without a response.
 * Lists those in state unknown and those certqd is still reconciling, and
 * records the outcome an operator found out, as certqd would have written it.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"
#include "common/json.h"
#include "common/util.h"

#define SCAN_COUNT "1000"

/* A job in state unknown, or a member of the reconcile set. */
struct doubtful_job {
    char *id;
    char *server;
    char *user;
    char *text;             /* the error, or the reconcile reason */
    long long when_ms;      /* updated_at_ms, or the reconcile set's due time */
};

struct doubtful_list {
    struct doubtful_job *jobs;
    size_t count;
};

static void print_unknown_help(void)
{
    printf("Usage: certq unknown list\n"
           "       certq unknown resolve ID --succeeded --order-id X [--checkout-url U] [--reply-to KEY]\n"
           "       certq unknown resolve ID --failed --reason TEXT [--reply-to KEY]\n"
           "\n"
           "A job ends in state unknown when its request may have reached cPanel without an answer\n"
           "and certqd could not find out whether an order was placed.  Check the account's pending\n"
           "certificates in cPanel, then record what you found.\n"
           "\n"
           "  list      print the jobs in state unknown, and the jobs certqd is still reconciling\n"
           "            (PREFIX:reconcile) with the time of its next check\n"
           "  resolve   set the job's final state: --succeeded with the --order-id (and --checkout-url)\n"
           "            found in cPanel, or --failed with a --reason (error_kind stays ambiguous).\n"
           "            Records resolved_by = certq and resolved_at_ms, publishes the result on\n"
           "            PREFIX:events, and pushes it to the job's reply list when it is known: from\n"
           "            --reply-to KEY, or from the job hash.  The counters in PREFIX:stats are unchanged.\n"
           "\n"
           "Exit status: 0 success, 1 refused (the job is not in state unknown), 3 job not found,\n"
           "64 usage error, 69 Redis unavailable.\n");
}

static void add_job(struct doubtful_list *list, const char *id, const redisReply *fields, long long when_ms)
{
    /* fields: HMGET of server, user, then the text field. */
    struct doubtful_job *job;

    list->jobs = xrealloc(list->jobs, (list->count + 1) * sizeof(*list->jobs));
    job = &list->jobs[list->count++];
    job->id = xstrdup(id);
    job->server = fields->element[0]->str ? xstrdup(fields->element[0]->str) : NULL;
    job->user = fields->element[1]->str ? xstrdup(fields->element[1]->str) : NULL;
    job->text = fields->element[2]->str ? xstrdup(fields->element[2]->str) : NULL;
    job->when_ms = when_ms;
}

static void list_free(struct doubtful_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->jobs[i].id);
        free(list->jobs[i].server);
        free(list->jobs[i].user);
        free(list->jobs[i].text);
    }
    free(list->jobs);
}

/*
 * Finds jobs in state unknown by scanning PREFIX:job:*, which visits every job
 * hash.  NOTE: with many kept results (result_ttl_s) this takes a round trip
 * per 1000 keys and is meant for occasional use.
 */
static void find_unknown(struct cli *cli, struct doubtful_list *list)
{
    char pattern[CERTQ_KEY_MAX], job_prefix[CERTQ_KEY_MAX];
    char *cursor = xstrdup("0");

    rconn_key(cli, pattern, "job:*");
    rconn_key(cli, job_prefix, "job:");
    do {
        redisReply *scan = rconn_run(cli, "SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT, (char *)NULL);
        redisReply *keys = scan->element[1];
        size_t n = keys->elements;
        int *argcs = xcalloc(n + 1, sizeof(int));
        const char *(*argvs)[7] = xcalloc(n + 1, sizeof(*argvs));
        const char *const **argv_list = xcalloc(n + 1, sizeof(char **));

        free(cursor);
        cursor = xstrdup(scan->element[0]->str);
        for (size_t i = 0; i < n; i++) {
            const char *cmd[] = { "HMGET", keys->element[i]->str, "state", "server", "user", "error", "updated_at_ms" };
            memcpy(argvs[i], cmd, sizeof(cmd));
            argcs[i] = 7;
            argv_list[i] = argvs[i];
        }
        redisReply **replies = rconn_run_pipeline(cli, n, argcs, argv_list);
        for (size_t i = 0; i < n; i++) {
            redisReply *r = replies[i];
            if (r->element[0]->str == NULL || strcmp(r->element[0]->str, "unknown") != 0)
                continue;
            /* Shift the reply's view past "state" so add_job reads server, user, error. */
            redisReply shifted = { .type = REDIS_REPLY_ARRAY, .elements = 3, .element = r->element + 1 };
            add_job(list, keys->element[i]->str + strlen(job_prefix), &shifted, rconn_integer(r->element[4], 0));
        }
        rconn_free_replies(replies, n);
        free(argcs);
        free(argvs);
        free(argv_list);
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
    free(cursor);
}

static void find_reconciling(struct cli *cli, struct doubtful_list *list)
{
    char set[CERTQ_KEY_MAX], key[CERTQ_KEY_MAX];

    rconn_key(cli, set, "reconcile");
    redisReply *members = rconn_run(cli, "ZRANGE", set, "0", "-1", "WITHSCORES", (char *)NULL);
    for (size_t i = 0; i + 1 < members->elements; i += 2) {
        const char *id = members->element[i]->str;
        rconn_key(cli, key, "job:%s", id);
        redisReply *fields = rconn_run(cli, "HMGET", key, "server", "user", "reconcile_reason", (char *)NULL);
        add_job(list, id, fields, strtoll(members->element[i + 1]->str, NULL, 10));
        freeReplyObject(fields);
    }
    freeReplyObject(members);
}

static void gen_list(yajl_gen gen, const char *name, const struct doubtful_list *list, const char *text_field,
                     const char *when_field)
{
    json_gen_str(gen, name);
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < list->count; i++) {
        const struct doubtful_job *job = &list->jobs[i];
        yajl_gen_map_open(gen);
        json_gen_kv_str(gen, "id", job->id);
        json_gen_kv_str(gen, "server", job->server);
        json_gen_kv_str(gen, "user", job->user);
        json_gen_kv_str(gen, text_field, job->text);
        json_gen_kv_int(gen, when_field, job->when_ms);
        yajl_gen_map_close(gen);
    }
    yajl_gen_array_close(gen);
}

static void print_list(const char *title, const struct doubtful_list *list, const char *when_header,
                       const char *text_header)
{
    const char *headers[] = { "ID", "SERVER", "USER", when_header, text_header, NULL };
    struct table t;
    char when[96];

    printf("%s: %zu\n", title, list->count);
    if (list->count == 0)
        return;
    table_init(&t, headers, NULL);
    for (size_t i = 0; i < list->count; i++) {
        const struct doubtful_job *job = &list->jobs[i];
        out_time(when, sizeof(when), job->when_ms);
        table_add(&t, (const char *[]){ job->id, job->server ? job->server : "-", job->user ? job->user : "-", when,
                                        job->text ? job->text : "-" });
    }
    table_print(&t, 2);
}

static int unknown_list(struct cli *cli)
{
    struct doubtful_list unknown = { 0 }, reconciling = { 0 };

    find_unknown(cli, &unknown);
    find_reconciling(cli, &reconciling);
    if (cli->json) {
        yajl_gen gen = out_json_begin(false);
        yajl_gen_map_open(gen);
        gen_list(gen, "unknown", &unknown, "error", "updated_at_ms");
        gen_list(gen, "reconciling", &reconciling, "reconcile_reason", "due_ms");
        yajl_gen_map_close(gen);
        out_json_finish(gen);
    } else {
        print_list("Unknown", &unknown, "UPDATED", "ERROR");
        putchar('\n');
        print_list("Reconciling", &reconciling, "NEXT CHECK", "REASON");
    }
    list_free(&unknown);
    list_free(&reconciling);
    return EXIT_DONE;
}

struct resolution {
    bool succeeded;
    const char *order_id;
    const char *checkout_url;
    const char *reason;
    const char *reply_to;
};

/* Writes a JSON field of the hash, or an empty array when it is absent or not JSON. */
static void gen_json_field(yajl_gen gen, const char *key, const char *json)
{
    char err[128];
    yajl_val node = json ? json_parse(json, strlen(json), err, sizeof(err)) : NULL;

    json_gen_str(gen, key);
    if (node == NULL) {
        yajl_gen_array_open(gen);
        yajl_gen_array_close(gen);
        return;
    }
    json_gen_node(gen, node);
    yajl_tree_free(node);
}

/* Builds the final result document in the form certqd publishes. */
static char *result_document(const char *id, const redisReply *hash, const struct resolution *res)
{
    yajl_gen gen = yajl_gen_alloc(NULL);
    const char *batch_id = rconn_hash_get(hash, "batch_id");

    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", id);
    json_gen_kv_str(gen, "state", res->succeeded ? "succeeded" : "failed");
    json_gen_kv_str(gen, "order_id", res->succeeded ? res->order_id : NULL);
    json_gen_kv_str(gen, "checkout_url", res->succeeded ? res->checkout_url : NULL);
    gen_json_field(gen, "certificates", rconn_hash_get(hash, "certificates"));
    gen_json_field(gen, "messages", rconn_hash_get(hash, "messages"));
    json_gen_kv_str(gen, "error", res->succeeded ? NULL : res->reason);
    json_gen_kv_str(gen, "error_kind", res->succeeded ? NULL : "ambiguous");
    const char *attempts = rconn_hash_get(hash, "attempts");
    json_gen_kv_int(gen, "attempts", attempts ? strtoll(attempts, NULL, 10) : 0);
    if (batch_id)
        json_gen_kv_str(gen, "batch_id", batch_id);
    yajl_gen_map_close(gen);
    return json_gen_finish(gen);
}

/* Returns the reply list of the job: --reply-to, else the hash's reply_to field or stored payload; NULL when unknown. */
static char *find_reply_to(const struct cli *cli, const redisReply *hash, const char *reply_to_option)
{
    const char *field = rconn_hash_get(hash, "reply_to");
    const char *payload = rconn_hash_get(hash, "payload");
    char *id = NULL, *reply_to = NULL;

    if (reply_to_option)
        return xstrdup(reply_to_option);
    if (field)
        return xstrdup(field);
    if (payload == NULL)
        return NULL;
    job_peek(payload, strlen(payload), cli->settings.reply_prefix, &id, &reply_to);
    free(id);
    return reply_to;
}

static int unknown_resolve(struct cli *cli, const char *id, const struct resolution *res)
{
    char key[CERTQ_KEY_MAX], events[CERTQ_KEY_MAX], now[32], ttl[32];
    char *doc = NULL, *reply_to = NULL;
    int status = EXIT_FAILED;

    rconn_key(cli, key, "job:%s", id);
    rconn_key(cli, events, "events");
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    snprintf(ttl, sizeof(ttl), "%d", cli->settings.result_ttl_s);

    /* WATCH makes the write fail if certqd or another operator changes the job after it was read. */
    freeReplyObject(rconn_run(cli, "WATCH", key, (char *)NULL));
    redisReply *hash = rconn_run(cli, "HGETALL", key, (char *)NULL);
    const char *state = rconn_hash_get(hash, "state");
    if (hash->elements == 0) {
        cli_error("unknown resolve: job %s not found: no key %s; check the id, or run 'certq unknown list'", id, key);
        status = EXIT_NOT_FOUND;
        goto unwatch;
    }
    if (state == NULL || strcmp(state, "unknown") != 0) {
        cli_error("unknown resolve: job %s is in state %s, not unknown, so it was not changed; only jobs in state "
                  "unknown can be resolved",
                  id, state ? state : "(none)");
        goto unwatch;
    }

    doc = result_document(id, hash, res);
    reply_to = find_reply_to(cli, hash, res->reply_to);

    freeReplyObject(rconn_run(cli, "MULTI", (char *)NULL));
    if (res->succeeded) {
        freeReplyObject(rconn_run(cli, "HSET", key, "state", "succeeded", "order_id", res->order_id, "result", doc,
                                  "resolved_by", "certq", "resolved_at_ms", now, "updated_at_ms", now, (char *)NULL));
        freeReplyObject(rconn_run(cli, "HDEL", key, "error", "error_kind", (char *)NULL));
        if (res->checkout_url)
            freeReplyObject(rconn_run(cli, "HSET", key, "checkout_url", res->checkout_url, (char *)NULL));
    } else {
        freeReplyObject(rconn_run(cli, "HSET", key, "state", "failed", "error", res->reason, "error_kind", "ambiguous",
                                  "result", doc, "resolved_by", "certq", "resolved_at_ms", now, "updated_at_ms", now, (char *)NULL));
    }
    freeReplyObject(rconn_run(cli, "HDEL", key, "payload", "owner", (char *)NULL));
    freeReplyObject(rconn_run(cli, "EXPIRE", key, ttl, (char *)NULL));
    freeReplyObject(rconn_run(cli, "PUBLISH", events, doc, (char *)NULL));
    if (reply_to) {
        freeReplyObject(rconn_run(cli, "RPUSH", reply_to, doc, (char *)NULL));
        freeReplyObject(rconn_run(cli, "EXPIRE", reply_to, ttl, (char *)NULL));
    }
    redisReply *exec = rconn_run(cli, "EXEC", (char *)NULL);
    bool written = exec->type == REDIS_REPLY_ARRAY;
    freeReplyObject(exec);
    if (!written) {
        cli_error("unknown resolve: job %s changed while it was being resolved; nothing was written; run 'certq status "
                  "%s' and try again",
                  id, id);
        goto done;
    }

    if (cli->json)
        printf("%s\n", doc);
    else {
        printf("job %s resolved as %s", id, res->succeeded ? "succeeded" : "failed");
        if (res->succeeded)
            printf(" with order %s", res->order_id);
        printf("; result published on %s", events);
        if (reply_to)
            printf(" and pushed to %s", reply_to);
        printf("\n");
    }
    status = EXIT_DONE;
    goto done;

unwatch:
    freeReplyObject(rconn_run(cli, "UNWATCH", (char *)NULL));
done:
    freeReplyObject(hash);
    free(doc);
    free(reply_to);
    return status;
}

int unknown_main(struct cli *cli, int argc, char **argv)
{
    enum { O_SUCCEEDED = 256, O_FAILED, O_ORDER_ID, O_CHECKOUT_URL, O_REASON, O_REPLY_TO, O_JSON };
    static const struct option options[] = {
        { "succeeded", no_argument, NULL, O_SUCCEEDED },
        { "failed", no_argument, NULL, O_FAILED },
        { "order-id", required_argument, NULL, O_ORDER_ID },
        { "checkout-url", required_argument, NULL, O_CHECKOUT_URL },
        { "reason", required_argument, NULL, O_REASON },
        { "reply-to", required_argument, NULL, O_REPLY_TO },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct resolution res = { 0 };
    bool succeeded = false, failed = false;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_SUCCEEDED: succeeded = true; break;
        case O_FAILED: failed = true; break;
        case O_ORDER_ID: res.order_id = optarg; break;
        case O_CHECKOUT_URL: res.checkout_url = optarg; break;
        case O_REASON: res.reason = optarg; break;
        case O_REPLY_TO: res.reply_to = optarg; break;
        case O_JSON: cli->json = true; break;
        case 'h':
            print_unknown_help();
            return EXIT_DONE;
        case ':':
            return cli_usage_error("unknown", "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("unknown", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("unknown", "no subcommand given; use list or resolve");

    const char *sub = argv[optind++];
    if (!strcmp(sub, "list")) {
        if (optind < argc)
            return cli_usage_error("unknown", "list takes no argument, got \"%s\"", argv[optind]);
        return unknown_list(cli);
    }
    if (strcmp(sub, "resolve") != 0)
        return cli_usage_error("unknown", "unknown subcommand \"%s\"; use list or resolve", sub);

    if (argc - optind != 1)
        return cli_usage_error("unknown", "resolve needs exactly one job ID");
    const char *id = argv[optind];
    if (!job_id_valid(id))
        return cli_usage_error("unknown", "invalid job id \"%s\": use 1-%d characters of A-Z a-z 0-9 . _ : -", id,
                               JOB_ID_MAX);
    if (succeeded == failed)
        return cli_usage_error("unknown", "resolve needs either --succeeded or --failed");
    if (succeeded && (res.order_id == NULL || *res.order_id == '\0'))
        return cli_usage_error("unknown", "--succeeded needs --order-id X, the order found in cPanel");
    if (succeeded && res.reason)
        return cli_usage_error("unknown", "--reason goes with --failed; a succeeded job has no error");
    if (failed && (res.reason == NULL || *res.reason == '\0'))
        return cli_usage_error("unknown", "--failed needs --reason TEXT, saying what was found");
    if (failed && (res.order_id || res.checkout_url))
        return cli_usage_error("unknown", "--order-id and --checkout-url go with --succeeded");
    if (res.reply_to && (!str_is_token(res.reply_to, 256, ":._-") || !str_has_prefix(res.reply_to, cli->settings.reply_prefix)))
        return cli_usage_error("unknown", "invalid --reply-to \"%s\": use a key that starts with \"%s\"", res.reply_to,
                               cli->settings.reply_prefix);
    res.succeeded = succeeded;
    return unknown_resolve(cli, id, &res);
}
