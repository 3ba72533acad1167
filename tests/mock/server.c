/* HTTP(S) front end of the mock: one evhttp per thread, routing,
 * authentication, fault injection and the UAPI responses. */
#include "tests/mock/server.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>

#include "tests/mock/control.h"
#include "tests/mock/form.h"
#include "tests/mock/jsonout.h"
#include "tests/mock/market.h"
#include "tests/mock/state.h"

#define FUNC_REQUEST "request_ssl_certificates"
#define FUNC_PENDING "get_pending_ssl_certificates"

/* How often a held call checks whether its client is gone. */
#define SERVER_HANG_POLL_MS 100

struct server_thread {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *tls;
	struct call *calls;     /* calls without a reply yet, freed at exit */
};

/* One Market call from arrival to its reply. */
struct call {
	struct server_thread *thread;
	struct call *prev;
	struct call *next;
	struct evhttp_request *req;
	struct event_base *base;
	struct event *timer;
	enum mock_route route;
	char func[64];
	long account;
	char auth_user[128];
	uint64_t seq;
	struct form form;
	struct market_params params;
	struct fault_action fault;
	bool holds_account;
	unsigned long release_generation;
	char order_id[24];
};

static void server_free_call(struct call *call)
{
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		call->thread->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;

	if (call->holds_account)
		state_release_account(call->account);
	if (call->timer != NULL)
		event_free(call->timer);
	market_params_free(&call->params);
	form_free(&call->form);
	free(call);
}

static struct evbuffer *server_reply_buffer(struct call *call)
{
	return evhttp_request_get_output_buffer(call->req);
}

/* Send the output buffer with HTTP_STATUS and end the call. */
static void server_finish(struct call *call, int http_status,
    const char *content_type, enum fault_kind fault)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(call->req);

	evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_send_reply(call->req, http_status, NULL, NULL);
	state_finish_request(call->seq, http_status, fault,
	    call->order_id[0] != '\0' ? call->order_id : NULL);
	server_free_call(call);
}

/* Close the connection without a reply. Shutting the socket down first
 * makes the reply that follows fail to write, and evhttp then frees the
 * connection and the request. */
static void server_drop_request(struct evhttp_request *req)
{
	struct evhttp_connection *connection = evhttp_request_get_connection(req);

	if (connection != NULL) {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(connection);
		evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	evhttp_send_reply(req, 500, NULL, NULL);
}

static void server_finish_dropped(struct call *call, enum fault_kind fault)
{
	server_drop_request(call->req);
	state_finish_request(call->seq, 0, fault,
	    call->order_id[0] != '\0' ? call->order_id : NULL);
	server_free_call(call);
}

static void server_write_messages(yajl_gen gen, const struct message_list *list)
{
	if (list == NULL || list->count == 0) {
		yajl_gen_null(gen);
		return;
	}
	jsonout_string_array(gen, list->items, list->count);
}

static void server_finish_piece(yajl_gen gen, struct evbuffer *out)
{
	jsonout_flush(gen, out);
	yajl_gen_reset(gen, NULL);
}

/* Wrap the flat UAPI response in the WHM envelope when the call came
 * through /json-api/cpanel. */
static void server_open_envelope(struct call *call, yajl_gen gen,
    struct evbuffer *out)
{
	if (call->route == ROUTE_WHM) {
		evbuffer_add_printf(out, "{\"apiversion\":3,\"func\":");
		jsonout_string(gen, call->func);
		server_finish_piece(gen, out);
		evbuffer_add_printf(out, ",\"module\":\"Market\",\"result\":");
	}
	evbuffer_add_printf(out, "{\"data\":");
}

static void server_close_envelope(struct call *call, yajl_gen gen,
    struct evbuffer *out, const struct message_list *errors,
    const struct message_list *messages, int status)
{
	evbuffer_add_printf(out, ",\"errors\":");
	server_write_messages(gen, errors);
	server_finish_piece(gen, out);
	evbuffer_add_printf(out, ",\"warnings\":null,\"messages\":");
	server_write_messages(gen, messages);
	server_finish_piece(gen, out);
	evbuffer_add_printf(out, ",\"metadata\":{},\"status\":%d}", status);
	if (call->route == ROUTE_WHM)
		evbuffer_add_printf(out, "}");
}

/* Reply HTTP 200 with status 0 and ERRORS, as cPanel does when the
 * function ran and failed. */
static void server_finish_failed(struct call *call,
    const struct message_list *errors, enum fault_kind fault)
{
	struct evbuffer *out = server_reply_buffer(call);
	yajl_gen gen = jsonout_new();

	if (gen == NULL) {
		server_finish_dropped(call, fault);
		return;
	}
	server_open_envelope(call, gen, out);
	evbuffer_add_printf(out, "null");
	server_close_envelope(call, gen, out, errors, NULL, 0);
	yajl_gen_free(gen);
	server_finish(call, 200, "application/json", fault);
}

static void server_finish_lock_held(struct call *call, enum fault_kind fault)
{
	struct message_list errors = { 0 };

	message_list_add(&errors, "Another process holds the lock on the pending "
	    "certificate queue of the account \"%s\"; try again later.",
	    state_account_user(call->account));
	server_finish_failed(call, &errors, fault);
	message_list_free(&errors);
}

static void server_finish_status_fault(struct call *call)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(call->req);
	int status = call->fault.http_status;

	if (call->fault.retry_after_s >= 0) {
		char seconds[24];

		snprintf(seconds, sizeof(seconds), "%ld", call->fault.retry_after_s);
		evhttp_add_header(headers, "Retry-After", seconds);
	}
	evbuffer_add_printf(server_reply_buffer(call),
	    "mock-cpanel: injected HTTP %d\n", status);
	server_finish(call, status, "text/plain", FAULT_STATUS);
}

