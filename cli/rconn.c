/* certq's one synchronous Redis connection: connecting, AUTH and SELECT, and running commands. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/util.h"

#define CONNECT_TIMEOUT_MS 5000
/* No certq command blocks in Redis, so a reply this late means Redis is stuck. */
#define REPLY_TIMEOUT_MS 30000
#define MAX_ARGS 64

static void unavailable(const struct cli *cli, const char *failure, const char *detail)
{
    const struct settings *s = &cli->settings;

    cli_error("Redis at %s %s: %s; check that Redis is running and that redis_url in %s (or --redis) points to it",
              s->redis_url, failure, detail, s->config_path);
    exit(EXIT_UNAVAILABLE);
}

static bool is_auth_error(const char *message)
{
    return str_has_prefix(message, "NOAUTH") || str_has_prefix(message, "WRONGPASS") ||
           str_has_prefix(message, "ERR invalid password") || str_has_prefix(message, "ERR AUTH");
}

static void connect_once(struct cli *cli)
{
    const struct settings *s = &cli->settings;
    struct timeval connect_timeout = { CONNECT_TIMEOUT_MS / 1000, 0 };
    struct timeval reply_timeout = { REPLY_TIMEOUT_MS / 1000, 0 };
    redisContext *c;

    if (s->redis_unix)
        c = redisConnectUnixWithTimeout(s->redis_unix, connect_timeout);
    else
        c = redisConnectWithTimeout(s->redis_host, s->redis_port, connect_timeout);
    if (c == NULL)
        unavailable(cli, "cannot be reached", "out of memory");
    if (c->err)
        unavailable(cli, "cannot be reached", c->errstr);
    redisSetTimeout(c, reply_timeout);
    cli->redis = c;

    /* AUTH and SELECT run before any command, so their failures are reported as setup failures. */
    if (s->redis_password) {
        redisReply *r = redisCommand(c, "AUTH %s", s->redis_password);
        if (r == NULL)
            unavailable(cli, "closed the connection during AUTH", c->errstr);
        if (r->type == REDIS_REPLY_ERROR) {
            cli_error("Redis at %s rejected the password: %s; check redis_password_file or redis_password_env in %s",
                      s->redis_url, r->str, s->config_path);
            exit(EXIT_UNAVAILABLE);
        }
        freeReplyObject(r);
    }
    if (s->redis_db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", s->redis_db);
        if (r == NULL)
            unavailable(cli, "closed the connection during SELECT", c->errstr);
        if (r->type == REDIS_REPLY_ERROR) {
            cli_error("Redis at %s rejected database %d: %s; check the database number in redis_url", s->redis_url,
                      s->redis_db, r->str);
            exit(EXIT_UNAVAILABLE);
        }
        freeReplyObject(r);
    }
}

static void check_reply(struct cli *cli, redisReply *r, const char *command)
{
    if (r == NULL)
        unavailable(cli, "stopped answering", cli->redis->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        if (is_auth_error(r->str)) {
            cli_error("Redis at %s requires a password: %s; set redis_password_file or redis_password_env in %s",
                      cli->settings.redis_url, r->str, cli->settings.config_path);
            exit(EXIT_UNAVAILABLE);
        }
        cli_error("Redis command %s failed: %s", command, r->str);
        exit(EXIT_FAILED);
    }
}

redisReply *rconn_run_argv(struct cli *cli, int argc, const char **argv)
{
    if (cli->redis == NULL)
        connect_once(cli);

    redisReply *r = redisCommandArgv(cli->redis, argc, argv, NULL);
    check_reply(cli, r, argv[0]);
    return r;
}

redisReply **rconn_run_pipeline(struct cli *cli, size_t count, const int *argcs, const char *const *const *argvs)
{
    redisReply **replies = xcalloc(count + 1, sizeof(redisReply *));

    if (cli->redis == NULL)
        connect_once(cli);
    for (size_t i = 0; i < count; i++)
        redisAppendCommandArgv(cli->redis, argcs[i], (const char **)argvs[i], NULL);
    for (size_t i = 0; i < count; i++) {
        void *reply = NULL;
        if (redisGetReply(cli->redis, &reply) != REDIS_OK)
            reply = NULL;
        check_reply(cli, reply, argvs[i][0]);
        replies[i] = reply;
    }
    return replies;
}

void rconn_free_replies(redisReply **replies, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (replies[i])
            freeReplyObject(replies[i]);
    free(replies);
}

redisReply *rconn_run(struct cli *cli, const char *arg, ...)
{
    const char *argv[MAX_ARGS];
    int argc = 0;
    va_list ap;

    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < MAX_ARGS; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    return rconn_run_argv(cli, argc, argv);
}

void rconn_close(struct cli *cli)
{
    if (cli->redis)
        redisFree(cli->redis);
    cli->redis = NULL;
}

void rconn_key(const struct cli *cli, char out[CERTQ_KEY_MAX], const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, CERTQ_KEY_MAX, "%s:", cli->settings.key_prefix);

    va_start(ap, fmt);
    vsnprintf(out + n, CERTQ_KEY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
}

long long rconn_integer(const redisReply *reply, long long fallback)
{
    char *end;

    if (reply == NULL)
        return fallback;
    if (reply->type == REDIS_REPLY_INTEGER)
        return reply->integer;
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0)
        return fallback;
    long long v = strtoll(reply->str, &end, 10);
    return *end == '\0' ? v : fallback;
}

const char *rconn_hash_get(const redisReply *hash, const char *field)
{
    if (hash == NULL || hash->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < hash->elements; i += 2)
        if (!strcmp(hash->element[i]->str, field))
            return hash->element[i + 1]->str;
    return NULL;
}
