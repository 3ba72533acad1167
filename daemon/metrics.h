/* The HTTP listener for operators: Prometheus /metrics, /healthz and /status. */
#ifndef CERTQD_METRICS_H
#define CERTQD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct daemon;
struct metrics;

/* Starts listening on metrics_listen (HOST:PORT); returns NULL with err set on failure. */
struct metrics *metrics_start(struct daemon *d, const char *listen, char *err, size_t err_len);
void metrics_stop(struct metrics *m);

/* Records one finished request: its duration and its number of certificates. */
void metrics_observe_request(struct daemon *d, double seconds, size_t certificates);

/* Writes the Prometheus text exposition of d into a new string. */
char *metrics_render(struct daemon *d);
/* Returns true when certqd is healthy; otherwise writes the reason into why. */
bool metrics_healthy(struct daemon *d, char *why, size_t why_len);

#endif
