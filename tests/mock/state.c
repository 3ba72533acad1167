/* State of the mock shared by all serving threads: accounts, faults,
 * recorded requests, orders, pending queues and counters, under one mutex. */
#include "tests/mock/state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/mock/jsonout.h"

/* A FIFO of pointers that grows up to MAX entries, then drops the oldest. */
struct ring {
	void **items;
	size_t head;
	size_t count;
	size_t cap;
	size_t max;
	uint64_t dropped;
};

/* Subject names ordered for one account, with the number of orders each
 * name appeared in. Open addressing; CAP is a power of two. */
struct name_set {
	char **names;
	unsigned *order_counts;
	size_t cap;
	size_t used;
};

struct account_state {
	unsigned running_calls;
	struct ring pending;     /* pre-rendered JSON objects */
	struct name_set names;
};

/* A recorded request. The strings point into DATA; the certificates are
 * stored there one after the other, each preceded by its length. */
struct record {
	uint64_t seq;
	long long received_ms;
	int http_status;
	enum fault_kind fault;
	enum mock_route route;
	bool has_access_token;
	char order_id[24];
	const char *func;
	const char *account;
	const char *auth_user;
	const char *provider;
	const char *url_after_checkout;
	size_t certificate_count;
	const char *certificates;
	char data[];
};

struct fault_entry {
	long id;
	long remaining;
	struct fault_spec spec;
	struct fault_entry *next;
};

static struct {
	pthread_mutex_t lock;
	const struct mock_config *config;
	struct account_state *accounts;
	struct fault_entry *faults;
	long next_fault_id;
	unsigned long release_generation;
	unsigned random_seed;
	struct ring records;
	struct ring orders;      /* pre-rendered JSON objects */
	uint64_t next_seq;
	uint64_t next_order_no;
	uint64_t next_item_no;
	uint64_t requests;
	uint64_t orders_placed;
	uint64_t certificates_ordered;
	uint64_t overlaps;
	uint64_t duplicate_names_ordered;
	uint64_t faults_applied;
} state = { .lock = PTHREAD_MUTEX_INITIALIZER };

long long state_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Append ITEM. Returns the entry dropped to make room, which the caller
 * frees, or NULL. Sets *FAILED when memory ran out and ITEM was not added. */
static void *ring_push(struct ring *ring, void *item, bool *failed)
{
	void *dropped = NULL;

	*failed = false;
	if (ring->count == ring->cap && ring->cap < ring->max) {
		size_t cap = ring->cap == 0 ? 64 : ring->cap * 2;
		void **items;

		if (cap > ring->max)
			cap = ring->max;
		items = malloc(cap * sizeof(*items));
		if (items == NULL) {
			*failed = true;
			return NULL;
		}
		for (size_t i = 0; i < ring->count; i++)
			items[i] = ring->items[(ring->head + i) % ring->cap];
		free(ring->items);
		ring->items = items;
		ring->head = 0;
		ring->cap = cap;
	}

	if (ring->count == ring->cap) {
		/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): max is at least 1, so cap is too */
		dropped = ring->items[ring->head];
		ring->items[ring->head] = item;
		ring->head = (ring->head + 1) % ring->cap;
		ring->dropped++;
		return dropped;
	}

	ring->items[(ring->head + ring->count) % ring->cap] = item;
	ring->count++;
	return NULL;
}

static void *ring_at(const struct ring *ring, size_t i)
{
	return ring->items[(ring->head + i) % ring->cap];
}

static void ring_clear(struct ring *ring)
{
	for (size_t i = 0; i < ring->count; i++)
		free(ring_at(ring, i));
	free(ring->items);
	ring->items = NULL;
	ring->head = 0;
	ring->count = 0;
	ring->cap = 0;
	ring->dropped = 0;
}

static uint64_t name_hash(const char *name)
{
	uint64_t hash = 14695981039346656037ULL;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		hash ^= *p;
		hash *= 1099511628211ULL;
	}
	return hash;
}

