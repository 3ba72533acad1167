/*
 * The local journal of outcome transactions.  Records are length-prefixed, so
 * payloads with any bytes are safe:
 *   "C <id> <commands>\n", then per command "<argc>\n", then per argument
 *   "<length>\n<bytes>\n";  "D <id>\n" marks transaction id as written to Redis.
 * A torn record at the end (a crash during an append) is ignored: it was never
 * synced, so it was never sent either, and the job it describes is still held
 * in Redis as submitting, where recovery reconciles it.
 */
#include "daemon/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hmap.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/redisq.h"

/*
 * Appends are buffered in out by the loop thread.  A sync hands the buffer to
 * a worker thread that writes and fsyncs it, so the event loop never waits for
 * the disk; the worker reports back through a pipe.
 */
struct journal {
    int fd;
    int lock_fd;
    char *path;
    uint64_t next_id;
    size_t pending;
    off_t size;
    struct buf out;
    uint64_t appended;         /* appends so far; an append's number is its position */

    pthread_t worker;
    bool worker_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct buf flight;         /* the buffer the worker is writing */
    uint64_t flight_upto;
    bool flight_busy;
    bool flight_done;
    bool flight_ok;
    pthread_cond_t done_cond;
    bool quit;
    uint64_t synced_upto;
    int done_pipe[2];
};

static bool write_all(struct journal *j, const char *p, size_t left)
{
    while (left > 0) {
        ssize_t n = write(j->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("cannot write the journal: file=%s error=\"%s\"", j->path, strerror(errno));
            return false;
        }
        p += n;
        left -= (size_t)n;
    }
    return true;
}

static void *sync_worker(void *arg)
{
    struct journal *j = arg;

    pthread_mutex_lock(&j->lock);
    for (;;) {
        /* Work is a buffer handed over and not yet written. */
        while ((!j->flight_busy || j->flight_done) && !j->quit)
            pthread_cond_wait(&j->wake, &j->lock);
        if (!j->flight_busy || j->flight_done)
            break;
        pthread_mutex_unlock(&j->lock);

        bool ok = write_all(j, j->flight.data, j->flight.len);
        if (ok && fdatasync(j->fd) != 0) {
            log_error("cannot sync the journal: file=%s error=\"%s\"", j->path, strerror(errno));
            ok = false;
        }

        pthread_mutex_lock(&j->lock);
        j->flight_ok = ok;
        j->flight_done = true;
        pthread_cond_broadcast(&j->done_cond);
        char byte = 1;
        if (write(j->done_pipe[1], &byte, 1) < 0)
            log_error("cannot signal a finished journal sync: error=\"%s\"", strerror(errno));
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

int journal_sync_fd(const struct journal *j)
{
    return j->done_pipe[0];
}

uint64_t journal_appended(const struct journal *j)
{
    return j->appended;
}

bool journal_sync_start(struct journal *j)
{
    if (j->flight_busy || j->out.len == 0)
        return false;
    pthread_mutex_lock(&j->lock);
    struct buf swap = j->flight;
    j->flight = j->out;
    j->out = swap;
    buf_reset(&j->out);
    j->flight_upto = j->appended;
    j->flight_busy = true;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->lock);
    return true;
}

uint64_t journal_sync_finish(struct journal *j, bool *ok)
{
    char bytes[64];

    while (read(j->done_pipe[0], bytes, sizeof(bytes)) > 0)
        ;
    pthread_mutex_lock(&j->lock);
    if (j->flight_busy && j->flight_done) {
        *ok = j->flight_ok;
        j->size += (off_t)j->flight.len;
        buf_reset(&j->flight);
        j->synced_upto = j->flight_upto;
        j->flight_busy = false;
        j->flight_done = false;
        pthread_cond_signal(&j->wake);
    } else
        *ok = true;
    pthread_mutex_unlock(&j->lock);
    return j->synced_upto;
}

/* Waits for a running background sync, so the loop thread may use the file alone. */
static void wait_for_worker(struct journal *j)
{
    bool ok;

    if (!j->flight_busy)
        return;
    pthread_mutex_lock(&j->lock);
    while (!j->flight_done)
        pthread_cond_wait(&j->done_cond, &j->lock);
    pthread_mutex_unlock(&j->lock);
    journal_sync_finish(j, &ok);
}

struct journal *journal_open(const char *state_dir, char *err, size_t err_len)
{
    struct journal *j = xcalloc(1, sizeof(*j));
    struct buf path;

    j->fd = -1;
    j->lock_fd = -1;
    j->done_pipe[0] = j->done_pipe[1] = -1;
    buf_init(&j->out);
    buf_init(&j->flight);
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create state_dir %s: %s", state_dir, strerror(errno));
        goto fail;
    }

    buf_init(&path);
    buf_printf(&path, "%s/lock", state_dir);
    j->lock_fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lock_fd < 0) {
        snprintf(err, err_len, "cannot open %s: %s; check that state_dir is writable by certqd's user", path.data,
                 strerror(errno));
        buf_free(&path);
        goto fail;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_len, "state_dir %s is in use by another certqd; give each instance its own state_dir",
                 state_dir);
        buf_free(&path);
        goto fail;
    }
    buf_reset(&path);
    buf_printf(&path, "%s/journal", state_dir);
    j->path = buf_steal(&path);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        snprintf(err, err_len, "cannot open %s: %s", j->path, strerror(errno));
        goto fail;
    }
    /* The journal can hold job payloads with access tokens: only certqd's user may read it. */
    if (fchmod(j->fd, 0600) != 0) {
        snprintf(err, err_len, "cannot set mode 0600 on %s: %s", j->path, strerror(errno));
        goto fail;
    }
    j->next_id = 1;
    if (pipe2(j->done_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, err_len, "cannot create a pipe for the journal: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, NULL);
    pthread_cond_init(&j->done_cond, NULL);
    if (pthread_create(&j->worker, NULL, sync_worker, j) != 0) {
        snprintf(err, err_len, "cannot start the journal's sync thread");
        goto fail;
    }
    j->worker_started = true;
    return j;

fail:
    journal_close(j);
    return NULL;
}

void journal_close(struct journal *j)
{
    if (j == NULL)
        return;
    if (j->worker_started) {
        wait_for_worker(j);
        if (j->out.len)
            journal_sync(j);
        pthread_mutex_lock(&j->lock);
        j->quit = true;
        pthread_cond_signal(&j->wake);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->worker, NULL);
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->wake);
        pthread_cond_destroy(&j->done_cond);
    }
    if (j->done_pipe[0] >= 0) {
        close(j->done_pipe[0]);
        close(j->done_pipe[1]);
    }
    buf_free(&j->flight);
    if (j->fd >= 0)
        close(j->fd);
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    buf_free(&j->out);
    free(j->path);
    free(j);
}

