/*
 * certqd's Redis side.  One connection carries every command but the blocking
 * pop, which holds a connection of its own.  Writes go through an ordered queue
 * of operations that are sent again after a reconnect or an error reply, so an
 * response cPanel gave is written even when Redis was away when it came.
 */
#include "daemon/redisq.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/certqd.h"
#include "daemon/scripts.h"

#define CLAIM_MAX 1000
/* Claims sent before the first returns, so Redis runs one while certqd parses the jobs of another. */
#define CLAIMS_AT_ONCE 2
#define BLOCK_TIMEOUT_S 1
#define CONNECT_TIMEOUT_MS 5000
#define TICK_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* Command i's arguments are args[first .. first + argc - 1] of its list. */
struct rcmd {
    size_t first;
    int argc;
};

/* One argument: len bytes at mem + off, followed by a NUL. */
struct rarg {
    size_t off;
    size_t len;
};

/*
 * A list of commands whose arguments share one block of memory, so building a
 * transaction of hundreds of arguments costs a few allocations, not one each.
 */
struct rcmds {
    struct rcmd *cmds;
    size_t count;
    size_t cap;
    struct rarg *args;
    size_t arg_count;
    size_t arg_cap;
    char *mem;
    size_t mem_len;
    size_t mem_cap;
};

struct rop {
    TAILQ_ENTRY(rop) link;
    struct redisq *rq;
    struct rcmds *cmds;
    int script;             /* -1 for a MULTI/EXEC transaction */
    int key_count;
    bool sent;
    bool use_eval;          /* the server lost its script cache: send the script's text */
    int errors;
    int64_t retry_at_ms;
    redisq_done_fn done;
    void *arg;
};
TAILQ_HEAD(rop_list, rop);

struct conn {
    struct redisq *rq;
    const char *name;
    redisAsyncContext *ac;
    bool ready;
    int64_t connect_started_ms;
    int pending;
    int64_t last_progress_ms;
    int backoff_ms;
    int64_t reconnect_at_ms;
    bool reported_down;
};

struct redisq {
    struct daemon *d;
    struct conn cmd;
    struct conn blk;
    struct rop_list ops;
    size_t op_count;
    char sha[SCRIPT_COUNT][41];
    struct event *tick;

    bool taking;
    int claims_running;
    size_t claimed_ahead;   /* jobs the running claims may still bring */
    bool block_pending;
    bool due_running;
    bool recover_running;
    int64_t next_heartbeat_ms;
    int64_t next_recovery_ms;
    int64_t next_due_ms;
    int64_t next_figures_ms;
    bool figures_running;
    bool heartbeat_sent_once;
};

static const char *const script_text[SCRIPT_COUNT] = {
    [SCRIPT_CLAIM] = script_claim,
    [SCRIPT_ACCEPT] = script_accept,
    [SCRIPT_DUE] = script_due,
    [SCRIPT_RECOVER] = script_recover,
    [SCRIPT_RELEASE] = script_release,
    [SCRIPT_MARK] = script_mark,
};

static void conn_connect(struct conn *c);
static void ops_send_all(struct redisq *rq);
static void claim_run(struct redisq *rq);
static void block_arm(struct redisq *rq);
static void resync_held(struct redisq *rq);

/* ---- command lists ---- */

struct rcmds *rcmds_new(void)
{
    return xcalloc(1, sizeof(struct rcmds));
}

void rcmds_free(struct rcmds *c)
{
    if (c == NULL)
        return;
    free(c->cmds);
    free(c->args);
    free(c->mem);
    free(c);
}

void rcmds_cmd(struct rcmds *c, const char *name)
{
    if (c->count == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->cmds = xrealloc(c->cmds, c->cap * sizeof(*c->cmds));
    }
    c->cmds[c->count].first = c->arg_count;
    c->cmds[c->count].argc = 0;
    c->count++;
    rcmds_arg(c, name);
}