static int name_set_grow(struct name_set *set)
{
	size_t cap = set->cap == 0 ? 64 : set->cap * 2;
	char **names = calloc(cap, sizeof(*names));
	unsigned *counts = calloc(cap, sizeof(*counts));

	if (names == NULL || counts == NULL) {
		free(names);
		free(counts);
		return -1;
	}

	for (size_t i = 0; i < set->cap; i++) {
		if (set->names[i] == NULL)
			continue;
		size_t slot = name_hash(set->names[i]) & (cap - 1);
		while (names[slot] != NULL)
			slot = (slot + 1) & (cap - 1);
		names[slot] = set->names[i];
		counts[slot] = set->order_counts[i];
	}

	free(set->names);
	free(set->order_counts);
	set->names = names;
	set->order_counts = counts;
	set->cap = cap;
	return 0;
}

/* Count one more order for NAME. Returns the new count, or 0 when memory
 * ran out. */
static unsigned name_set_count(struct name_set *set, const char *name)
{
	size_t slot;

	if ((set->used + 1) * 2 > set->cap && name_set_grow(set) < 0)
		return 0;

	slot = name_hash(name) & (set->cap - 1);
	while (set->names[slot] != NULL) {
		if (strcmp(set->names[slot], name) == 0)
			return ++set->order_counts[slot];
		slot = (slot + 1) & (set->cap - 1);
	}

	set->names[slot] = strdup(name);
	if (set->names[slot] == NULL)
		return 0;
	set->used++;
	set->order_counts[slot] = 1;
	return 1;
}

static void name_set_clear(struct name_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->names[i]);
	free(set->names);
	free(set->order_counts);
	memset(set, 0, sizeof(*set));
}

int state_init(const struct mock_config *config)
{
	state.config = config;
	state.accounts = calloc(config->account_count + 1, sizeof(*state.accounts));
	if (state.accounts == NULL)
		return -1;

	for (size_t i = 0; i < config->account_count; i++)
		state.accounts[i].pending.max = config->max_recorded;
	state.records.max = config->max_recorded;
	state.orders.max = config->max_recorded;
	state.next_fault_id = 1;
	state.next_seq = 1;
	state.next_order_no = 1000001;
	state.next_item_no = 5000001;
	state.random_seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	return 0;
}

static void state_free_fault(struct fault_entry *entry)
{
	free(entry->spec.account);
	free(entry->spec.func);
	free(entry);
}

/* Caller holds the lock. */
static void state_clear_faults_locked(void)
{
	while (state.faults != NULL) {
		struct fault_entry *next = state.faults->next;

		state_free_fault(state.faults);
		state.faults = next;
	}
	state.release_generation++;
}

/* Caller holds the lock. */
static void state_clear_recorded_locked(void)
{
	ring_clear(&state.records);
	ring_clear(&state.orders);
	for (size_t i = 0; i < state.config->account_count; i++) {
		ring_clear(&state.accounts[i].pending);
		name_set_clear(&state.accounts[i].names);
	}
	state.requests = 0;
	state.orders_placed = 0;
	state.certificates_ordered = 0;
	state.overlaps = 0;
	state.duplicate_names_ordered = 0;
	state.faults_applied = 0;
}

void state_free(void)
{
	pthread_mutex_lock(&state.lock);
	state_clear_faults_locked();
	if (state.accounts != NULL)
		state_clear_recorded_locked();
	free(state.accounts);
	state.accounts = NULL;
	pthread_mutex_unlock(&state.lock);
}

const char *fault_kind_name(enum fault_kind kind)
{
	switch (kind) {
	case FAULT_NONE:
		return NULL;
	case FAULT_LATENCY:
		return "latency";
	case FAULT_STATUS:
		return "status";
	case FAULT_CLOSE_BEFORE:
		return "close_before";
	case FAULT_CLOSE_AFTER:
		return "close_after";
	case FAULT_MALFORMED:
		return "malformed";
	case FAULT_SHORT:
		return "short";
	case FAULT_LOCK:
		return "lock";
	case FAULT_HANG:
		return "hang";
	case FAULT_OVERLAP:
		return "overlap";
	}
	return NULL;
}

