/* mock-cpanel: a stand-in for cPanel's UAPI Market functions, with faults
 * on command, for testing certqd without a real cPanel server. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "tests/mock/config.h"
#include "tests/mock/server.h"
#include "tests/mock/state.h"

#define LISTEN_BACKLOG 1024

struct worker {
	pthread_t thread;
	bool started;
	struct server_thread *server;
};

static struct worker *workers;
static int worker_count;

/* Open a listening socket on HOST:PORT. With several threads every socket
 * binds the same port with SO_REUSEPORT and the kernel spreads the
 * connections over them. Returns the socket or -1 after printing why. */
static evutil_socket_t main_listen(const char *host, int port,
    bool reuse_port, int *bound_port)
{
	struct addrinfo hints = { 0 };
	struct addrinfo *addrs = NULL;
	char port_text[16];
	evutil_socket_t fd = -1;
	int one = 1;
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port_text, sizeof(port_text), "%d", port);
	rc = getaddrinfo(host, port_text, &hints, &addrs);
	if (rc != 0) {
		fprintf(stderr, "mock-cpanel: invalid listen address %s: %s "
		    "(give a numeric IPv4 or IPv6 address)\n", host, gai_strerror(rc));
		return -1;
	}

	fd = socket(addrs->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (reuse_port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* bufferevent_openssl sends the headers and the body of a response as
	 * separate TLS records; with Nagle's algorithm the second one waits
	 * for the client's delayed ACK, about 40 ms on Linux. Accepted
	 * sockets inherit this option from the listening socket on Linux. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, addrs->ai_addr, addrs->ai_addrlen) < 0)
		goto fail;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	if (evutil_make_socket_nonblocking(fd) < 0)
		goto fail;

	struct sockaddr_storage bound;
	socklen_t bound_len = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0)
		goto fail;
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): getsockname filled bound */
	*bound_port = ntohs(bound.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&bound)->sin6_port :
	    ((struct sockaddr_in *)&bound)->sin_port);

	freeaddrinfo(addrs);
	return fd;

fail:
	fprintf(stderr, "mock-cpanel: cannot listen on %s:%d: %s\n", host, port,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(addrs);
	return -1;
}

/* Write PORT to PATH through a temporary file and rename, so a reader
 * never sees a partial number. */
static int main_write_port_file(const char *path, int port)
{
	char tmp_path[4096];
	FILE *file;

	if (snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%d", path,
	    (int)getpid()) >= (int)sizeof(tmp_path))
		goto fail;
	file = fopen(tmp_path, "w");
	if (file == NULL)
		goto fail;
	if (fprintf(file, "%d\n", port) < 0 || fclose(file) != 0) {
		unlink(tmp_path);
		goto fail;
	}
	if (rename(tmp_path, path) < 0) {
		unlink(tmp_path);
		goto fail;
	}
	return 0;

fail:
	fprintf(stderr, "mock-cpanel: cannot write port file %s: %s\n", path,
	    strerror(errno));
	return -1;
}

static void *main_run_worker(void *arg)
{
	struct worker *worker = arg;

	event_base_dispatch(server_thread_base(worker->server));
	return NULL;
}

static void main_on_signal(evutil_socket_t signal_number, short what, void *arg)
{
	fprintf(stderr, "mock-cpanel: stopping on signal %d\n", (int)signal_number);
	for (int i = 0; i < worker_count; i++)
		event_base_loopbreak(server_thread_base(workers[i].server));
}

/* Start threads 1..N-1 with SIGINT and SIGTERM blocked, so those signals
 * reach the signal events of thread 0. */
static int main_start_threads(void)
{
	sigset_t blocked;
	sigset_t previous;
	int rc = 0;

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &blocked, &previous);

	for (int i = 1; i < worker_count && rc == 0; i++) {
		rc = pthread_create(&workers[i].thread, NULL, main_run_worker,
		    &workers[i]);
		if (rc != 0)
			fprintf(stderr, "mock-cpanel: cannot start thread %d: %s\n", i,
			    strerror(rc));
		else
			workers[i].started = true;
	}

	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct mock_config config;
	SSL_CTX *tls = NULL;
	struct event *signal_events[2] = { NULL, NULL };
	int port = 0;
	int exit_code = 1;
	int rc;

	rc = config_parse_args(&config, argc, argv);
	if (rc != 0) {
		config_free(&config);
		return rc > 0 ? 0 : 2;
	}

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || state_init(&config) < 0) {
		fprintf(stderr, "mock-cpanel: cannot set up threads or state\n");
		goto done;
	}
	if (!config.plain) {
		tls = server_new_tls_context(config.cert_file, config.key_file);
		if (tls == NULL)
			goto done;
	}

	worker_count = config.threads;
	workers = calloc((size_t)worker_count, sizeof(*workers));
	if (workers == NULL)
		goto done;

	port = config.listen_port;
	for (int i = 0; i < worker_count; i++) {
		evutil_socket_t fd = main_listen(config.listen_host, port,
		    worker_count > 1, &port);

		if (fd < 0)
			goto done;
		workers[i].server = server_thread_new(&config, tls, fd);
		if (workers[i].server == NULL)
			goto done;
	}

	struct event_base *main_base = server_thread_base(workers[0].server);
	signal_events[0] = evsignal_new(main_base, SIGINT, main_on_signal, NULL);
	signal_events[1] = evsignal_new(main_base, SIGTERM, main_on_signal, NULL);
	if (signal_events[0] == NULL || signal_events[1] == NULL ||
	    evsignal_add(signal_events[0], NULL) < 0 ||
	    evsignal_add(signal_events[1], NULL) < 0)
		goto done;

	if (main_start_threads() < 0)
		goto stop;
	if (config.port_file != NULL &&
	    main_write_port_file(config.port_file, port) < 0)
		goto stop;

	fprintf(stderr, "mock-cpanel: listening on %s://%s:%d with %zu accounts, "
	    "%zu WHM tokens, %zu products, %d threads\n",
	    config.plain ? "http" : "https", config.listen_host, port,
	    config.account_count, config.whm_count, config.product_count,
	    worker_count);

	event_base_dispatch(main_base);
	exit_code = 0;

stop:
	for (int i = 1; i < worker_count; i++)
		event_base_loopbreak(server_thread_base(workers[i].server));
	for (int i = 1; i < worker_count; i++) {
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
	}

done:
	for (int i = 0; i < 2; i++) {
		if (signal_events[i] != NULL)
			event_free(signal_events[i]);
	}
	if (workers != NULL) {
		for (int i = 0; i < worker_count; i++)
			server_thread_free(workers[i].server);
		free(workers);
	}
	SSL_CTX_free(tls);
	state_free();
	config_free(&config);
	return exit_code;
}
