/*
 * The local journal: every Redis transaction that records an outcome is
 * appended and fsynced here before it is sent, so an response cPanel gave
 * survives a crash or a Redis outage.  On start, transactions without a
 * completion mark are sent again, and the file is compacted.
 */
#ifndef CERTQD_JOURNAL_H
#define CERTQD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rcmds;
struct journal;

/* Opens (creating with mode 0600) STATE_DIR/journal and takes an exclusive lock on the directory. */
struct journal *journal_open(const char *state_dir, char *err, size_t err_len);
void journal_close(struct journal *j);

/*
 * Empties the journal and calls fn for each transaction it held without a
 * completion mark, oldest first; fn takes ownership of c and appends it again.
 */
size_t journal_replay(struct journal *j, void (*fn)(void *arg, uint64_t id, struct rcmds *c), void *arg);

/* Appends a transaction and returns its id; it is durable only after journal_sync. */
uint64_t journal_append(struct journal *j, const struct rcmds *c);
/* Flushes appended records to disk and waits for it.  Returns false (and logs) on an I/O error. */
bool journal_sync(struct journal *j);

/* Returns the number of appends so far; records up to a number are durable once a sync reports it. */
uint64_t journal_appended(const struct journal *j);
/* Starts writing and syncing the appended records in the worker thread; false when one is running or nothing is new. */
bool journal_sync_start(struct journal *j);
/* A descriptor that becomes readable when a background sync finished. */
int journal_sync_fd(const struct journal *j);
/* Collects a finished background sync; returns the number of appends now durable, and whether it worked. */
uint64_t journal_sync_finish(struct journal *j, bool *ok);
/* Records that Redis confirmed transaction id; truncates the file once nothing is pending. */
void journal_done(struct journal *j, uint64_t id);
size_t journal_pending(const struct journal *j);

#endif
