/* HTTP(S) front end of the mock: one evhttp per thread, routing,
 * authentication, fault injection and the UAPI responses. */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "tests/mock/config.h"

struct server_thread;

/* Return a TLS 1.2+ server context for CERT_FILE and KEY_FILE, or NULL
 * after printing why. */
SSL_CTX *server_new_tls_context(const char *cert_file, const char *key_file);

/* Create an event base and an evhttp serving on the listening socket FD,
 * which it takes ownership of. TLS may be NULL for plain HTTP. */
struct server_thread *server_thread_new(const struct mock_config *config,
    SSL_CTX *tls, evutil_socket_t fd);
struct event_base *server_thread_base(struct server_thread *thread);
void server_thread_free(struct server_thread *thread);

#endif