void rcmds_argn(struct rcmds *c, const char *s, size_t len)
{
    if (c->arg_count == c->arg_cap) {
        c->arg_cap = c->arg_cap ? c->arg_cap * 2 : 16;
        c->args = xrealloc(c->args, c->arg_cap * sizeof(*c->args));
    }
    if (c->mem_len + len + 1 > c->mem_cap) {
        size_t cap = c->mem_cap ? c->mem_cap * 2 : 512;
        while (cap < c->mem_len + len + 1)
            cap *= 2;
        c->mem = xrealloc(c->mem, cap);
        c->mem_cap = cap;
    }
    if (len)
        memcpy(c->mem + c->mem_len, s, len);
    c->mem[c->mem_len + len] = '\0';
    c->args[c->arg_count].off = c->mem_len;
    c->args[c->arg_count].len = len;
    c->arg_count++;
    c->mem_len += len + 1;
    c->cmds[c->count - 1].argc++;
}

void rcmds_arg(struct rcmds *c, const char *s)
{
    rcmds_argn(c, s ? s : "", s ? strlen(s) : 0);
}

void rcmds_argf(struct rcmds *c, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(tmp)) {
        char *big = xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        rcmds_argn(c, big, (size_t)n);
        free(big);
        return;
    }
    rcmds_argn(c, tmp, (size_t)n);
}

void rcmds_arg_int(struct rcmds *c, long long n)
{
    char digits[DECIMAL_MAX];
    unsigned long long magnitude = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    const char *start = decimal_digits(digits, magnitude, n < 0);

    rcmds_argn(c, start, (size_t)(digits + DECIMAL_MAX - start));
}

size_t rcmds_count(const struct rcmds *c)
{
    return c->count;
}

int rcmds_argc(const struct rcmds *c, size_t i)
{
    return c->cmds[i].argc;
}

const char *rcmds_argv(const struct rcmds *c, size_t i, int a, size_t *len)
{
    const struct rarg *arg = &c->args[c->cmds[i].first + (size_t)a];

    *len = arg->len;
    return c->mem + arg->off;
}

/* Appends one argument in the Redis protocol: $len, CRLF, the bytes, CRLF. */
static void resp_arg(struct buf *out, const char *s, size_t len)
{
    buf_append(out, "$", 1);
    buf_put_uint(out, len);
    buf_append(out, "\r\n", 2);
    buf_append(out, s, len);
    buf_append(out, "\r\n", 2);
}

static void resp_array(struct buf *out, size_t count)
{
    buf_append(out, "*", 1);
    buf_put_uint(out, count);
    buf_append(out, "\r\n", 2);
}

/* Appends the leading arguments, then command i of c from its argument skip on. */
static void resp_command(struct buf *out, const struct rcmds *c, size_t i, int skip, const char *const *lead,
                         int lead_count)
{
    const struct rcmd *cmd = &c->cmds[i];

    resp_array(out, (size_t)(lead_count + cmd->argc - skip));
    for (int a = 0; a < lead_count; a++)
        resp_arg(out, lead[a], strlen(lead[a]));
    for (int a = skip; a < cmd->argc; a++) {
        const struct rarg *arg = &c->args[cmd->first + (size_t)a];
        resp_arg(out, c->mem + arg->off, arg->len);
    }
}

const char *redisq_key(const struct redisq *rq, char *out, size_t out_len, const char *suffix)
{
    snprintf(out, out_len, "%s:%s", rq->d->cfg->key_prefix, suffix);
    return out;
}

/* ---- operations ---- */

static void op_free(struct rop *op)
{
    rcmds_free(op->cmds);
    free(op);
}

static void op_schedule_retry(struct rop *op)
{
    int delay = BACKOFF_MIN_MS << (op->errors < 9 ? op->errors : 9);

    if (delay > 30000)
        delay = 30000;
    op->sent = false;
    op->retry_at_ms = mono_ms() + delay;
}

