/*
 * certq dead: the dead-letter list, where certqd puts every failed job with its
 * access token redacted.  Lists and shows entries, puts jobs back on the queue
 * with a token the operator gives, and deletes old entries.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/job.h"
#include "common/json.h"
#include "common/util.h"

#define LIST_DEFAULT_LIMIT 20
#define SCAN_CHUNK 500
#define ERROR_COLUMN_MAX 100

/*
 * Moves one entry's job back to the queue in one step.  The job hash is
 * deleted so certqd does not take the job for a duplicate, but only when its
 * state is still failed: any other state means the job was resubmitted since.
 * KEYS: dead list, queue, job hash.  ARGV: the exact entry, the payload with a token.
 * Returns {1, ''} when requeued, {0, state} when the job has another state,
 * {-1, ''} when the entry is gone.
 */
static const char requeue_script[] =
    "local s = redis.call('HGET', KEYS[3], 'state')\n"
    "if s and s ~= 'failed' then return {0, s} end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return {-1, ''} end\n"
    "redis.call('LPUSH', KEYS[2], ARGV[2])\n"
    "if s then redis.call('DEL', KEYS[3]) end\n"
    "return {1, ''}\n";

/* Pops entries that failed before ARGV[1] (ms) from the tail, where the oldest are.  KEYS: dead list. */
static const char purge_older_script[] =
    "local n = 0\n"
    "while true do\n"
    "  local e = redis.call('LINDEX', KEYS[1], -1)\n"
    "  if not e then break end\n"
    "  local ok, obj = pcall(cjson.decode, e)\n"
    "  local t = ok and type(obj) == 'table' and tonumber(obj.failed_at_ms)\n"
    "  if not t or t >= tonumber(ARGV[1]) then break end\n"
    "  redis.call('RPOP', KEYS[1])\n"
    "  n = n + 1\n"
    "end\n"
    "return n\n";

static const char purge_all_script[] =
    "local n = redis.call('LLEN', KEYS[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return n\n";

/* One dead-letter entry as stored, and where it was found. */
struct entry {
    long long index;
    char *raw;
};

static void print_dead_help(void)
{
    printf("Usage: certq dead list [--limit N]\n"
           "       certq dead show INDEX|ID\n"
           "       certq dead requeue INDEX|ID|--all (--token-file FILE | --token-stdin)\n"
           "       certq dead purge [--older-than S] [--yes]\n"
           "\n"
           "Work with the dead-letter list PREFIX:dead, where certqd puts every failed job, newest first,\n"
           "with its access token replaced by \"[redacted]\".  INDEX counts from 0, the newest entry;\n"
           "an argument of digits only is an index, so give a numeric job id with --id ID.\n"
           "\n"
           "  list      print index, job id, error kind, failure time and error of the newest entries\n"
           "            --limit N   entries to print (default %d)\n"
           "  show      print one entry as indented JSON, its payload expanded (--json: as stored)\n"
           "  requeue   put the job back on the queue with the access token from --token-file FILE or\n"
           "            --token-stdin, remove the entry, and delete the failed job hash; --all\n"
           "            requeues every entry with that one token.  Without a token it refuses, because\n"
           "            the stored payload has none.\n"
           "  purge     delete every entry, or with --older-than S those that failed more than S seconds\n"
           "            ago; asks for confirmation on a terminal, otherwise needs --yes\n"
           "\n"
           "Exit status: 0 success, 1 refused or an entry could not be requeued, 3 entry not found,\n"
           "64 usage error, 69 Redis unavailable.\n",
           LIST_DEFAULT_LIMIT);
}

