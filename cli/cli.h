/* certq, the operator's command-line tool for certqd: shared state, settings and helpers of its commands. */
#ifndef CERTQ_CLI_H
#define CERTQ_CLI_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sysexits.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Exit statuses, as documented in certq --help, cli/README.md and certq(1). */
enum {
    EXIT_DONE = 0,
    EXIT_FAILED = 1,       /* a job failed or ended unknown, or an operation was refused */
    EXIT_TIMEOUT = 2,
    EXIT_NOT_FOUND = 3,
    EXIT_USAGE = EX_USAGE,              /* 64 */
    EXIT_UNAVAILABLE = EX_UNAVAILABLE,  /* 69: Redis cannot be reached or rejects our password */
    EXIT_CONFIG = EX_CONFIG,            /* 78 */
};

#define CERTQ_DEFAULT_CONFIG "/etc/certqd/certqd.conf"
#define CERTQ_KEY_MAX 512

/* A [server NAME] section: only what certq needs to check a job, never the token. */
struct settings_server {
    char *name;
    char *auth;             /* "cpanel" or "whm" */
    char *user;
};

/* The subset of certqd's config that certq reads, with command-line overrides applied. */
struct settings {
    char *config_path;
    bool config_read;       /* false when the default config file does not exist */

    char *redis_url;
    char *redis_host;       /* NULL when redis_unix is set */
    int redis_port;
    int redis_db;
    char *redis_unix;
    char *redis_password;

    char *key_prefix;
    char *reply_prefix;
    size_t max_job_bytes;
    int result_ttl_s;

    struct settings_server *servers;
    size_t server_count;
};

struct cli {
    struct settings settings;
    redisContext *redis;    /* connected on first use by rconn_run */
    bool json;
};

/* settings.c */
/*
 * Reads redis_url, the Redis password, key_prefix, reply_prefix, max_job_bytes,
 * result_ttl_s and the server sections from path, without reading API tokens.
 * A missing file is an error only when required.  Returns 0 or EXIT_CONFIG
 * after printing what to fix.
 */
int settings_load(struct settings *s, const char *path, bool required);
/* Applies --redis and --prefix; returns 0 or EXIT_USAGE after printing why. */
int settings_override(struct settings *s, const char *redis_url, const char *key_prefix);
void settings_free(struct settings *s);
const struct settings_server *settings_find_server(const struct settings *s, const char *name);

/* rconn.c */
/*
 * Runs one Redis command given as NULL-terminated strings and returns its
 * reply, which the caller frees.  Connects on first use.  Exits with
 * EXIT_UNAVAILABLE when Redis cannot be reached or rejects the password, and
 * with EXIT_FAILED on any other error reply, after printing the error.
 */
redisReply *rconn_run(struct cli *cli, const char *arg, ...) __attribute__((sentinel));
/* Like rconn_run, with the arguments in an array of argc strings. */
redisReply *rconn_run_argv(struct cli *cli, int argc, const char **argv);
/*
 * Sends count commands in one round trip and returns their replies in an
 * array the caller frees with rconn_free_replies.  Errors as in rconn_run.
 */
redisReply **rconn_run_pipeline(struct cli *cli, size_t count, const int *argcs, const char *const *const *argvs);
void rconn_free_replies(redisReply **replies, size_t count);
void rconn_close(struct cli *cli);
/* Writes "PREFIX:" followed by the formatted suffix into out. */
void rconn_key(const struct cli *cli, char out[CERTQ_KEY_MAX], const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Returns the integer of an integer reply, or of a string reply holding digits; else fallback. */
long long rconn_integer(const redisReply *reply, long long fallback);
/* Returns the value of field in an HGETALL reply, or NULL. */
const char *rconn_hash_get(const redisReply *hash, const char *field);

/* output.c */
/* Writes a time given in ms since the epoch as local time and its age, "2024-05-01 12:00:05 CEST (3m ago)". */
void out_time(char *out, size_t len, long long epoch_ms);
/* Writes a duration in ms as "2d 3h", "4m 10s" or "12s". */
void out_duration(char *out, size_t len, long long ms);
/* Writes the JSON node to stdout, indented when pretty, and a newline. */
void out_json_node(yajl_val node, bool pretty);
/* Returns a yajl generator that writes compact or indented JSON; finish it with out_json_finish. */
yajl_gen out_json_begin(bool pretty);
/* Prints the generator's output and a newline to stdout, then frees it. */
void out_json_finish(yajl_gen gen);
/*
 * Writes an HGETALL reply of a job hash as one JSON object with "id" first:
 * counters and *_ms fields as numbers, certificates, messages and result as
 * JSON, and never the payload field, which holds the access token.
 */
void out_job_hash_json(yajl_gen gen, const char *id, const redisReply *hash);
/* Prints the job hash for people, one "field: value" line each. */
void out_job_hash_text(const char *id, const redisReply *hash);

/* A table printed with aligned columns; row 0 holds the headers. */
struct table {
    char ***rows;           /* rows[row][column], owned */
    size_t row_count;
    size_t column_count;
    const bool *right_aligned;  /* per column, or NULL for all left-aligned */
};

/* Starts a table with the given NULL-terminated header cells. */
void table_init(struct table *t, const char *const *headers, const bool *right_aligned);
/* Adds a row of column_count formatted cells, copying each. */
void table_add(struct table *t, const char *const *cells);
/* Prints the table with two spaces between columns and an indent, then frees it. */
void table_print(struct table *t, int indent);
void table_free(struct table *t);

/* Reads an access token from a file or, with path "-", one line of stdin. Returns NULL after printing why. */
char *token_read(const char *path);

/* The commands: argv[0] is the command's name.  Each returns an exit status. */
int enqueue_main(struct cli *cli, int argc, char **argv);
int status_main(struct cli *cli, int argc, char **argv);
int wait_main(struct cli *cli, int argc, char **argv);
int stats_main(struct cli *cli, int argc, char **argv);
int watch_main(struct cli *cli, int argc, char **argv);
int dead_main(struct cli *cli, int argc, char **argv);
int unknown_main(struct cli *cli, int argc, char **argv);

/* Prints "certq COMMAND: MESSAGE" and a pointer to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "certq: MESSAGE" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a whole non-negative decimal number up to max; returns false otherwise. */
bool cli_parse_count(const char *s, long long max, long long *out);

#endif