/* Compare in time independent of where the first difference is. */
static bool state_token_equal(const char *given, const char *expected)
{
	size_t given_len = strlen(given);
	size_t expected_len = strlen(expected);
	unsigned char diff = given_len != expected_len;

	for (size_t i = 0; i < expected_len; i++)
		diff |= (unsigned char)(given[i < given_len ? i : 0] ^ expected[i]);
	return diff == 0;
}

long state_find_account(const char *user)
{
	const struct mock_config *config = state.config;

	for (size_t i = 0; i < config->account_count; i++) {
		if (strcmp(config->accounts[i].user, user) == 0)
			return (long)i;
	}
	return -1;
}

long state_check_account(const char *user, const char *token)
{
	long index = state_find_account(user);

	if (index < 0 || !state_token_equal(token, state.config->accounts[index].token))
		return -1;
	return index;
}

bool state_check_whm(const char *user, const char *token)
{
	const struct mock_config *config = state.config;

	for (size_t i = 0; i < config->whm_count; i++) {
		if (strcmp(config->whm_users[i].user, user) == 0 &&
		    state_token_equal(token, config->whm_users[i].token))
			return true;
	}
	return false;
}

double state_product_price(const char *id)
{
	const struct mock_config *config = state.config;

	for (size_t i = 0; i < config->product_count; i++) {
		if (strcmp(config->products[i].id, id) == 0)
			return config->products[i].price_usd;
	}
	return -1;
}

const char *state_account_user(long index)
{
	return state.config->accounts[index].user;
}

