/* Control interface of the mock under /__mock__/: faults, reset and
 * read-back of requests, orders and counters. */
#include "tests/mock/control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <yajl/yajl_tree.h>

#include "tests/mock/jsonout.h"
#include "tests/mock/state.h"

static void control_reply(struct evhttp_request *req, int http_status)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	evhttp_send_reply(req, http_status, NULL, NULL);
}

static void control_reply_error(struct evhttp_request *req, int http_status,
    const char *message)
{
	yajl_gen gen = jsonout_new();

	if (gen != NULL) {
		yajl_gen_map_open(gen);
		jsonout_key(gen, "error");
		jsonout_string(gen, message);
		yajl_gen_map_close(gen);
		jsonout_flush(gen, evhttp_request_get_output_buffer(req));
		yajl_gen_free(gen);
	}
	control_reply(req, http_status);
}

static yajl_val control_member(yajl_val object, const char *key)
{
	const char *path[] = { key, NULL };

	return yajl_tree_get(object, path, yajl_t_any);
}

/* Read an optional whole number >= 0 named KEY. Returns 0, or -1 when
 * present but invalid. */
static int control_read_count(yajl_val object, const char *key, long *out)
{
	yajl_val value = control_member(object, key);

	if (value == NULL || YAJL_IS_NULL(value))
		return 0;
	if (!YAJL_IS_INTEGER(value) || YAJL_GET_INTEGER(value) < 0)
		return -1;
	*out = (long)YAJL_GET_INTEGER(value);
	return 0;
}

static int control_read_kind(const char *name, enum fault_kind *kind)
{
	static const enum fault_kind kinds[] = {
		FAULT_LATENCY, FAULT_STATUS, FAULT_CLOSE_BEFORE, FAULT_CLOSE_AFTER,
		FAULT_MALFORMED, FAULT_SHORT, FAULT_LOCK, FAULT_HANG,
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(name, fault_kind_name(kinds[i])) == 0) {
			*kind = kinds[i];
			return 0;
		}
	}
	return -1;
}

/* Fill SPEC from the JSON object TREE. Returns NULL, or the reason the
 * fault is invalid. */
static const char *control_read_fault(yajl_val tree, struct fault_spec *spec)
{
	yajl_val kind = control_member(tree, "kind");
	yajl_val account = control_member(tree, "account");
	yajl_val func = control_member(tree, "func");
	yajl_val ordered = control_member(tree, "ordered");

	memset(spec, 0, sizeof(*spec));
	spec->retry_after_s = -1;

	if (!YAJL_IS_OBJECT(tree))
		return "expected a JSON object";
	if (!YAJL_IS_STRING(kind) || control_read_kind(kind->u.string,
	    &spec->kind) < 0)
		return "invalid \"kind\": expected latency, status, close_before, "
		    "close_after, malformed, short, lock or hang";
	if (control_read_count(tree, "count", &spec->count) < 0)
		return "invalid \"count\": expected a whole number, 0 for until cleared";
	if (control_read_count(tree, "ms", &spec->delay_ms) < 0)
		return "invalid \"ms\": expected a whole number of milliseconds";
	if (control_read_count(tree, "jitter_ms", &spec->jitter_ms) < 0)
		return "invalid \"jitter_ms\": expected a whole number of milliseconds";
	if (control_read_count(tree, "retry_after", &spec->retry_after_s) < 0)
		return "invalid \"retry_after\": expected a whole number of seconds";

	long status = 0;
	if (control_read_count(tree, "status", &status) < 0)
		return "invalid \"status\": expected an HTTP status code";
	spec->http_status = (int)status;
	if (spec->kind == FAULT_STATUS && (status < 400 || status > 599))
		return "a status fault needs \"status\" from 400 to 599, such as 429 "
		    "or 503";
	if (spec->kind == FAULT_LATENCY && control_member(tree, "ms") == NULL)
		return "a latency fault needs \"ms\"";

	if (ordered != NULL && !YAJL_IS_TRUE(ordered) && !YAJL_IS_FALSE(ordered))
		return "invalid \"ordered\": expected true or false";
	spec->ordered = YAJL_IS_TRUE(ordered);

	if (account != NULL && !YAJL_IS_NULL(account)) {
		if (!YAJL_IS_STRING(account))
			return "invalid \"account\": expected a user name";
		spec->account = strdup(account->u.string);
	}
	if (func != NULL && !YAJL_IS_NULL(func)) {
		if (!YAJL_IS_STRING(func) ||
		    (strcmp(func->u.string, "*") != 0 &&
		    strcmp(func->u.string, "request_ssl_certificates") != 0 &&
		    strcmp(func->u.string, "get_pending_ssl_certificates") != 0))
			return "invalid \"func\": expected request_ssl_certificates, "
			    "get_pending_ssl_certificates or \"*\"";
		spec->func = strdup(func->u.string);
	}
	return NULL;
}

