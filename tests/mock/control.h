/* Control interface of the mock under /__mock__/: faults, reset and
 * read-back of requests, orders and counters. */
#ifndef MOCK_CONTROL_H
#define MOCK_CONTROL_H

#include <event2/http.h>

/* Serve one control request; PATH starts with "/__mock__/". */
void control_handle(struct evhttp_request *req, const char *path);

#endif