static void server_finish_malformed(struct call *call)
{
	/* Valid JSON up to a cut, like a response truncated by a proxy. */
	evbuffer_add_printf(server_reply_buffer(call),
	    "{\"data\":{\"order_id\":\"%s\",\"checkout_url\":\"https://store.exa",
	    call->order_id);
	server_finish(call, 200, "application/json", FAULT_MALFORMED);
}

static void server_hang_check(evutil_socket_t fd, short what, void *arg);

/* Keep the request without replying until the client goes away or the
 * faults are cleared. */
static void server_hold(struct call *call)
{
	struct timeval interval = { 0, SERVER_HANG_POLL_MS * 1000 };

	state_finish_request(call->seq, 0, FAULT_HANG,
	    call->order_id[0] != '\0' ? call->order_id : NULL);
	call->release_generation = state_release_generation();
	call->timer = evtimer_new(call->base, server_hang_check, call);
	if (call->timer == NULL) {
		server_finish_dropped(call, FAULT_HANG);
		return;
	}
	evtimer_add(call->timer, &interval);
}

static bool server_client_gone(struct evhttp_request *req)
{
	struct evhttp_connection *connection = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct pollfd pfd;

	if (connection == NULL)
		return true;
	bev = evhttp_connection_get_bufferevent(connection);
	pfd.fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	if (pfd.fd < 0)
		return true;
	pfd.events = POLLRDHUP;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) < 0)
		return false;
	return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void server_hang_check(evutil_socket_t fd, short what, void *arg)
{
	struct call *call = arg;
	struct timeval interval = { 0, SERVER_HANG_POLL_MS * 1000 };

	if (server_client_gone(call->req) ||
	    state_release_generation() != call->release_generation) {
		server_drop_request(call->req);
		server_free_call(call);
		return;
	}
	evtimer_add(call->timer, &interval);
}

static void server_write_order(yajl_gen gen, const char *order_id,
    const struct order_item *items, size_t count)
{
	char checkout_url[96];

	snprintf(checkout_url, sizeof(checkout_url),
	    "https://store.example.com/checkout/%s", order_id);

	yajl_gen_map_open(gen);
	jsonout_key(gen, "order_id");
	jsonout_string(gen, order_id);
	jsonout_key(gen, "checkout_url");
	jsonout_string(gen, checkout_url);
	jsonout_key(gen, "certificates");
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < count; i++) {
		yajl_gen_map_open(gen);
		jsonout_key(gen, "key_id");
		jsonout_string(gen, items[i].key_id);
		jsonout_key(gen, "order_item_id");
		jsonout_string(gen, items[i].order_item_id);
		yajl_gen_map_close(gen);
	}
	yajl_gen_array_close(gen);
	yajl_gen_map_close(gen);
}

