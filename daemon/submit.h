/* HTTPS requests to cPanel through libcurl's multi interface, driven by the libevent loop. */
#ifndef CERTQD_SUBMIT_H
#define CERTQD_SUBMIT_H

#include "common/config.h"

struct daemon;
struct batch;
struct submitter;
struct transfer_result;

typedef void (*submit_done_fn)(void *arg, const struct transfer_result *tr);

struct submitter *submit_new(struct daemon *d);
void submit_free(struct submitter *sub);

/*
 * POSTs body to path on the server, authenticated with the server's token, and
 * calls done once with what happened.  The config is copied, so a reload does
 * not change a request already running.
 */
void submit_request(struct submitter *sub, const struct server_config *server, const char *path, const char *body,
                    submit_done_fn done, void *arg);
/* Sends a batch's request_ssl_certificates call; batch_finish runs when it ends. */
void submit_start(struct submitter *sub, struct batch *b);
/* Ends every running transfer at once, each reported as cut off. */
void submit_abort_all(struct submitter *sub);
/* Forgets the loaded CA files after a reload, so a renewed file is read again. */
void submit_config_changed(struct submitter *sub);

#endif
