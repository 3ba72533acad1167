/* Jobs whose request may have reached cPanel without a response: checking the account's pending list before anything is sent again. */
#ifndef CERTQD_RECONCILE_H
#define CERTQD_RECONCILE_H

struct daemon;
struct held_job;
struct rcmds;

/* Appends the commands that park hj in the reconcile set for a later check, and releases it from requests. */
void reconcile_add(struct daemon *d, struct rcmds *c, struct held_job *hj, const char *reason);
/* Starts the check of a job taken back from the reconcile set. */
void reconcile_start(struct daemon *d, struct held_job *hj);

#endif