static bool is_index(const char *s)
{
    return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

/* Finds the newest entry of a job id, reading the list in chunks; returns false when none. */
static bool find_by_id(struct cli *cli, const char *key, const char *id, struct entry *out)
{
    char start[32], stop[32], err[128];

    for (long long from = 0;; from += SCAN_CHUNK) {
        snprintf(start, sizeof(start), "%lld", from);
        snprintf(stop, sizeof(stop), "%lld", from + SCAN_CHUNK - 1);
        redisReply *chunk = rconn_run(cli, "LRANGE", key, start, stop, (char *)NULL);
        if (chunk->elements == 0) {
            freeReplyObject(chunk);
            return false;
        }
        for (size_t i = 0; i < chunk->elements; i++) {
            const char *raw = chunk->element[i]->str;
            yajl_val entry = json_parse(raw, chunk->element[i]->len, err, sizeof(err));
            const char *entry_id = json_get_string(entry, "id");
            bool match = entry_id && !strcmp(entry_id, id);
            if (entry)
                yajl_tree_free(entry);
            if (match) {
                out->index = from + (long long)i;
                out->raw = xstrdup(raw);
                freeReplyObject(chunk);
                return true;
            }
        }
        freeReplyObject(chunk);
    }
}

/* Looks an entry up by index or job id; prints why and returns EXIT_NOT_FOUND when there is none. */
static int find_entry(struct cli *cli, const char *selector, bool by_id, struct entry *out)
{
    char key[CERTQ_KEY_MAX];

    rconn_key(cli, key, "dead");
    if (!by_id && is_index(selector)) {
        redisReply *r = rconn_run(cli, "LINDEX", key, selector, (char *)NULL);
        bool found = r->type == REDIS_REPLY_STRING;
        if (found) {
            out->index = strtoll(selector, NULL, 10);
            out->raw = xstrdup(r->str);
        }
        freeReplyObject(r);
        if (!found) {
            cli_error("dead: no entry at index %s of %s; run 'certq dead list' for the indexes", selector, key);
            return EXIT_NOT_FOUND;
        }
        return 0;
    }
    if (!find_by_id(cli, key, selector, out)) {
        cli_error("dead: no entry for job %s in %s; run 'certq dead list' for the ids", selector, key);
        return EXIT_NOT_FOUND;
    }
    return 0;
}

static int dead_list(struct cli *cli, long long limit)
{
    static const char *const headers[] = { "INDEX", "ID", "ERROR KIND", "FAILED AT", "ERROR", NULL };
    static const bool right[] = { true, false, false, false, false };
    char key[CERTQ_KEY_MAX], stop[32], index[32], when[96], err[128];
    struct table t;

    rconn_key(cli, key, "dead");
    snprintf(stop, sizeof(stop), "%lld", limit - 1);
    redisReply *total = rconn_run(cli, "LLEN", key, (char *)NULL);
    redisReply *entries = limit > 0 ? rconn_run(cli, "LRANGE", key, "0", stop, (char *)NULL) : NULL;
    size_t count = entries ? entries->elements : 0;

    if (cli->json) {
        yajl_gen gen = out_json_begin(false);
        yajl_gen_array_open(gen);
        for (size_t i = 0; i < count; i++) {
            yajl_val entry = json_parse(entries->element[i]->str, entries->element[i]->len, err, sizeof(err));
            json_gen_node(gen, entry);
            if (entry)
                yajl_tree_free(entry);
        }
        yajl_gen_array_close(gen);
        out_json_finish(gen);
        goto done;
    }

    table_init(&t, headers, right);
    for (size_t i = 0; i < count; i++) {
        yajl_val entry = json_parse(entries->element[i]->str, entries->element[i]->len, err, sizeof(err));
        yajl_val failed_at = json_get(entry, "failed_at_ms");
        const char *error = json_get_string(entry, "error");
        char error_cell[ERROR_COLUMN_MAX + 8];

        snprintf(index, sizeof(index), "%zu", i);
        if (failed_at && YAJL_IS_INTEGER(failed_at))
            out_time(when, sizeof(when), failed_at->u.number.i);
        else
            snprintf(when, sizeof(when), "-");
        snprintf(error_cell, sizeof(error_cell), "%.*s%s", ERROR_COLUMN_MAX, error ? error : "-",
                 error && strlen(error) > ERROR_COLUMN_MAX ? "..." : "");
        const char *id = json_get_string(entry, "id");
        const char *kind = json_get_string(entry, "error_kind");
        table_add(&t, (const char *[]){ index, id ? id : "-", kind ? kind : "-", when, error_cell });
        if (entry)
            yajl_tree_free(entry);
    }
    if (count > 0)
        table_print(&t, 0);
    else
        table_free(&t);
    printf("%zu of %lld entries in %s\n", count, rconn_integer(total, 0), key);

done:
    freeReplyObject(total);
    if (entries)
        freeReplyObject(entries);
    return EXIT_DONE;
}

/* Prints an entry as indented JSON, with its payload string expanded into the object it holds. */
static void print_entry_pretty(yajl_val entry)
{
    char err[128];
    yajl_gen gen = out_json_begin(true);

    yajl_gen_map_open(gen);
    for (size_t i = 0; i < entry->u.object.len; i++) {
        const char *field = entry->u.object.keys[i];
        yajl_val value = entry->u.object.values[i];
        yajl_val payload = NULL;

        json_gen_str(gen, field);
        if (!strcmp(field, "payload") && value->type == yajl_t_string)
            payload = json_parse(value->u.string, strlen(value->u.string), err, sizeof(err));
        json_gen_node(gen, payload ? payload : value);
        if (payload)
            yajl_tree_free(payload);
    }
    yajl_gen_map_close(gen);
    out_json_finish(gen);
}

static int dead_show(struct cli *cli, const char *selector, bool by_id)
{
    struct entry e = { 0 };
    char err[128];
    int status = find_entry(cli, selector, by_id, &e);

    if (status != 0)
        return status;
    yajl_val entry = json_parse(e.raw, strlen(e.raw), err, sizeof(err));
    if (cli->json || entry == NULL || entry->type != yajl_t_object)
        printf("%s\n", e.raw);
    else
        print_entry_pretty(entry);
    if (entry)
        yajl_tree_free(entry);
    free(e.raw);
    return EXIT_DONE;
}

/* Returns payload with access_token set to token, or NULL when payload is not a JSON object. */
static char *payload_with_token(const char *payload, const char *token, char *err, size_t err_len)
{
    yajl_val root = json_parse(payload, strlen(payload), err, err_len);

    if (root == NULL)
        return NULL;
    if (root->type != yajl_t_object) {
        snprintf(err, err_len, "the payload is %s, not a JSON object", json_type_name(root));
        yajl_tree_free(root);
        return NULL;
    }
    yajl_gen gen = yajl_gen_alloc(NULL);
    bool written = false;
    yajl_gen_map_open(gen);
    for (size_t i = 0; i < root->u.object.len; i++) {
        json_gen_str(gen, root->u.object.keys[i]);
        if (!strcmp(root->u.object.keys[i], "access_token")) {
            json_gen_str(gen, token);
            written = true;
        } else
            json_gen_node(gen, root->u.object.values[i]);
    }
    if (!written)
        json_gen_kv_str(gen, "access_token", token);
    yajl_gen_map_close(gen);
    yajl_tree_free(root);
    return json_gen_finish(gen);
}

/*
 * Puts one entry's job back on the queue with token.  Returns true when
 * requeued and sets *id_out to the job id; otherwise prints why.
 */
static bool requeue_entry(struct cli *cli, const struct entry *e, const char *token, char **id_out)
{
    struct job_limits limits = { .max_bytes = cli->settings.max_job_bytes, .reply_prefix = cli->settings.reply_prefix };
    char err[512], dead_key[CERTQ_KEY_MAX], queue_key[CERTQ_KEY_MAX], job_key[CERTQ_KEY_MAX];
    yajl_val entry = json_parse(e->raw, strlen(e->raw), err, sizeof(err));
    const char *payload = json_get_string(entry, "payload");
    char *with_token = NULL, *final_payload = NULL;
    struct job *job = NULL;
    bool requeued = false;

    if (payload == NULL) {
        cli_error("dead requeue: entry %lld has no payload to requeue; remove it with 'certq dead purge'", e->index);
        goto done;
    }
    with_token = payload_with_token(payload, token, err, sizeof(err));
    if (with_token == NULL) {
        cli_error("dead requeue: entry %lld cannot be requeued: %s; fix the job and push it with 'certq enqueue --file'",
                  e->index, err);
        goto done;
    }
    job = job_parse(with_token, strlen(with_token), &limits, err, sizeof(err));
    if (job == NULL) {
        cli_error("dead requeue: entry %lld is still an invalid job: %s; fix it and push it with 'certq enqueue --file'",
                  e->index, err);
        goto done;
    }
    final_payload = job->id_generated ? job_payload_with_id(with_token, strlen(with_token), job->id) : xstrdup(with_token);

    rconn_key(cli, dead_key, "dead");
    rconn_key(cli, queue_key, "queue");
    rconn_key(cli, job_key, "job:%s", job->id);
    redisReply *r = rconn_run(cli, "EVAL", requeue_script, "3", dead_key, queue_key, job_key, e->raw, final_payload, (char *)NULL);
    long long outcome = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? rconn_integer(r->element[0], -1) : -1;
    if (outcome == 1) {
        requeued = true;
        *id_out = xstrdup(job->id);
    } else if (outcome == 0)
        cli_error("dead requeue: job %s is now in state %s, so it was resubmitted after it failed; not requeued",
                  job->id, r->element[1]->str);
    else
        cli_error("dead requeue: entry %lld (job %s) was removed from %s meanwhile; not requeued", e->index, job->id,
                  dead_key);
    freeReplyObject(r);

done:
    if (with_token)
        explicit_bzero(with_token, strlen(with_token));
    if (final_payload)
        explicit_bzero(final_payload, strlen(final_payload));
    free(with_token);
    free(final_payload);
    job_free(job);
    if (entry)
        yajl_tree_free(entry);
    return requeued;
}

/* Reads every entry, so --all works on the list as it was when it started. */
static struct entry *read_all_entries(struct cli *cli, size_t *count)
{
    char key[CERTQ_KEY_MAX];
    redisReply *r;
    struct entry *entries;

    rconn_key(cli, key, "dead");
    r = rconn_run(cli, "LRANGE", key, "0", "-1", (char *)NULL);
    entries = xcalloc(r->elements + 1, sizeof(*entries));
    for (size_t i = 0; i < r->elements; i++) {
        entries[i].index = (long long)i;
        entries[i].raw = xstrdup(r->element[i]->str);
    }
    *count = r->elements;
    freeReplyObject(r);
    return entries;
}

static int dead_requeue(struct cli *cli, const char *selector, bool by_id, bool all, const char *token_path)
{
    struct entry *entries = NULL;
    size_t count = 0, requeued = 0;
    char **ids = NULL, *token = NULL;
    int status;

    if (token_path == NULL) {
        cli_error("dead requeue: rejected: certqd stores failed jobs with the access token redacted, so a requeued job "
                  "needs one; give it with --token-file FILE or --token-stdin");
        return EXIT_FAILED;
    }
    token = token_read(token_path);
    if (token == NULL)
        return EXIT_USAGE;

    if (all)
        entries = read_all_entries(cli, &count);
    else {
        entries = xcalloc(1, sizeof(*entries));
        status = find_entry(cli, selector, by_id, &entries[0]);
        if (status != 0)
            goto done;
        count = 1;
    }

    ids = xcalloc(count + 1, sizeof(char *));
    for (size_t i = 0; i < count; i++)
        if (requeue_entry(cli, &entries[i], token, &ids[requeued]))
            requeued++;

    if (cli->json) {
        yajl_gen gen = out_json_begin(false);
        yajl_gen_array_open(gen);
        for (size_t i = 0; i < requeued; i++)
            json_gen_str(gen, ids[i]);
        yajl_gen_array_close(gen);
        out_json_finish(gen);
    } else {
        for (size_t i = 0; i < requeued; i++)
            printf("requeued %s\n", ids[i]);
    }
    if (requeued < count)
        cli_error("dead requeue: %zu of %zu entries were not requeued; see the messages above", count - requeued, count);
    status = requeued == count ? EXIT_DONE : EXIT_FAILED;

done:
    for (size_t i = 0; i < count; i++)
        free(entries[i].raw);
    free(entries);
    for (size_t i = 0; i < requeued; i++)
        free(ids[i]);
    free(ids);
    explicit_bzero(token, strlen(token));
    free(token);
    return status;
}

/* Asks for confirmation on the terminal; returns true only for y or yes. */
static bool confirm(const char *question)
{
    char answer[16];

    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    if (fgets(answer, sizeof(answer), stdin) == NULL)
        return false;
    answer[strcspn(answer, "\r\n")] = '\0';
    return !strcmp(answer, "y") || !strcmp(answer, "Y") || !strcmp(answer, "yes");
}

static int dead_purge(struct cli *cli, long long older_than_s, bool yes)
{
    char key[CERTQ_KEY_MAX], question[CERTQ_KEY_MAX + 128], cutoff[32];
    redisReply *r;

    rconn_key(cli, key, "dead");
    if (older_than_s >= 0)
        snprintf(question, sizeof(question), "Delete the entries of %s that failed more than %lld s ago?", key,
                 older_than_s);
    else
        snprintf(question, sizeof(question), "Delete every entry of %s?", key);
    if (!yes) {
        if (!isatty(STDIN_FILENO)) {
            cli_error("dead purge: rejected: purging deletes entries for good and stdin is not a terminal to confirm; "
                      "add --yes");
            return EXIT_FAILED;
        }
        if (!confirm(question)) {
            cli_error("dead purge: not confirmed; nothing deleted");
            return EXIT_FAILED;
        }
    }

    if (older_than_s >= 0) {
        snprintf(cutoff, sizeof(cutoff), "%lld", (long long)now_ms() - older_than_s * 1000);
        r = rconn_run(cli, "EVAL", purge_older_script, "1", key, cutoff, (char *)NULL);
    } else
        r = rconn_run(cli, "EVAL", purge_all_script, "1", key, (char *)NULL);
    long long deleted = rconn_integer(r, 0);
    freeReplyObject(r);

    if (cli->json)
        printf("{\"deleted\":%lld}\n", deleted);
    else
        printf("deleted %lld entr%s from %s\n", deleted, deleted == 1 ? "y" : "ies", key);
    return EXIT_DONE;
}

int dead_main(struct cli *cli, int argc, char **argv)
{
    enum { O_LIMIT = 256, O_ALL, O_TOKEN_FILE, O_TOKEN_STDIN, O_OLDER_THAN, O_YES, O_ID, O_JSON };
    static const struct option options[] = {
        { "limit", required_argument, NULL, O_LIMIT },
        { "all", no_argument, NULL, O_ALL },
        { "token-file", required_argument, NULL, O_TOKEN_FILE },
        { "token-stdin", no_argument, NULL, O_TOKEN_STDIN },
        { "older-than", required_argument, NULL, O_OLDER_THAN },
        { "yes", no_argument, NULL, O_YES },
        { "id", required_argument, NULL, O_ID },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long long limit = LIST_DEFAULT_LIMIT, older_than_s = -1;
    const char *token_path = NULL, *id = NULL;
    bool all = false, yes = false;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_LIMIT:
            if (!cli_parse_count(optarg, 1000000, &limit))
                return cli_usage_error("dead", "invalid --limit \"%s\": give a number of entries, such as 50", optarg);
            break;
        case O_OLDER_THAN:
            if (!cli_parse_count(optarg, 100LL * 365 * 86400, &older_than_s))
                return cli_usage_error("dead", "invalid --older-than \"%s\": give whole seconds, such as 86400", optarg);
            break;
        case O_TOKEN_FILE:
        case O_TOKEN_STDIN:
            if (token_path)
                return cli_usage_error("dead", "give the access token once, with --token-file or --token-stdin");
            token_path = opt == O_TOKEN_FILE ? optarg : "-";
            break;
        case O_ALL: all = true; break;
        case O_YES: yes = true; break;
        case O_ID: id = optarg; break;
        case O_JSON: cli->json = true; break;
        case 'h':
            print_dead_help();
            return EXIT_DONE;
        case ':':
            return cli_usage_error("dead", "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("dead", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("dead", "no subcommand given; use list, show, requeue or purge");

    const char *sub = argv[optind++];
    int args = argc - optind;
    const char *selector = id ? id : (args > 0 ? argv[optind] : NULL);
    int max_args = id ? 0 : 1;

    if (!strcmp(sub, "list")) {
        if (args > 0)
            return cli_usage_error("dead", "list takes no argument, got \"%s\"", argv[optind]);
        return dead_list(cli, limit);
    }
    if (!strcmp(sub, "show")) {
        if (selector == NULL || args > max_args)
            return cli_usage_error("dead", "show needs one INDEX or ID (or --id ID)");
        return dead_show(cli, selector, id != NULL);
    }
    if (!strcmp(sub, "requeue")) {
        if (all && (selector != NULL))
            return cli_usage_error("dead", "requeue takes INDEX, ID or --all, not both");
        if (!all && (selector == NULL || args > max_args))
            return cli_usage_error("dead", "requeue needs one INDEX or ID (or --id ID, or --all)");
        return dead_requeue(cli, selector, id != NULL, all, token_path);
    }
    if (!strcmp(sub, "purge")) {
        if (args > 0)
            return cli_usage_error("dead", "purge takes no argument, got \"%s\"; use --older-than S", argv[optind]);
        return dead_purge(cli, older_than_s, yes);
    }
    return cli_usage_error("dead", "unknown subcommand \"%s\"; use list, show, requeue or purge", sub);
}