static size_t record_string_size(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* Copy S to *CURSOR and return the copy, or NULL for NULL. */
static const char *record_copy_string(char **cursor, const char *s)
{
	char *copy = *cursor;
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	memcpy(copy, s, len);
	*cursor += len;
	return copy;
}

static struct record *record_new(const struct call_record *in)
{
	size_t size = record_string_size(in->func) +
	    record_string_size(in->account) + record_string_size(in->auth_user) +
	    record_string_size(in->provider) +
	    record_string_size(in->url_after_checkout);
	struct record *record;
	char *cursor;

	for (size_t i = 0; i < in->certificate_count; i++)
		size += sizeof(size_t) + in->certificate_lens[i];

	record = malloc(sizeof(*record) + size);
	if (record == NULL)
		return NULL;
	memset(record, 0, sizeof(*record));
	record->route = in->route;
	record->has_access_token = in->has_access_token;
	record->received_ms = state_now_ms();

	cursor = record->data;
	record->func = record_copy_string(&cursor, in->func);
	record->account = record_copy_string(&cursor, in->account);
	record->auth_user = record_copy_string(&cursor, in->auth_user);
	record->provider = record_copy_string(&cursor, in->provider);
	record->url_after_checkout = record_copy_string(&cursor,
	    in->url_after_checkout);

	record->certificate_count = in->certificate_count;
	record->certificates = cursor;
	for (size_t i = 0; i < in->certificate_count; i++) {
		size_t len = in->certificate_lens[i];

		memcpy(cursor, &len, sizeof(len));
		cursor += sizeof(len);
		memcpy(cursor, in->certificates[i], len);
		cursor += len;
	}
	return record;
}

uint64_t state_record_request(const struct call_record *in)
{
	struct record *record = record_new(in);
	struct record *dropped = NULL;
	uint64_t seq;
	bool failed = false;

	pthread_mutex_lock(&state.lock);
	seq = state.next_seq++;
	state.requests++;
	if (record != NULL) {
		record->seq = seq;
		dropped = ring_push(&state.records, record, &failed);
	}
	pthread_mutex_unlock(&state.lock);

	free(dropped);
	if (failed)
		free(record);
	return seq;
}

void state_finish_request(uint64_t seq, int http_status,
    enum fault_kind fault, const char *order_id)
{
	pthread_mutex_lock(&state.lock);
	if (state.records.count > 0) {
		struct record *first = ring_at(&state.records, 0);

		if (seq >= first->seq && seq - first->seq < state.records.count) {
			struct record *record = ring_at(&state.records,
			    (size_t)(seq - first->seq));

			record->http_status = http_status;
			record->fault = fault;
			if (order_id != NULL)
				snprintf(record->order_id, sizeof(record->order_id),
				    "%s", order_id);
		}
	}
	pthread_mutex_unlock(&state.lock);
}

static bool state_fault_matches(const struct fault_spec *spec,
    const char *func, const char *account)
{
	if (spec->func == NULL) {
		if (strcmp(func, "request_ssl_certificates") != 0)
			return false;
	} else if (strcmp(spec->func, "*") != 0 && strcmp(spec->func, func) != 0) {
		return false;
	}

	if (spec->account == NULL)
		return true;
	return account != NULL && strcmp(spec->account, account) == 0;
}

void state_take_fault(const char *func, const char *account,
    struct fault_action *action)
{
	struct fault_entry **link;

	memset(action, 0, sizeof(*action));
	action->kind = FAULT_NONE;
	action->retry_after_s = -1;

	pthread_mutex_lock(&state.lock);
	for (link = &state.faults; *link != NULL; link = &(*link)->next) {
		struct fault_entry *entry = *link;

		if (!state_fault_matches(&entry->spec, func, account))
			continue;

		action->kind = entry->spec.kind;
		action->delay_ms = entry->spec.delay_ms;
		if (entry->spec.jitter_ms > 0)
			action->delay_ms += rand_r(&state.random_seed) %
			    (entry->spec.jitter_ms + 1);
		action->http_status = entry->spec.http_status;
		action->retry_after_s = entry->spec.retry_after_s;
		action->ordered = entry->spec.ordered;
		state.faults_applied++;

		if (entry->remaining > 0 && --entry->remaining == 0) {
			*link = entry->next;
			state_free_fault(entry);
		}
		break;
	}
	pthread_mutex_unlock(&state.lock);
}

long state_add_fault(struct fault_spec *spec)
{
	struct fault_entry *entry = calloc(1, sizeof(*entry));
	struct fault_entry **link;
	long id;

	if (entry == NULL)
		return -1;
	entry->spec = *spec;
	entry->remaining = spec->count;
	memset(spec, 0, sizeof(*spec));

	pthread_mutex_lock(&state.lock);
	id = entry->id = state.next_fault_id++;
	for (link = &state.faults; *link != NULL; link = &(*link)->next)
		;
	*link = entry;
	pthread_mutex_unlock(&state.lock);
	return id;
}

void state_clear_faults(void)
{
	pthread_mutex_lock(&state.lock);
	state_clear_faults_locked();
	pthread_mutex_unlock(&state.lock);
}

void state_reset(void)
{
	pthread_mutex_lock(&state.lock);
	state_clear_faults_locked();
	state_clear_recorded_locked();
	pthread_mutex_unlock(&state.lock);
}

unsigned long state_release_generation(void)
{
	unsigned long generation;

	pthread_mutex_lock(&state.lock);
	generation = state.release_generation;
	pthread_mutex_unlock(&state.lock);
	return generation;
}

bool state_acquire_account(long index)
{
	bool acquired;

	pthread_mutex_lock(&state.lock);
	acquired = state.accounts[index].running_calls == 0;
	if (acquired)
		state.accounts[index].running_calls++;
	else
		state.overlaps++;
	pthread_mutex_unlock(&state.lock);
	return acquired;
}

void state_release_account(long index)
{
	pthread_mutex_lock(&state.lock);
	if (state.accounts[index].running_calls > 0)
		state.accounts[index].running_calls--;
	pthread_mutex_unlock(&state.lock);
}

static char *state_render_order(yajl_gen gen, long account,
    const char *provider, const char *order_id, long long created_ms,
    const struct order_item *items, size_t count)
{
	yajl_gen_map_open(gen);
	jsonout_key(gen, "order_id");
	jsonout_string(gen, order_id);
	jsonout_key(gen, "account");
	jsonout_string(gen, state_account_user(account));
	jsonout_key(gen, "provider");
	jsonout_string(gen, provider);
	jsonout_key(gen, "created_ms");
	jsonout_integer(gen, created_ms);
	jsonout_key(gen, "certificates");
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < count; i++) {
		const struct order_item *item = &items[i];

		yajl_gen_map_open(gen);
		jsonout_key(gen, "product_id");
		jsonout_string(gen, item->product_id);
		jsonout_key(gen, "price");
		jsonout_double(gen, item->price_usd);
		jsonout_key(gen, "subject_names");
		jsonout_string_array(gen, item->subject_names, item->subject_count);
		jsonout_key(gen, "vhost_names");
		if (item->has_vhost_names)
			jsonout_string_array(gen, item->vhost_names, item->vhost_count);
		else
			yajl_gen_null(gen);
		jsonout_key(gen, "key_id");
		jsonout_string(gen, item->key_id);
		jsonout_key(gen, "order_item_id");
		jsonout_string(gen, item->order_item_id);
		yajl_gen_map_close(gen);
	}
	yajl_gen_array_close(gen);
	yajl_gen_map_close(gen);
	return jsonout_take(gen);
}