static void op_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rop *op = privdata;
    struct redisq *rq = op->rq;
    redisReply *reply = r;

    rq->cmd.pending--;
    rq->cmd.last_progress_ms = mono_ms();

    if (reply == NULL) {
        /* The connection is gone; the operation goes out again after the reconnect. */
        op->sent = false;
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (op->script >= 0 && str_has_prefix(reply->str, "NOSCRIPT")) {
            op->use_eval = true;
            op->sent = false;
            ops_send_all(rq);
            return;
        }
        op->errors++;
        log_warn("redis command failed, will retry: error=\"%.200s\" attempt=%d", reply->str, op->errors);
        op_schedule_retry(op);
        return;
    }

    TAILQ_REMOVE(&rq->ops, op, link);
    rq->op_count--;
    if (op->done)
        op->done(rq->d, op->arg, reply);
    op_free(op);
}

/* Hands the command at out->data + from to hiredis, which queues its callback and copies the bytes. */
static void send_formatted(struct conn *c, redisCallbackFn *fn, void *privdata, const struct buf *out, size_t from)
{
    redisAsyncFormattedCommand(c->ac, fn, privdata, out->data + from, out->len - from);
}

static void op_send(struct redisq *rq, struct rop *op)
{
    struct conn *c = &rq->cmd;
    struct buf out;

    buf_init(&out);
    if (op->script >= 0) {
        char nkeys[16];
        snprintf(nkeys, sizeof(nkeys), "%d", op->key_count);
        const char *lead[3] = { op->use_eval ? "EVAL" : "EVALSHA",
                                op->use_eval ? script_text[op->script] : rq->sha[op->script], nkeys };
        /* Argument 0 of the script's command is the placeholder name "ARGS". */
        resp_command(&out, op->cmds, 0, 1, lead, 3);
        send_formatted(c, op_reply, op, &out, 0);
    } else if (op->cmds->count == 1 && op->done == NULL) {
        /* One command is atomic by itself; MULTI and EXEC would triple the commands Redis runs. */
        resp_command(&out, op->cmds, 0, 0, NULL, 0);
        send_formatted(c, op_reply, op, &out, 0);
    } else {
        size_t from = 0;

        resp_array(&out, 1);
        resp_arg(&out, "MULTI", 5);
        send_formatted(c, NULL, NULL, &out, from);
        for (size_t i = 0; i < op->cmds->count; i++) {
            from = out.len;
            resp_command(&out, op->cmds, i, 0, NULL, 0);
            send_formatted(c, NULL, NULL, &out, from);
        }
        from = out.len;
        resp_array(&out, 1);
        resp_arg(&out, "EXEC", 4);
        send_formatted(c, op_reply, op, &out, from);
    }
    buf_free(&out);
    if (c->pending == 0)
        c->last_progress_ms = mono_ms();
    c->pending++;
    op->sent = true;
}

static void ops_send_all(struct redisq *rq)
{
    struct rop *op;
    int64_t now = mono_ms();

    if (!rq->cmd.ready)
        return;
    TAILQ_FOREACH(op, &rq->ops, link)
        if (!op->sent && op->retry_at_ms <= now)
            op_send(rq, op);
}

static void op_enqueue(struct redisq *rq, struct rop *op)
{
    op->rq = rq;
    TAILQ_INSERT_TAIL(&rq->ops, op, link);
    rq->op_count++;
    if (rq->cmd.ready)
        op_send(rq, op);
}

void redisq_exec(struct redisq *rq, struct rcmds *c, redisq_done_fn done, void *arg)
{
    struct rop *op = xcalloc(1, sizeof(*op));

    op->cmds = c;
    op->script = -1;
    op->done = done;
    op->arg = arg;
    op_enqueue(rq, op);
}

void redisq_script(struct redisq *rq, enum redisq_script script, int key_count, struct rcmds *c,
                   redisq_done_fn done, void *arg)
{
    struct rop *op = xcalloc(1, sizeof(*op));

    op->cmds = c;
    op->script = (int)script;
    op->key_count = key_count;
    op->done = done;
    op->arg = arg;
    op_enqueue(rq, op);
}

