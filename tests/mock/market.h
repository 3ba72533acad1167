/* The Market functions of the mock: parameter collection and the checks
 * that cPanel and its store make before request_ssl_certificates orders. */
#ifndef MOCK_MARKET_H
#define MOCK_MARKET_H

#include <stddef.h>

#include "tests/mock/form.h"
#include "tests/mock/state.h"

/* Parameters of a Market call. The strings point into the decoded form. */
struct market_params {
	const char *provider;
	const char *access_token;
	const char *url_after_checkout;
	const char **certificates;
	size_t *certificate_lens;
	size_t certificate_count;
};

/* Messages for a response's "errors" or "messages" array. */
struct message_list {
	char **items;
	size_t count;
};

/* Append a formatted message; a message that cannot be allocated is lost. */
void message_list_add(struct message_list *list, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void message_list_free(struct message_list *list);

/* Collect the parameters from FORM. Certificates come from every field named
 * "certificate" or "certificate-N" (N decimal digits), in form order.
 * Returns 0, or -1 when memory ran out. */
int market_collect_params(const struct form *form, struct market_params *out);
void market_params_free(struct market_params *params);

/* Check a request_ssl_certificates call. Returns 0 with *ITEMS holding one
 * order item per certificate, or -1 with the reasons added to ERRORS. */
int market_check_order(const struct market_params *params,
    struct order_item **items, struct message_list *errors);
void market_free_items(struct order_item *items, size_t count);

#endif