static char *state_render_pending(yajl_gen gen, const char *provider,
    const char *order_id, long long created_ms, const struct order_item *item)
{
	yajl_gen_map_open(gen);
	jsonout_key(gen, "provider");
	jsonout_string(gen, provider);
	jsonout_key(gen, "order_id");
	jsonout_string(gen, order_id);
	jsonout_key(gen, "order_item_id");
	jsonout_string(gen, item->order_item_id);
	jsonout_key(gen, "product_id");
	jsonout_string(gen, item->product_id);
	jsonout_key(gen, "vhost_names");
	jsonout_string_array(gen, item->vhost_names, item->vhost_count);
	jsonout_key(gen, "subject_names");
	jsonout_string_array(gen, item->subject_names, item->subject_count);
	jsonout_key(gen, "created");
	jsonout_integer(gen, created_ms / 1000);
	jsonout_key(gen, "created_ms");
	jsonout_integer(gen, created_ms);
	yajl_gen_map_close(gen);
	return jsonout_take(gen);
}

/* Store the rendered order and pending entries, and count the names. */
static void state_store_order_locked(long account, char *order_json,
    char **pending_json, const struct order_item *items, size_t count)
{
	struct account_state *acct = &state.accounts[account];
	bool failed;

	free(ring_push(&state.orders, order_json, &failed));
	if (failed)
		free(order_json);

	for (size_t i = 0; i < count; i++) {
		if (pending_json[i] != NULL) {
			free(ring_push(&acct->pending, pending_json[i], &failed));
			if (failed)
				free(pending_json[i]);
		}
		for (size_t n = 0; n < items[i].subject_count; n++) {
			if (name_set_count(&acct->names, items[i].subject_names[n]) == 2)
				state.duplicate_names_ordered++;
		}
	}

	state.orders_placed++;
	state.certificates_ordered += count;
}

int state_place_order(long account, const char *provider,
    struct order_item *items, size_t count, char *order_id)
{
	uint64_t order_no;
	uint64_t first_item_no;
	long long created_ms = state_now_ms();
	char **pending_json = calloc(count, sizeof(*pending_json));
	char *order_json = NULL;
	yajl_gen gen = jsonout_new();

	if (pending_json == NULL || gen == NULL)
		goto fail;

	pthread_mutex_lock(&state.lock);
	order_no = state.next_order_no++;
	first_item_no = state.next_item_no;
	state.next_item_no += count;
	pthread_mutex_unlock(&state.lock);

	snprintf(order_id, 24, "%llu", (unsigned long long)order_no);
	for (size_t i = 0; i < count; i++) {
		uint64_t item_no = first_item_no + i;

		snprintf(items[i].order_item_id, sizeof(items[i].order_item_id),
		    "%llu", (unsigned long long)item_no);
		snprintf(items[i].key_id, sizeof(items[i].key_id),
		    "%05lx_%05x_%032llx", (unsigned long)account & 0xfffff,
		    (unsigned)getpid() & 0xfffff, (unsigned long long)item_no);
	}