size_t redisq_backlog(const struct redisq *rq)
{
    return rq->op_count;
}

long long redisq_stalled_ms(const struct redisq *rq)
{
    if (!rq->cmd.ready || rq->cmd.pending == 0)
        return 0;
    return (long long)(mono_ms() - rq->cmd.last_progress_ms);
}

bool redisq_connected(const struct redisq *rq)
{
    return rq->cmd.ready;
}

/* ---- connections ---- */

static void conn_schedule_reconnect(struct conn *c)
{
    c->ready = false;
    c->ac = NULL;
    c->pending = 0;
    c->reconnect_at_ms = mono_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct conn *c = privdata;
    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_error("redis %s connection setup failed: error=\"%.200s\"; check redis_url and redis_password_file",
                  c->name, reply->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    struct redisq *rq = c->rq;
    struct config *cfg = rq->d->cfg;

    if (status != REDIS_OK) {
        if (!c->reported_down)
            log_warn("redis %s connection failed: error=\"%s\"; retrying", c->name, ac->errstr);
        c->reported_down = true;
        conn_schedule_reconnect(c);
        return;
    }

    if (cfg->redis_password) {
        const char *argv[2] = { "AUTH", cfg->redis_password };
        redisAsyncCommandArgv(c->ac, setup_reply, c, 2, argv, NULL);
    }
    if (cfg->redis_db)
        redisAsyncCommand(c->ac, setup_reply, c, "SELECT %d", cfg->redis_db);

    if (c->reported_down)
        log_info("redis %s connection restored: redis=%s", c->name, cfg->redis_url);
    else
        log_debug("redis %s connection ready: redis=%s", c->name, cfg->redis_url);
    c->reported_down = false;
    c->ready = true;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->last_progress_ms = mono_ms();

    if (c == &rq->cmd) {
        struct rop *op;
        TAILQ_FOREACH(op, &rq->ops, link)
            op->sent = false;
        ops_send_all(rq);
        resync_held(rq);
        claim_run(rq);
    } else {
        block_arm(rq);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    if (status != REDIS_OK && !c->reported_down) {
        log_warn("redis %s connection lost: error=\"%s\"; reconnecting", c->name, ac->errstr);
        c->reported_down = true;
    }
    if (c == &c->rq->blk)
        c->rq->block_pending = false;
    conn_schedule_reconnect(c);
}

static void conn_connect(struct conn *c)
{
    struct config *cfg = c->rq->d->cfg;
    redisAsyncContext *ac;

    if (cfg->redis_unix)
        ac = redisAsyncConnectUnix(cfg->redis_unix);
    else
        ac = redisAsyncConnect(cfg->redis_host, cfg->redis_port);
    if (ac == NULL || ac->err) {
        if (!c->reported_down)
            log_warn("redis %s connection failed: error=\"%s\"; retrying", c->name, ac ? ac->errstr : "out of memory");
        c->reported_down = true;
        if (ac)
            redisAsyncFree(ac);
        conn_schedule_reconnect(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->connect_started_ms = mono_ms();
    redisLibeventAttach(ac, c->rq->d->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/*
 * hiredis 0.14 has no command timeout, so a Redis that accepts a connection and
 * never replies would stall certqd.  Shutting the socket down makes hiredis fail
 * every pending callback and report a disconnect, which starts a reconnect.
 */
static void conn_watch(struct conn *c, int64_t now, int64_t limit_ms)
{
    if (c->ac == NULL) {
        if (now >= c->reconnect_at_ms)
            conn_connect(c);
        return;
    }
    if (!c->ready && now - c->connect_started_ms > CONNECT_TIMEOUT_MS) {
        log_warn("redis %s connection timed out after %d ms; retrying", c->name, CONNECT_TIMEOUT_MS);
        c->reported_down = true;
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = NULL;
        redisAsyncSetDisconnectCallback(ac, NULL);
        redisAsyncFree(ac);
        conn_schedule_reconnect(c);
        return;
    }
    if (c->ready && c->pending > 0 && now - c->last_progress_ms > limit_ms) {
        log_warn("redis %s connection gave no reply for %lld ms; reconnecting", c->name,
                 (long long)(now - c->last_progress_ms));
        c->reported_down = true;
        c->last_progress_ms = now;
        shutdown(c->ac->c.fd, SHUT_RDWR);
    }
}

/* ---- taking jobs ---- */

static void take_reply_items(struct redisq *rq, redisReply *reply)
{
    size_t n = reply->elements / 2;
    char **seqs, **payloads;

    if (reply->type != REDIS_REPLY_ARRAY || n == 0)
        return;
    seqs = xcalloc(n, sizeof(char *));
    payloads = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        seqs[i] = reply->element[2 * i]->str;
        payloads[i] = reply->element[2 * i + 1]->str;
    }
    queue_take_items(rq->d, seqs, payloads, n);
    free(seqs);
    free(payloads);
}

struct claim_ctx {
    struct redisq *rq;
    size_t max;
};

static void claim_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct claim_ctx *ctx = arg;
    struct redisq *rq = ctx->rq;
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements / 2 : 0;

    rq->claims_running--;
    rq->claimed_ahead -= ctx->max;
    free(ctx);
    take_reply_items(rq, reply);
    if (n > 0)
        claim_run(rq);
    else if (rq->claims_running == 0)
        block_arm(rq);
}

static size_t room(const struct redisq *rq)
{
    const struct daemon *d = rq->d;
    size_t limit = (size_t)d->cfg->prefetch;
    size_t held_or_coming = d->held_count + rq->claimed_ahead;

    return held_or_coming >= limit ? 0 : limit - held_or_coming;
}

static void claim_run(struct redisq *rq)
{
    char queue[256], taking[256], held[256], seq[256], suffix[200];
    size_t max;

    while (rq->taking && rq->claims_running < CLAIMS_AT_ONCE && (max = room(rq)) > 0) {
        if (max > CLAIM_MAX)
            max = CLAIM_MAX;

        struct rcmds *c = rcmds_new();
        rcmds_cmd(c, "ARGS");
        rcmds_arg(c, redisq_key(rq, queue, sizeof(queue), "queue"));
        snprintf(suffix, sizeof(suffix), "taking:%s", rq->d->instance_id);
        rcmds_arg(c, redisq_key(rq, taking, sizeof(taking), suffix));
        snprintf(suffix, sizeof(suffix), "held:%s", rq->d->instance_id);
        rcmds_arg(c, redisq_key(rq, held, sizeof(held), suffix));
        rcmds_arg(c, redisq_key(rq, seq, sizeof(seq), "seq"));
        rcmds_arg_int(c, (long long)max);

        struct claim_ctx *ctx = xcalloc(1, sizeof(*ctx));
        ctx->rq = rq;
        ctx->max = max;
        rq->claims_running++;
        rq->claimed_ahead += max;
        redisq_script(rq, SCRIPT_CLAIM, 4, c, claim_done, ctx);
    }
}

static void block_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redisq *rq = privdata;
    redisReply *reply = r;

    rq->blk.pending--;
    rq->blk.last_progress_ms = mono_ms();
    rq->block_pending = false;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_warn("redis blocking pop failed: error=\"%.200s\"; retrying in 1 s", reply->str);
        rq->next_due_ms = mono_ms();
        return;
    }
    if (reply->type == REDIS_REPLY_STRING)
        claim_run(rq);
    else
        block_arm(rq);
}

static void block_arm(struct redisq *rq)
{
    char queue[256], taking[256], suffix[200], timeout[16];

    if (!rq->taking || rq->block_pending || !rq->blk.ready || room(rq) == 0 || rq->claims_running > 0)
        return;
    snprintf(suffix, sizeof(suffix), "taking:%s", rq->d->instance_id);
    snprintf(timeout, sizeof(timeout), "%d", BLOCK_TIMEOUT_S);
    const char *argv[6] = { "BLMOVE", redisq_key(rq, queue, sizeof(queue), "queue"),
                            redisq_key(rq, taking, sizeof(taking), suffix), "RIGHT", "LEFT", timeout };
    redisAsyncCommandArgv(rq->blk.ac, block_reply, rq, 6, argv, NULL);
    if (rq->blk.pending == 0)
        rq->blk.last_progress_ms = mono_ms();
    rq->blk.pending++;
    rq->block_pending = true;
}

void redisq_poke(struct redisq *rq)
{
    if (rq->claims_running >= CLAIMS_AT_ONCE)
        return;
    if (rq->block_pending) {
        /* The blocking pop is waiting on an empty queue: new room changes nothing until it returns. */
        return;
    }
    claim_run(rq);
}

void redisq_stop_taking(struct redisq *rq)
{
    rq->taking = false;
}

/* ---- retries, recovery, heartbeat ---- */

static void due_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct redisq *rq = arg;

    rq->due_running = false;
    take_reply_items(rq, reply);
}

static void due_run(struct redisq *rq, const char *set)
{
    char zset[256], held[256], seq[256], suffix[200];
    size_t max = room(rq);

    if (max == 0)
        return;
    if (max > CLAIM_MAX)
        max = CLAIM_MAX;
    struct rcmds *c = rcmds_new();
    rcmds_cmd(c, "ARGS");
    rcmds_arg(c, redisq_key(rq, zset, sizeof(zset), set));
    snprintf(suffix, sizeof(suffix), "held:%s", rq->d->instance_id);
    rcmds_arg(c, redisq_key(rq, held, sizeof(held), suffix));
    rcmds_arg(c, redisq_key(rq, seq, sizeof(seq), "seq"));
    rcmds_arg(c, rq->d->cfg->key_prefix);
    rcmds_arg(c, rq->d->instance_id);
    rcmds_argf(c, "%lld", (long long)now_ms());
    rcmds_argf(c, "%zu", max);
    rq->due_running = true;
    redisq_script(rq, SCRIPT_DUE, 3, c, due_done, rq);
}

static void recover_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct redisq *rq = arg;

    rq->recover_running = false;
    if (reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
            continue;
        log_warn("recovered jobs of a stopped instance: instance=%s requeued=%lld reconciling=%lld",
                 r->element[0]->str, r->element[1]->integer, r->element[2]->integer);
    }
    if (reply->elements > 0)
        rq->next_due_ms = 0;
}