static void server_finish_ordered(struct call *call,
    const struct order_item *items, size_t count)
{
	struct evbuffer *out = server_reply_buffer(call);
	enum fault_kind fault = call->fault.kind;
	yajl_gen gen = jsonout_new();

	if (gen == NULL) {
		server_finish_dropped(call, fault);
		return;
	}

	/* A short response lists one certificate fewer than were ordered. */
	if (fault == FAULT_SHORT && count > 0)
		count--;

	server_open_envelope(call, gen, out);
	server_write_order(gen, call->order_id, items, count);
	server_finish_piece(gen, out);
	server_close_envelope(call, gen, out, NULL, NULL, 1);
	yajl_gen_free(gen);
	server_finish(call, 200, "application/json", fault);
}

static void server_run_request(struct call *call)
{
	struct message_list errors = { 0 };
	struct order_item *items = NULL;
	size_t count = call->params.certificate_count;
	enum fault_kind fault = call->fault.kind;

	if (market_check_order(&call->params, &items, &errors) < 0) {
		server_finish_failed(call, &errors, fault);
		message_list_free(&errors);
		return;
	}

	if (state_place_order(call->account, call->params.provider, items, count,
	    call->order_id) < 0) {
		message_list_add(&errors, "The mock ran out of memory while placing "
		    "the order.");
		server_finish_failed(call, &errors, fault);
		message_list_free(&errors);
		market_free_items(items, count);
		return;
	}

	/* The order is placed; the lock of the real function ends here. */
	if (call->holds_account) {
		state_release_account(call->account);
		call->holds_account = false;
	}

	switch (fault) {
	case FAULT_CLOSE_AFTER:
		server_finish_dropped(call, fault);
		break;
	case FAULT_MALFORMED:
		server_finish_malformed(call);
		break;
	case FAULT_HANG:
		server_hold(call);
		break;
	default:
		server_finish_ordered(call, items, count);
		break;
	}
	market_free_items(items, count);
}

static void server_run_pending(struct call *call)
{
	struct evbuffer *out = server_reply_buffer(call);
	yajl_gen gen = jsonout_new();

	if (gen == NULL) {
		server_finish_dropped(call, call->fault.kind);
		return;
	}
	server_open_envelope(call, gen, out);
	state_write_pending(call->account, out);
	server_close_envelope(call, gen, out, NULL, NULL, 1);
	yajl_gen_free(gen);
	server_finish(call, 200, "application/json", call->fault.kind);
}

/* Run the Market function after any latency fault has passed. */
static void server_run_function(struct call *call)
{
	if (strcmp(call->func, FUNC_REQUEST) == 0)
		server_run_request(call);
	else
		server_run_pending(call);
}

static void server_latency_done(evutil_socket_t fd, short what, void *arg)
{
	server_run_function(arg);
}

static bool server_fault_reaches_function(const struct fault_action *fault)
{
	switch (fault->kind) {
	case FAULT_NONE:
	case FAULT_LATENCY:
	case FAULT_CLOSE_AFTER:
	case FAULT_SHORT:
		return true;
	case FAULT_MALFORMED:
	case FAULT_HANG:
		return fault->ordered;
	default:
		return false;
	}
}

/* Apply the fault chosen for the call, or run the function. */
static void server_dispatch(struct call *call)
{
	const struct fault_action *fault = &call->fault;
	bool is_request = strcmp(call->func, FUNC_REQUEST) == 0;

	switch (fault->kind) {
	case FAULT_STATUS:
		server_finish_status_fault(call);
		return;
	case FAULT_CLOSE_BEFORE:
		server_finish_dropped(call, fault->kind);
		return;
	case FAULT_LOCK:
		server_finish_lock_held(call, fault->kind);
		return;
	case FAULT_MALFORMED:
		if (!fault->ordered || !is_request) {
			server_finish_malformed(call);
			return;
		}
		break;
	case FAULT_HANG:
		if (!fault->ordered || !is_request) {
			server_hold(call);
			return;
		}
		break;
	case FAULT_CLOSE_AFTER:
		if (!is_request) {
			server_finish_dropped(call, fault->kind);
			return;
		}
		break;
	default:
		break;
	}

	/* cPanel serialises orders for one account on the lock of its
	 * pending queue, so a second call while one runs fails. */
	if (is_request && server_fault_reaches_function(fault)) {
		if (!state_acquire_account(call->account)) {
			server_finish_lock_held(call, FAULT_OVERLAP);
			return;
		}
		call->holds_account = true;
	}

	if (fault->kind == FAULT_LATENCY && fault->delay_ms > 0) {
		struct timeval delay = {
			fault->delay_ms / 1000, (fault->delay_ms % 1000) * 1000
		};

		call->timer = evtimer_new(call->base, server_latency_done, call);
		if (call->timer == NULL) {
			server_finish_dropped(call, fault->kind);
			return;
		}
		evtimer_add(call->timer, &delay);
		return;
	}
	server_run_function(call);
}

