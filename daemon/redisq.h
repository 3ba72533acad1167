/* certqd's Redis side: two hiredis connections, an ordered queue of writes that survive reconnects, the scripts. */
#ifndef CERTQD_REDISQ_H
#define CERTQD_REDISQ_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct daemon;
struct redisq;
struct rcmds;

/* Called once an operation has run; reply is the EXEC or script reply, owned by hiredis. */
typedef void (*redisq_done_fn)(struct daemon *d, void *arg, redisReply *reply);

struct redisq *redisq_new(struct daemon *d);
void redisq_free(struct redisq *rq);
void redisq_start(struct redisq *rq);
/* Stops the blocking pop and the claim loop; writes go on. */
void redisq_stop_taking(struct redisq *rq);
/* Wakes the claim loop, after jobs finished and room was made under prefetch. */
void redisq_poke(struct redisq *rq);
bool redisq_connected(const struct redisq *rq);
/* Returns the number of operations not yet acknowledged by Redis. */
size_t redisq_backlog(const struct redisq *rq);
/* Returns how long the command connection has waited for a reply, or 0 when nothing is outstanding. */
long long redisq_stalled_ms(const struct redisq *rq);

/* Returns true when no operation, claim or blocking pop is outstanding. */
bool redisq_idle(const struct redisq *rq);

/* A list of commands run as one MULTI/EXEC transaction. */
struct rcmds *rcmds_new(void);
void rcmds_free(struct rcmds *c);
/* Starts a new command; the following rcmds_arg* calls add its arguments. */
void rcmds_cmd(struct rcmds *c, const char *name);
void rcmds_arg(struct rcmds *c, const char *s);
void rcmds_argn(struct rcmds *c, const char *s, size_t len);
void rcmds_argf(struct rcmds *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rcmds_arg_int(struct rcmds *c, long long n);
size_t rcmds_count(const struct rcmds *c);
/* Returns the number of arguments of command i, its name included. */
int rcmds_argc(const struct rcmds *c, size_t i);
/* Returns argument a of command i (NUL-terminated) and its length. */
const char *rcmds_argv(const struct rcmds *c, size_t i, int a, size_t *len);

/*
 * Runs the commands in one transaction, taking ownership of c.  Operations run
 * in the order they were given and are sent again after a reconnect or an
 * error reply until Redis confirms them, so done runs exactly once.  done
 * receives EXEC's reply; a single command without done runs without MULTI.
 */
void redisq_exec(struct redisq *rq, struct rcmds *c, redisq_done_fn done, void *arg);

enum redisq_script { SCRIPT_CLAIM, SCRIPT_ACCEPT, SCRIPT_DUE, SCRIPT_RECOVER, SCRIPT_RELEASE, SCRIPT_MARK, SCRIPT_COUNT };

/* Runs a script with arguments from c (a single command built with rcmds_cmd(c, "ARGS")); same guarantees as redisq_exec. */
void redisq_script(struct redisq *rq, enum redisq_script script, int key_count, struct rcmds *c,
                   redisq_done_fn done, void *arg);

/* Builds a key under the configured prefix into a static buffer of the caller. */
const char *redisq_key(const struct redisq *rq, char *out, size_t out_len, const char *suffix);

#endif