static void control_add_fault(struct evhttp_request *req)
{
	struct evbuffer *input = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(input);
	char *text = malloc(len + 1);
	char parse_error[128];
	struct fault_spec spec = { 0 };
	yajl_val tree = NULL;
	const char *problem;
	long id;

	if (text == NULL) {
		control_reply_error(req, 500, "out of memory");
		return;
	}
	evbuffer_copyout(input, text, len);
	text[len] = '\0';

	tree = yajl_tree_parse(text, parse_error, sizeof(parse_error));
	if (tree == NULL) {
		control_reply_error(req, 400, "the body is not valid JSON");
		goto done;
	}
	problem = control_read_fault(tree, &spec);
	if (problem != NULL) {
		control_reply_error(req, 400, problem);
		goto done;
	}

	id = state_add_fault(&spec);
	if (id < 0) {
		control_reply_error(req, 500, "out of memory");
		goto done;
	}
	evbuffer_add_printf(evhttp_request_get_output_buffer(req), "{\"id\":%ld}",
	    id);
	control_reply(req, 200);

done:
	free(spec.account);
	free(spec.func);
	yajl_tree_free(tree);
	free(text);
}

/* Reply to a read-back request with the array or object WRITE produces. */
static void control_write(struct evhttp_request *req,
    int (*write)(struct evbuffer *out))
{
	if (write(evhttp_request_get_output_buffer(req)) < 0) {
		control_reply_error(req, 500, "out of memory");
		return;
	}
	control_reply(req, 200);
}

void control_handle(struct evhttp_request *req, const char *path)
{
	const char *name = path + strlen("/__mock__/");
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	bool is_post = method == EVHTTP_REQ_POST;
	bool is_get = method == EVHTTP_REQ_GET;

	if (strcmp(name, "fault") == 0 && is_post) {
		control_add_fault(req);
	} else if (strcmp(name, "clear") == 0 && is_post) {
		state_clear_faults();
		evbuffer_add_printf(evhttp_request_get_output_buffer(req),
		    "{\"cleared\":true}");
		control_reply(req, 200);
	} else if (strcmp(name, "reset") == 0 && is_post) {
		state_reset();
		evbuffer_add_printf(evhttp_request_get_output_buffer(req),
		    "{\"reset\":true}");
		control_reply(req, 200);
	} else if (strcmp(name, "faults") == 0 && is_get) {
		control_write(req, state_write_faults);
	} else if (strcmp(name, "requests") == 0 && is_get) {
		control_write(req, state_write_requests);
	} else if (strcmp(name, "orders") == 0 && is_get) {
		control_write(req, state_write_orders);
	} else if (strcmp(name, "stats") == 0 && is_get) {
		control_write(req, state_write_stats);
	} else {
		control_reply_error(req, 404, "unknown control request: use POST "
		    "fault, clear or reset, or GET faults, requests, orders or stats "
		    "under /__mock__/");
	}
}