/* Reply to a request that never reached the Market function with a JSON
 * BODY. */
static void server_reply_early(struct evhttp_request *req, int http_status,
    const char *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	evhttp_add_header(headers, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, http_status, NULL, NULL);
}

static void server_record(struct call *call)
{
	struct call_record record = {
		.route = call->route,
		.func = call->func[0] != '\0' ? call->func : NULL,
		.account = call->account >= 0 ? state_account_user(call->account) : NULL,
		.auth_user = call->auth_user[0] != '\0' ? call->auth_user : NULL,
		.provider = call->params.provider,
		.url_after_checkout = call->params.url_after_checkout,
		.has_access_token = call->params.access_token != NULL,
		.certificates = call->params.certificates,
		.certificate_lens = call->params.certificate_lens,
		.certificate_count = call->params.certificate_count,
	};

	call->seq = state_record_request(&record);
}

/* Parse "SCHEME USER:TOKEN" and check it for the call's route. Returns the
 * account index for the cPanel route, 0 for a valid WHM token, or -1. */
static long server_authenticate(struct call *call, const char *header)
{
	const char *scheme = call->route == ROUTE_WHM ? "whm" : "cpanel";
	size_t scheme_len = strlen(scheme);
	char credentials[512];
	char *colon;

	if (header == NULL || strncasecmp(header, scheme, scheme_len) != 0 ||
	    header[scheme_len] != ' ')
		return -1;
	header += scheme_len + 1;
	while (*header == ' ')
		header++;
	if (strlen(header) >= sizeof(credentials))
		return -1;
	memcpy(credentials, header, strlen(header) + 1);

	colon = strchr(credentials, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	snprintf(call->auth_user, sizeof(call->auth_user), "%.127s", credentials);

	if (call->route == ROUTE_WHM)
		return state_check_whm(credentials, colon + 1) ? 0 : -1;
	return state_check_account(credentials, colon + 1);
}

static void server_reject_credentials(struct call *call)
{
	static const char whm_denied[] =
	    "{\"cpanelresult\":{\"apiversion\":\"2\",\"error\":\"Access denied\","
	    "\"data\":{\"reason\":\"Access denied\",\"result\":\"0\"},"
	    "\"type\":\"text\"}}";
	static const char cpanel_denied[] =
	    "{\"data\":null,\"errors\":[\"Access denied: the user name or API "
	    "token is invalid.\"],\"warnings\":null,\"messages\":null,"
	    "\"metadata\":{},\"status\":0}";
	int status = call->route == ROUTE_WHM ? 403 : 401;

	server_record(call);
	server_reply_early(call->req, status,
	    call->route == ROUTE_WHM ? whm_denied : cpanel_denied);
	state_finish_request(call->seq, status, FAULT_NONE, NULL);
	server_free_call(call);
}

/* Reject a WHM call whose cpanel_jsonapi_* fields are wrong the way WHM
 * does: HTTP 200 with a top-level error. */
static void server_reject_whm_call(struct call *call, const char *reason)
{
	struct evbuffer *out = server_reply_buffer(call);
	yajl_gen gen = jsonout_new();

	if (gen != NULL) {
		yajl_gen_map_open(gen);
		jsonout_key(gen, "error");
		jsonout_string(gen, reason);
		jsonout_key(gen, "data");
		yajl_gen_map_open(gen);
		jsonout_key(gen, "reason");
		jsonout_string(gen, reason);
		jsonout_key(gen, "result");
		jsonout_string(gen, "0");
		yajl_gen_map_close(gen);
		jsonout_key(gen, "type");
		jsonout_string(gen, "text");
		yajl_gen_map_close(gen);
		jsonout_flush(gen, out);
		yajl_gen_free(gen);
	}
	server_finish(call, 200, "application/json", FAULT_NONE);
}

/* Read the WHM fields naming the account and function. Returns 0, or -1
 * after replying. */
static int server_read_whm_fields(struct call *call)
{
	const char *user = form_get(&call->form, "cpanel_jsonapi_user");
	const char *version = form_get(&call->form, "cpanel_jsonapi_apiversion");
	const char *module = form_get(&call->form, "cpanel_jsonapi_module");
	const char *func = form_get(&call->form, "cpanel_jsonapi_func");
	char reason[256];

	snprintf(call->func, sizeof(call->func), "%s", func != NULL ? func : "");
	call->account = user != NULL ? state_find_account(user) : -1;
	server_record(call);

	if (user == NULL || user[0] == '\0') {
		server_reject_whm_call(call, "Missing field \"cpanel_jsonapi_user\": "
		    "name the cPanel account to act for.");
		return -1;
	}
	if (call->account < 0) {
		snprintf(reason, sizeof(reason), "User parameter is invalid or was "
		    "not supplied: no cPanel account \"%.64s\" on this server.", user);
		server_reject_whm_call(call, reason);
		return -1;
	}
	if (version == NULL || strcmp(version, "3") != 0) {
		server_reject_whm_call(call, "Unsupported \"cpanel_jsonapi_apiversion\": "
		    "this server supports version 3 (UAPI) only.");
		return -1;
	}
	if (module == NULL || strcmp(module, "Market") != 0) {
		server_reject_whm_call(call, "Unsupported \"cpanel_jsonapi_module\": "
		    "this server offers the Market module only.");
		return -1;
	}
	return 0;
}

/* Decode the form from the POST body, or from the query string of a GET.
 * Returns 0, or -1 after replying. */
static int server_decode_form(struct call *call)
{
	struct evhttp_request *req = call->req;
	const char *text = NULL;
	size_t len = 0;
	long error_offset;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		struct evbuffer *body = evhttp_request_get_input_buffer(req);

		len = evbuffer_get_length(body);
		text = (const char *)evbuffer_pullup(body, -1);
	}
	if (len == 0) {
		text = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		len = text != NULL ? strlen(text) : 0;
	}

	if (form_decode(text != NULL ? text : "", len, &call->form,
	    &error_offset) == 0 &&
	    market_collect_params(&call->form, &call->params) == 0)
		return 0;

	char body[160];
	snprintf(body, sizeof(body), "{\"data\":null,\"errors\":[\"Invalid form "
	    "encoding at byte %ld: expected %%XX with two hex digits.\"],"
	    "\"warnings\":null,\"messages\":null,\"metadata\":{},\"status\":0}",
	    error_offset);
	server_reply_early(req, 400, body);
	return -1;
}