/* A cursor over the journal's bytes. */
struct reader {
    const char *p;
    const char *end;
};

static bool read_line_number(struct reader *r, unsigned long long *out)
{
    char *stop;

    if (r->p >= r->end)
        return false;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    if (nl == NULL)
        return false;
    errno = 0;
    *out = strtoull(r->p, &stop, 10);
    if (errno || stop != nl)
        return false;
    r->p = nl + 1;
    return true;
}

static struct rcmds *read_transaction(struct reader *r, unsigned long long commands)
{
    struct rcmds *c = rcmds_new();

    for (unsigned long long i = 0; i < commands; i++) {
        unsigned long long argc, len;
        if (!read_line_number(r, &argc) || argc == 0 || argc > 1000000)
            goto fail;
        for (unsigned long long a = 0; a < argc; a++) {
            if (!read_line_number(r, &len) || len > (unsigned long long)(r->end - r->p) ||
                (size_t)(r->end - r->p) < len + 1 || r->p[len] != '\n')
                goto fail;
            if (a == 0) {
                char *name = xstrndup(r->p, (size_t)len);
                rcmds_cmd(c, name);
                free(name);
            } else
                rcmds_argn(c, r->p, (size_t)len);
            r->p += len + 1;
        }
    }
    return c;

fail:
    rcmds_free(c);
    return NULL;
}

struct pending_record {
    uint64_t id;
    struct rcmds *c;
};