static void recover_run(struct redisq *rq)
{
    struct rcmds *c = rcmds_new();

    rcmds_cmd(c, "ARGS");
    rcmds_arg(c, rq->d->cfg->key_prefix);
    rcmds_arg(c, rq->d->instance_id);
    rcmds_argf(c, "%lld", (long long)now_ms());
    rq->recover_running = true;
    redisq_script(rq, SCRIPT_RECOVER, 0, c, recover_done, rq);
}

static void list_paused(const char *key, void *value, void *arg)
{
    const struct server_state *s = value;
    struct buf *out = arg;

    if (s->paused_until_ms > mono_ms())
        buf_printf(out, "%s%s", out->len ? "," : "", s->name);
}

static void heartbeat_run(struct redisq *rq)
{
    struct daemon *d = rq->d;
    char key[256], set[256], suffix[200];
    struct rcmds *c = rcmds_new();

    snprintf(suffix, sizeof(suffix), "instance:%s", d->instance_id);
    redisq_key(rq, key, sizeof(key), suffix);
    rcmds_cmd(c, "HSET");
    rcmds_arg(c, key);
    rcmds_arg(c, "host");
    rcmds_arg(c, d->hostname);
    rcmds_arg(c, "pid");
    rcmds_argf(c, "%d", (int)getpid());
    rcmds_arg(c, "version");
    rcmds_arg(c, CERTQD_VERSION);
    rcmds_arg(c, "started_ms");
    rcmds_argf(c, "%lld", (long long)d->started_ms);
    rcmds_arg(c, "heartbeat_ms");
    rcmds_argf(c, "%lld", (long long)now_ms());
    rcmds_arg(c, "jobs_held");
    rcmds_argf(c, "%zu", d->held_count);
    rcmds_arg(c, "requests_in_flight");
    rcmds_argf(c, "%d", d->in_flight);
    rcmds_arg(c, "paused_servers");
    struct buf paused;
    buf_init(&paused);
    hmap_each(&d->servers, list_paused, &paused);
    rcmds_arg(c, paused.data ? paused.data : "");
    buf_free(&paused);
    rcmds_cmd(c, "PEXPIRE");
    rcmds_arg(c, key);
    rcmds_argf(c, "%d", d->cfg->heartbeat_ttl_s * 1000);
    rcmds_cmd(c, "SADD");
    rcmds_arg(c, redisq_key(rq, set, sizeof(set), "instances"));
    rcmds_arg(c, d->instance_id);
    redisq_exec(rq, c, NULL, NULL);
}

