/* State of the mock shared by all serving threads: accounts, faults,
 * recorded requests, orders, pending queues and counters, under one mutex. */
#ifndef MOCK_STATE_H
#define MOCK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "tests/mock/config.h"

enum mock_route {
	ROUTE_EXECUTE,
	ROUTE_WHM,
};

enum fault_kind {
	FAULT_NONE,
	FAULT_LATENCY,
	FAULT_STATUS,
	FAULT_CLOSE_BEFORE,
	FAULT_CLOSE_AFTER,
	FAULT_MALFORMED,
	FAULT_SHORT,
	FAULT_LOCK,
	FAULT_HANG,
	/* Not settable: marks a call rejected because another call for the
	 * same account was still running. */
	FAULT_OVERLAP,
};

/* A fault as set through the control interface. */
struct fault_spec {
	enum fault_kind kind;
	long count;             /* calls it applies to; 0 until cleared */
	char *account;          /* NULL for every account */
	char *func;             /* NULL for request_ssl_certificates, "*" for all */
	long delay_ms;
	long jitter_ms;
	int http_status;
	long retry_after_s;     /* below 0: no Retry-After header */
	bool ordered;
};

/* The fault chosen for one call, copied out of the list. */
struct fault_action {
	enum fault_kind kind;
	long delay_ms;          /* jitter already added */
	int http_status;
	long retry_after_s;
	bool ordered;
};

/* What is recorded about one call when it arrives. */
struct call_record {
	enum mock_route route;
	const char *func;
	const char *account;
	const char *auth_user;
	const char *provider;
	const char *url_after_checkout;
	bool has_access_token;
	const char *const *certificates;
	const size_t *certificate_lens;
	size_t certificate_count;
};

/* One certificate of an order; the ids are filled in when it is placed. */
struct order_item {
	char *product_id;
	double price_usd;
	char **subject_names;
	size_t subject_count;
	char **vhost_names;
	size_t vhost_count;
	bool has_vhost_names;
	char key_id[64];
	char order_item_id[24];
};

int state_init(const struct mock_config *config);
void state_free(void);

const char *fault_kind_name(enum fault_kind kind);

/* Return the index of the account USER with token TOKEN, or -1. */
long state_check_account(const char *user, const char *token);
/* Return the index of account USER, or -1 when there is no such account. */
long state_find_account(const char *user);
bool state_check_whm(const char *user, const char *token);
/* Return the catalogue price of product ID, or a negative value. */
double state_product_price(const char *id);
const char *state_account_user(long index);

/* Append a request to the log and return its sequence number. */
uint64_t state_record_request(const struct call_record *record);
/* Store the outcome of request SEQ; ORDER_ID may be NULL. */
void state_finish_request(uint64_t seq, int http_status,
    enum fault_kind fault, const char *order_id);

/* Choose the oldest fault matching FUNC and ACCOUNT and use one of its count. */
void state_take_fault(const char *func, const char *account,
    struct fault_action *action);
/* Add a fault and return its id, or -1 when memory ran out. Takes
 * ownership of the strings in SPEC. */
long state_add_fault(struct fault_spec *spec);
void state_clear_faults(void);
void state_reset(void);
/* Bumped by clear and reset so held calls can notice and end. */
unsigned long state_release_generation(void);

/* Mark a request_ssl_certificates call for the account as running. Returns
 * false, and counts an overlap, when another call for it is still running. */
bool state_acquire_account(long index);
void state_release_account(long index);

/* Give ids to ITEMS, store the order and the pending-queue entries, and
 * write the order id into ORDER_ID (24 bytes). Returns 0, or -1 when
 * memory ran out. */
int state_place_order(long account, const char *provider,
    struct order_item *items, size_t count, char *order_id);

/* Append JSON arrays or objects to OUT for the control interface and
 * get_pending_ssl_certificates. */
int state_write_requests(struct evbuffer *out);
int state_write_orders(struct evbuffer *out);
int state_write_faults(struct evbuffer *out);
int state_write_stats(struct evbuffer *out);
int state_write_pending(long account, struct evbuffer *out);

long long state_now_ms(void);

#endif