size_t journal_replay(struct journal *j, void (*fn)(void *arg, uint64_t id, struct rcmds *c), void *arg)
{
    size_t len = 0, count = 0, replayed = 0;
    char *text = file_read_all(j->path, (size_t)1 << 34, &len);
    struct pending_record *records = NULL;
    struct reader r;
    char key[32];
    struct hmap index;   /* id -> position in records, plus one */

    if (text == NULL)
        return 0;
    hmap_init(&index);
    r.p = text;
    r.end = text + len;
    while (r.p < r.end) {
        unsigned long long id, commands;
        char kind = *r.p;
        if ((kind != 'C' && kind != 'D') || r.end - r.p < 2 || r.p[1] != ' ')
            break;
        r.p += 2;
        if (kind == 'D') {
            if (!read_line_number(&r, &id))
                break;
            snprintf(key, sizeof(key), "%llu", id);
            uintptr_t at = (uintptr_t)hmap_remove(&index, key);
            if (at) {
                rcmds_free(records[at - 1].c);
                records[at - 1].c = NULL;
            }
            continue;
        }
        const char *sp = memchr(r.p, ' ', (size_t)(r.end - r.p));
        if (sp == NULL)
            break;
        id = strtoull(r.p, NULL, 10);
        r.p = sp + 1;
        if (!read_line_number(&r, &commands))
            break;
        struct rcmds *c = read_transaction(&r, commands);
        if (c == NULL)
            break;
        records = xrealloc(records, (count + 1) * sizeof(*records));
        records[count].id = id;
        records[count].c = c;
        count++;
        snprintf(key, sizeof(key), "%llu", id);
        hmap_put(&index, key, (void *)(uintptr_t)count);
    }
    if (r.p < r.end)
        log_warn("journal has an incomplete record at its end, ignored: file=%s offset=%zu", j->path,
                 (size_t)(r.p - text));
    hmap_destroy(&index);
    free(text);

    /* Compaction: the file starts again empty, and fn appends what is still pending. */
    if (ftruncate(j->fd, 0) != 0)
        log_error("cannot compact the journal: file=%s error=\"%s\"", j->path, strerror(errno));
    j->size = 0;
    for (size_t i = 0; i < count; i++) {
        if (records[i].c == NULL)
            continue;
        replayed++;
        fn(arg, records[i].id, records[i].c);
    }
    free(records);
    return replayed;
}

static void append_transaction(struct buf *out, uint64_t id, const struct rcmds *c)
{
    size_t n = rcmds_count(c);

    buf_append(out, "C ", 2);
    buf_put_uint(out, id);
    buf_append(out, " ", 1);
    buf_put_uint(out, n);
    buf_append(out, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        int argc = rcmds_argc(c, i);
        buf_put_uint(out, (unsigned long long)argc);
        buf_append(out, "\n", 1);
        for (int a = 0; a < argc; a++) {
            size_t len;
            const char *arg = rcmds_argv(c, i, a, &len);
            buf_put_uint(out, len);
            buf_append(out, "\n", 1);
            buf_append(out, arg, len);
            buf_append(out, "\n", 1);
        }
    }
}

uint64_t journal_append(struct journal *j, const struct rcmds *c)
{
    uint64_t id = j->next_id++;

    append_transaction(&j->out, id, c);
    j->pending++;
    j->appended++;
    return id;
}

bool journal_sync(struct journal *j)
{
    wait_for_worker(j);
    if (!write_all(j, j->out.data, j->out.len))
        return false;
    j->size += (off_t)j->out.len;
    buf_reset(&j->out);
    j->synced_upto = j->appended;
    if (fdatasync(j->fd) != 0) {
        log_error("cannot sync the journal: file=%s error=\"%s\"", j->path, strerror(errno));
        return false;
    }
    return true;
}

void journal_done(struct journal *j, uint64_t id)
{
    char line[40];
    int n = snprintf(line, sizeof(line), "D %llu\n", (unsigned long long)id);

    j->pending--;
    /*
     * Once Redis has everything, the file starts again empty: records of
     * finished jobs, retry payloads with access tokens among them, are kept
     * no longer than recovery needs them.
     */
    if (j->pending == 0 && j->out.len == 0 && !j->flight_busy && j->size > 0) {
        if (ftruncate(j->fd, 0) == 0) {
            j->size = 0;
            return;
        }
        log_error("cannot compact the journal: file=%s error=\"%s\"", j->path, strerror(errno));
    }
    /*
     * A completion mark is written at once but not synced: the kernel keeps it
     * if certqd is killed, and losing it in a power failure only means one
     * replay of a transaction Redis already has.
     */
    if (write(j->fd, line, (size_t)n) == n)
        j->size += n;
    else
        log_error("cannot write the journal: file=%s error=\"%s\"", j->path, strerror(errno));
}

size_t journal_pending(const struct journal *j)
{
    return j->pending;
}