	order_json = state_render_order(gen, account, provider, order_id,
	    created_ms, items, count);
	if (order_json == NULL)
		goto fail;
	for (size_t i = 0; i < count; i++) {
		if (!items[i].has_vhost_names)
			continue;
		pending_json[i] = state_render_pending(gen, provider, order_id,
		    created_ms, &items[i]);
		if (pending_json[i] == NULL)
			goto fail;
	}

	pthread_mutex_lock(&state.lock);
	state_store_order_locked(account, order_json, pending_json, items, count);
	pthread_mutex_unlock(&state.lock);

	free(pending_json);
	yajl_gen_free(gen);
	return 0;

fail:
	if (pending_json != NULL) {
		for (size_t i = 0; i < count; i++)
			free(pending_json[i]);
	}
	free(pending_json);
	free(order_json);
	if (gen != NULL)
		yajl_gen_free(gen);
	return -1;
}

/* Write the recorded certificates: each parsed JSON value, or the raw
 * text as a string when it is not valid JSON. */
static void state_write_record_certificates(yajl_gen gen,
    const struct record *record)
{
	const char *cursor = record->certificates;

	yajl_gen_array_open(gen);
	for (size_t i = 0; i < record->certificate_count; i++) {
		size_t len;
		char *text;
		yajl_val tree = NULL;

		memcpy(&len, cursor, sizeof(len));
		cursor += sizeof(len);
		text = strndup(cursor, len);
		if (text != NULL && strlen(text) == len)
			tree = yajl_tree_parse(text, NULL, 0);
		if (tree != NULL)
			jsonout_value(gen, tree);
		else
			jsonout_string_len(gen, cursor, len);
		yajl_tree_free(tree);
		free(text);
		cursor += len;
	}
	yajl_gen_array_close(gen);
}

static void state_write_record(yajl_gen gen, const struct record *record)
{
	yajl_gen_map_open(gen);
	jsonout_key(gen, "seq");
	jsonout_integer(gen, (long long)record->seq);
	jsonout_key(gen, "route");
	jsonout_string(gen, record->route == ROUTE_WHM ? "whm" : "execute");
	jsonout_key(gen, "func");
	jsonout_string(gen, record->func);
	jsonout_key(gen, "account");
	jsonout_string(gen, record->account);
	jsonout_key(gen, "auth_user");
	jsonout_string(gen, record->auth_user);
	jsonout_key(gen, "http_status");
	if (record->http_status > 0)
		jsonout_integer(gen, record->http_status);
	else
		yajl_gen_null(gen);
	jsonout_key(gen, "fault");
	jsonout_string(gen, fault_kind_name(record->fault));
	jsonout_key(gen, "provider");
	jsonout_string(gen, record->provider);
	/* The token is a secret even in a mock: show only whether one was sent. */
	jsonout_key(gen, "access_token");
	jsonout_string(gen, record->has_access_token ? "***" : NULL);
	jsonout_key(gen, "url_after_checkout");
	jsonout_string(gen, record->url_after_checkout);
	jsonout_key(gen, "certificates");
	state_write_record_certificates(gen, record);
	jsonout_key(gen, "order_id");
	jsonout_string(gen, record->order_id[0] != '\0' ? record->order_id : NULL);
	jsonout_key(gen, "received_ms");
	jsonout_integer(gen, record->received_ms);
	yajl_gen_map_close(gen);
}

int state_write_requests(struct evbuffer *out)
{
	yajl_gen gen = jsonout_new();
	int rc = 0;

	if (gen == NULL)
		return -1;

	pthread_mutex_lock(&state.lock);
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < state.records.count && rc == 0; i++) {
		state_write_record(gen, ring_at(&state.records, i));
		if (i % 256 == 255)
			rc = jsonout_flush(gen, out);
	}
	yajl_gen_array_close(gen);
	pthread_mutex_unlock(&state.lock);

	if (rc == 0)
		rc = jsonout_flush(gen, out);
	yajl_gen_free(gen);
	return rc;
}