static bool server_is_known_func(const char *func)
{
	return strcmp(func, FUNC_REQUEST) == 0 || strcmp(func, FUNC_PENDING) == 0;
}

static void server_handle_market(struct evhttp_request *req,
    struct server_thread *thread, enum mock_route route, const char *func)
{
	struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
	const char *content_type = evhttp_find_header(headers, "Content-Type");
	struct call *call = calloc(1, sizeof(*call));
	long auth;

	if (call == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	call->thread = thread;
	call->next = thread->calls;
	if (thread->calls != NULL)
		thread->calls->prev = call;
	thread->calls = call;
	call->req = req;
	call->base = thread->base;
	call->route = route;
	call->account = -1;
	if (func != NULL)
		snprintf(call->func, sizeof(call->func), "%s", func);

	if (content_type != NULL &&
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST &&
	    strncasecmp(content_type, "application/x-www-form-urlencoded", 33) != 0) {
		server_reply_early(req, 415, "{\"data\":null,\"errors\":[\"Unsupported "
		    "Content-Type: send application/x-www-form-urlencoded.\"],"
		    "\"warnings\":null,\"messages\":null,\"metadata\":{},\"status\":0}");
		server_free_call(call);
		return;
	}

	auth = server_authenticate(call, evhttp_find_header(headers,
	    "Authorization"));
	if (auth < 0) {
		server_reject_credentials(call);
		return;
	}

	if (server_decode_form(call) < 0) {
		server_free_call(call);
		return;
	}

	if (route == ROUTE_WHM) {
		if (server_read_whm_fields(call) < 0)
			return;
	} else {
		call->account = auth;
		server_record(call);
	}

	if (!server_is_known_func(call->func)) {
		struct message_list errors = { 0 };

		message_list_add(&errors, "The function \"Market::%s\" does not exist "
		    "on this server.", call->func);
		server_finish_failed(call, &errors, FAULT_NONE);
		message_list_free(&errors);
		return;
	}

	state_take_fault(call->func, state_account_user(call->account),
	    &call->fault);
	server_dispatch(call);
}

static void server_handle_request(struct evhttp_request *req, void *arg)
{
	static const char execute_prefix[] = "/execute/Market/";
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);