static void resync_done(struct daemon *d, void *arg, redisReply *exec_reply)
{
    size_t n = 0;
    char **seqs, **payloads;

    if (exec_reply->type != REDIS_REPLY_ARRAY || exec_reply->elements != 1)
        return;
    redisReply *reply = exec_reply->element[0];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    seqs = xcalloc(reply->elements / 2, sizeof(char *));
    payloads = xcalloc(reply->elements / 2, sizeof(char *));
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        if (hmap_get(&d->held, reply->element[i]->str))
            continue;
        seqs[n] = reply->element[i]->str;
        payloads[n] = reply->element[i + 1]->str;
        n++;
    }
    if (n > 0) {
        log_info("taking back held jobs whose claim reply was lost: count=%zu", n);
        queue_take_items(d, seqs, payloads, n);
    }
    free(seqs);
    free(payloads);
}

/*
 * After a reconnect, a claim whose reply was lost may have moved jobs into the
 * held hash that this process never saw.  Reading the hash back (after every
 * operation queued before it) picks them up.
 */
static void resync_held(struct redisq *rq)
{
    char held[256], suffix[200];
    struct rcmds *c;

    if (!rq->heartbeat_sent_once)
        return;
    c = rcmds_new();
    snprintf(suffix, sizeof(suffix), "held:%s", rq->d->instance_id);
    rcmds_cmd(c, "HGETALL");
    rcmds_arg(c, redisq_key(rq, held, sizeof(held), suffix));
    redisq_exec(rq, c, resync_done, NULL);
}