/* Write a ring of pre-rendered JSON objects as one array. Caller holds
 * the lock. */
static int state_write_ring_locked(const struct ring *ring,
    struct evbuffer *out)
{
	if (evbuffer_add(out, "[", 1) < 0)
		return -1;
	for (size_t i = 0; i < ring->count; i++) {
		const char *json = ring_at(ring, i);

		if (i > 0 && evbuffer_add(out, ",", 1) < 0)
			return -1;
		if (evbuffer_add(out, json, strlen(json)) < 0)
			return -1;
	}
	return evbuffer_add(out, "]", 1);
}

int state_write_orders(struct evbuffer *out)
{
	int rc;

	pthread_mutex_lock(&state.lock);
	rc = state_write_ring_locked(&state.orders, out);
	pthread_mutex_unlock(&state.lock);
	return rc;
}

int state_write_pending(long account, struct evbuffer *out)
{
	int rc;

	pthread_mutex_lock(&state.lock);
	rc = state_write_ring_locked(&state.accounts[account].pending, out);
	pthread_mutex_unlock(&state.lock);
	return rc;
}

int state_write_faults(struct evbuffer *out)
{
	yajl_gen gen = jsonout_new();
	int rc;

	if (gen == NULL)
		return -1;

	pthread_mutex_lock(&state.lock);
	yajl_gen_array_open(gen);
	for (const struct fault_entry *entry = state.faults; entry != NULL;
	    entry = entry->next) {
		const struct fault_spec *spec = &entry->spec;

		yajl_gen_map_open(gen);
		jsonout_key(gen, "id");
		jsonout_integer(gen, entry->id);
		jsonout_key(gen, "kind");
		jsonout_string(gen, fault_kind_name(spec->kind));
		jsonout_key(gen, "remaining");
		jsonout_integer(gen, entry->remaining);
		jsonout_key(gen, "account");
		jsonout_string(gen, spec->account);
		jsonout_key(gen, "func");
		jsonout_string(gen, spec->func != NULL ? spec->func :
		    "request_ssl_certificates");
		yajl_gen_map_close(gen);
	}
	yajl_gen_array_close(gen);
	pthread_mutex_unlock(&state.lock);

	rc = jsonout_flush(gen, out);
	yajl_gen_free(gen);
	return rc;
}

int state_write_stats(struct evbuffer *out)
{
	yajl_gen gen = jsonout_new();
	unsigned running = 0;
	int rc;

	if (gen == NULL)
		return -1;

	pthread_mutex_lock(&state.lock);
	for (size_t i = 0; i < state.config->account_count; i++)
		running += state.accounts[i].running_calls;

	yajl_gen_map_open(gen);
	jsonout_key(gen, "requests");
	jsonout_integer(gen, (long long)state.requests);
	jsonout_key(gen, "orders");
	jsonout_integer(gen, (long long)state.orders_placed);
	jsonout_key(gen, "certificates_ordered");
	jsonout_integer(gen, (long long)state.certificates_ordered);
	jsonout_key(gen, "overlaps");
	jsonout_integer(gen, (long long)state.overlaps);
	jsonout_key(gen, "duplicate_names_ordered");
	jsonout_integer(gen, (long long)state.duplicate_names_ordered);
	jsonout_key(gen, "faults_applied");
	jsonout_integer(gen, (long long)state.faults_applied);
	jsonout_key(gen, "requests_dropped");
	jsonout_integer(gen, (long long)state.records.dropped);
	jsonout_key(gen, "orders_dropped");
	jsonout_integer(gen, (long long)state.orders.dropped);
	jsonout_key(gen, "running_calls");
	jsonout_integer(gen, running);
	yajl_gen_map_close(gen);
	pthread_mutex_unlock(&state.lock);

	rc = jsonout_flush(gen, out);
	yajl_gen_free(gen);
	return rc;
}