	if (path == NULL) {
		server_reply_early(req, 400, "{\"error\":\"invalid request URI\"}");
		return;
	}
	if (strncmp(path, "/__mock__/", 10) == 0) {
		control_handle(req, path);
		return;
	}

	if (method != EVHTTP_REQ_POST && method != EVHTTP_REQ_GET) {
		server_reply_early(req, 405, "{\"error\":\"use GET or POST\"}");
		return;
	}
	if (strncmp(path, execute_prefix, sizeof(execute_prefix) - 1) == 0) {
		server_handle_market(req, arg, ROUTE_EXECUTE,
		    path + sizeof(execute_prefix) - 1);
		return;
	}
	if (strcmp(path, "/json-api/cpanel") == 0) {
		server_handle_market(req, arg, ROUTE_WHM, NULL);
		return;
	}
	server_reply_early(req, 404, "{\"error\":\"not found: this mock serves "
	    "/execute/Market/*, /json-api/cpanel and /__mock__/*\"}");
}

SSL_CTX *server_new_tls_context(const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long error;

	if (ctx == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		fprintf(stderr, "mock-cpanel: cannot load certificate %s\n", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "mock-cpanel: cannot load private key %s\n", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(stderr, "mock-cpanel: the key in %s does not match the "
		    "certificate in %s\n", key_file, cert_file);
		goto fail;
	}
	return ctx;

fail:
	while ((error = ERR_get_error()) != 0)
		fprintf(stderr, "mock-cpanel: TLS: %s\n",
		    ERR_error_string(error, NULL));
	SSL_CTX_free(ctx);
	return NULL;
}

static struct bufferevent *server_new_tls_bufferevent(struct event_base *base,
    void *arg)
{
	struct server_thread *thread = arg;
	SSL *ssl = SSL_new(thread->tls);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

struct server_thread *server_thread_new(const struct mock_config *config,
    SSL_CTX *tls, evutil_socket_t fd)
{
	struct server_thread *thread = calloc(1, sizeof(*thread));

	if (thread == NULL)
		goto fail;
	thread->tls = tls;
	thread->base = event_base_new();
	if (thread->base == NULL)
		goto fail;
	thread->http = evhttp_new(thread->base);
	if (thread->http == NULL)
		goto fail;

	evhttp_set_gencb(thread->http, server_handle_request, thread);
	evhttp_set_max_body_size(thread->http, (ev_ssize_t)config->max_body_bytes);
	evhttp_set_timeout(thread->http, config->idle_timeout_s);
	evhttp_set_allowed_methods(thread->http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	if (tls != NULL)
		evhttp_set_bevcb(thread->http, server_new_tls_bufferevent, thread);

	if (evhttp_accept_socket_with_handle(thread->http, fd) == NULL) {
		fprintf(stderr, "mock-cpanel: cannot accept on the listening socket\n");
		goto fail;
	}
	return thread;

fail:
	evutil_closesocket(fd);
	server_thread_free(thread);
	return NULL;
}

struct event_base *server_thread_base(struct server_thread *thread)
{
	return thread->base;
}

void server_thread_free(struct server_thread *thread)
{
	if (thread == NULL)
		return;

	/* Calls still held by a fault end without a reply; evhttp_free then frees
	 * their requests with the connections. */
	while (thread->calls != NULL)
		server_free_call(thread->calls); /* NOLINT(clang-analyzer-unix.Malloc): it unlinks the call first */
	if (thread->http != NULL)
		evhttp_free(thread->http);
	if (thread->base != NULL)
		event_base_free(thread->base);
	free(thread);
}