static void figures_done(struct daemon *d, void *arg, redisReply *reply)
{
    struct redisq *rq = arg;

    rq->figures_running = false;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return;
    d->figures.queue = reply->element[0]->integer;
    d->figures.retry = reply->element[1]->integer;
    d->figures.reconcile = reply->element[2]->integer;
    d->figures.dead = reply->element[3]->integer;
    redisReply *numsub = reply->element[4];
    d->figures.event_subscribers =
        numsub->type == REDIS_REPLY_ARRAY && numsub->elements == 2 ? numsub->element[1]->integer : 1;
    d->figures.known = true;
}

/* Reads the queue depths once a second, only while Redis responses, so no backlog of polls builds up. */
static void figures_run(struct redisq *rq)
{
    char key[256];
    struct rcmds *c = rcmds_new();

    rcmds_cmd(c, "LLEN");
    rcmds_arg(c, redisq_key(rq, key, sizeof(key), "queue"));
    rcmds_cmd(c, "ZCARD");
    rcmds_arg(c, redisq_key(rq, key, sizeof(key), "retry"));
    rcmds_cmd(c, "ZCARD");
    rcmds_arg(c, redisq_key(rq, key, sizeof(key), "reconcile"));
    rcmds_cmd(c, "LLEN");
    rcmds_arg(c, redisq_key(rq, key, sizeof(key), "dead"));
    rcmds_cmd(c, "PUBSUB");
    rcmds_arg(c, "NUMSUB");
    rcmds_arg(c, redisq_key(rq, key, sizeof(key), "events"));
    rq->figures_running = true;
    redisq_exec(rq, c, figures_done, rq);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct redisq *rq = arg;
    struct daemon *d = rq->d;
    int64_t now = mono_ms();

    conn_watch(&rq->cmd, now, d->cfg->redis_reply_timeout_ms);
    conn_watch(&rq->blk, now, d->cfg->redis_reply_timeout_ms + BLOCK_TIMEOUT_S * 1000);
    ops_send_all(rq);
    if (!rq->cmd.ready)
        return;

    if (now >= rq->next_heartbeat_ms) {
        heartbeat_run(rq);
        rq->heartbeat_sent_once = true;
        rq->next_heartbeat_ms = now + d->cfg->heartbeat_ttl_s * 1000 / 3;
    }
    if (now >= rq->next_figures_ms && !rq->figures_running) {
        figures_run(rq);
        rq->next_figures_ms = now + 1000;
    }
    if (d->stopping)
        return;
    if (now >= rq->next_recovery_ms && !rq->recover_running) {
        recover_run(rq);
        rq->next_recovery_ms = now + d->cfg->recovery_interval_s * 1000;
    }
    if (now >= rq->next_due_ms && !rq->due_running && rq->taking) {
        due_run(rq, "retry");
        due_run(rq, "reconcile");
        rq->next_due_ms = now + 500;
    }
    if (!rq->block_pending)
        claim_run(rq);
}

struct redisq *redisq_new(struct daemon *d)
{
    struct redisq *rq = xcalloc(1, sizeof(*rq));

    rq->d = d;
    TAILQ_INIT(&rq->ops);
    rq->cmd.rq = rq;
    rq->cmd.name = "command";
    rq->cmd.backoff_ms = BACKOFF_MIN_MS;
    rq->blk.rq = rq;
    rq->blk.name = "blocking";
    rq->blk.backoff_ms = BACKOFF_MIN_MS;
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)script_text[i], strlen(script_text[i]), digest);
        for (int b = 0; b < SHA_DIGEST_LENGTH; b++)
            snprintf(rq->sha[i] + 2 * b, 3, "%02x", digest[b]);
    }
    return rq;
}

void redisq_start(struct redisq *rq)
{
    struct timeval tv = { 0, TICK_MS * 1000 };

    rq->taking = true;
    rq->tick = event_new(rq->d->base, -1, EV_PERSIST, tick, rq);
    event_add(rq->tick, &tv);
    conn_connect(&rq->cmd);
    conn_connect(&rq->blk);
    /* Register the heartbeat before taking anything, so recovery never mistakes this instance for a dead one. */
    heartbeat_run(rq);
    rq->heartbeat_sent_once = true;
    rq->next_heartbeat_ms = mono_ms() + rq->d->cfg->heartbeat_ttl_s * 1000 / 3;
}

bool redisq_idle(const struct redisq *rq)
{
    return rq->op_count == 0 && !rq->block_pending && rq->claims_running == 0 && !rq->due_running && !rq->recover_running;
}

void redisq_free(struct redisq *rq)
{
    struct rop *op;

    if (rq == NULL)
        return;
    if (rq->tick)
        event_free(rq->tick);
    /* Freeing a context runs its pending callbacks with a NULL reply, which only marks operations unsent. */
    if (rq->cmd.ac) {
        redisAsyncSetDisconnectCallback(rq->cmd.ac, NULL);
        redisAsyncFree(rq->cmd.ac);
    }
    if (rq->blk.ac) {
        redisAsyncSetDisconnectCallback(rq->blk.ac, NULL);
        redisAsyncFree(rq->blk.ac);
    }
    while ((op = TAILQ_FIRST(&rq->ops)) != NULL) {
        TAILQ_REMOVE(&rq->ops, op, link);
        op_free(op);
    }
    free(rq);
}
