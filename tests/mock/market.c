/* The Market functions of the mock: parameter collection and the checks
 * that cPanel and its store make before request_ssl_certificates orders. */
#include "tests/mock/market.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_tree.h>

#include "tests/mock/jsonout.h"

/* A subject name with the certificate it belongs to, for finding names
 * that appear twice in one call. */
struct named_cert {
	const char *name;
	size_t cert;
};

void message_list_add(struct message_list *list, const char *format, ...)
{
	char **grown = realloc(list->items, (list->count + 1) * sizeof(*grown));
	va_list args;
	char *text;

	if (grown == NULL)
		return;
	list->items = grown;

	va_start(args, format);
	if (vasprintf(&text, format, args) >= 0)
		list->items[list->count++] = text;
	va_end(args);
}

void message_list_free(struct message_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static int market_is_certificate_field(const struct form_field *field)
{
	static const char prefix[] = "certificate";
	size_t prefix_len = sizeof(prefix) - 1;

	if (field->name_len < prefix_len ||
	    memcmp(field->name, prefix, prefix_len) != 0)
		return 0;
	if (field->name_len == prefix_len)
		return 1;
	if (field->name[prefix_len] != '-' || field->name_len == prefix_len + 1)
		return 0;
	for (size_t i = prefix_len + 1; i < field->name_len; i++) {
		if (!isdigit((unsigned char)field->name[i]))
			return 0;
	}
	return 1;
}

int market_collect_params(const struct form *form, struct market_params *out)
{
	size_t count = 0;

	memset(out, 0, sizeof(*out));
	out->provider = form_get(form, "provider");
	out->access_token = form_get(form, "access_token");
	out->url_after_checkout = form_get(form, "url_after_checkout");

	for (size_t i = 0; i < form->count; i++)
		count += market_is_certificate_field(&form->fields[i]);
	if (count == 0)
		return 0;

	out->certificates = malloc(count * sizeof(*out->certificates));
	out->certificate_lens = malloc(count * sizeof(*out->certificate_lens));
	if (out->certificates == NULL || out->certificate_lens == NULL) {
		market_params_free(out);
		return -1;
	}

	for (size_t i = 0; i < form->count; i++) {
		const struct form_field *field = &form->fields[i];

		if (!market_is_certificate_field(field))
			continue;
		out->certificates[out->certificate_count] = field->value;
		out->certificate_lens[out->certificate_count] = field->value_len;
		out->certificate_count++;
	}
	return 0;
}

void market_params_free(struct market_params *params)
{
	free(params->certificates);
	free(params->certificate_lens);
	memset(params, 0, sizeof(*params));
}

void market_free_items(struct order_item *items, size_t count)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(items[i].product_id);
		for (size_t n = 0; n < items[i].subject_count; n++)
			free(items[i].subject_names[n]);
		free(items[i].subject_names);
		for (size_t n = 0; n < items[i].vhost_count; n++)
			free(items[i].vhost_names[n]);
		free(items[i].vhost_names);
	}
	free(items);
}

static bool market_is_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!isspace((unsigned char)text[i]))
			return false;
	}
	return true;
}

static yajl_val market_member(yajl_val object, const char *key)
{
	for (size_t i = 0; i < object->u.object.len; i++) {
		if (strcmp(object->u.object.keys[i], key) == 0)
			return object->u.object.values[i];
	}
	return NULL;
}

/* Read a product id given as a string or a number. */
static char *market_read_product_id(yajl_val value)
{
	if (YAJL_IS_STRING(value) && value->u.string[0] != '\0')
		return strdup(value->u.string);
	if (YAJL_IS_NUMBER(value))
		return strdup(value->u.number.r);
	return NULL;
}

/* Read a price in USD given as a number or a numeric string. */
static bool market_read_price(yajl_val value, double *price_usd)
{
	const char *text;
	char *end;

	if (YAJL_IS_NUMBER(value))
		text = value->u.number.r;
	else if (YAJL_IS_STRING(value))
		text = value->u.string;
	else
		return false;

	errno = 0;
	*price_usd = strtod(text, &end);
	return errno == 0 && end != text && *end == '\0' && isfinite(*price_usd) &&
	    *price_usd >= 0;
}

/* Read one subject_names entry: ["dNSName", NAME] or an object with
 * "type", "name" and an optional "dcv_method". */
static int market_read_subject_name(yajl_val entry, size_t cert, size_t index,
    struct order_item *item, struct message_list *errors)
{
	const char *type = NULL;
	const char *name = NULL;
	const char *dcv_method = NULL;

	if (YAJL_IS_ARRAY(entry) && entry->u.array.len == 2 &&
	    YAJL_IS_STRING(entry->u.array.values[0]) &&
	    YAJL_IS_STRING(entry->u.array.values[1])) {
		type = entry->u.array.values[0]->u.string;
		name = entry->u.array.values[1]->u.string;
	} else if (YAJL_IS_OBJECT(entry)) {
		yajl_val type_value = market_member(entry, "type");
		yajl_val name_value = market_member(entry, "name");
		yajl_val dcv_value = market_member(entry, "dcv_method");

		if (YAJL_IS_STRING(type_value))
			type = type_value->u.string;
		if (YAJL_IS_STRING(name_value))
			name = name_value->u.string;
		if (YAJL_IS_STRING(dcv_value))
			dcv_method = dcv_value->u.string;
		else if (dcv_value != NULL)
			dcv_method = "";
	}

	if (type == NULL || name == NULL || name[0] == '\0') {
		message_list_add(errors, "Certificate %zu has an invalid entry %zu in "
		    "\"subject_names\": expected [\"dNSName\", NAME] or "
		    "{\"type\": \"dNSName\", \"name\": NAME}.", cert, index + 1);
		return -1;
	}
	if (strcmp(type, "dNSName") != 0) {
		message_list_add(errors, "Certificate %zu has the name type \"%s\"; "
		    "only \"dNSName\" is supported.", cert, type);
		return -1;
	}
	if (dcv_method != NULL && strcmp(dcv_method, "http") != 0 &&
	    strcmp(dcv_method, "dns") != 0) {
		message_list_add(errors, "Certificate %zu has an invalid \"dcv_method\" "
		    "for \"%s\": expected \"http\" or \"dns\".", cert, name);
		return -1;
	}
	if (dcv_method != NULL && strcmp(dcv_method, "http") == 0 &&
	    strncmp(name, "*.", 2) == 0) {
		message_list_add(errors, "Certificate %zu requests the wildcard name "
		    "\"%s\" with \"http\" validation; wildcard names need \"dns\".",
		    cert, name);
		return -1;
	}

	item->subject_names[item->subject_count] = strdup(name);
	if (item->subject_names[item->subject_count] == NULL)
		return -1;
	item->subject_count++;
	return 0;
}

static int market_read_subject_names(yajl_val names, size_t cert,
    struct order_item *item, struct message_list *errors)
{
	int rc = 0;

	if (!YAJL_IS_ARRAY(names) || names->u.array.len == 0) {
		message_list_add(errors, "Certificate %zu has an invalid "
		    "\"subject_names\": expected a non-empty array of names.", cert);
		return -1;
	}

	item->subject_names = calloc(names->u.array.len,
	    sizeof(*item->subject_names));
	if (item->subject_names == NULL)
		return -1;
	for (size_t i = 0; i < names->u.array.len; i++) {
		if (market_read_subject_name(names->u.array.values[i], cert, i, item,
		    errors) < 0)
			rc = -1;
	}
	return rc;
}

static int market_read_vhost_names(yajl_val vhosts, size_t cert,
    struct order_item *item, struct message_list *errors)
{
	if (vhosts == NULL || YAJL_IS_NULL(vhosts))
		return 0;
	if (!YAJL_IS_ARRAY(vhosts))
		goto invalid;

	item->vhost_names = calloc(vhosts->u.array.len + 1,
	    sizeof(*item->vhost_names));
	if (item->vhost_names == NULL)
		return -1;
	for (size_t i = 0; i < vhosts->u.array.len; i++) {
		yajl_val vhost = vhosts->u.array.values[i];

		if (!YAJL_IS_STRING(vhost) || vhost->u.string[0] == '\0')
			goto invalid;
		item->vhost_names[i] = strdup(vhost->u.string);
		if (item->vhost_names[i] == NULL)
			return -1;
		item->vhost_count++;
	}
	item->has_vhost_names = item->vhost_count > 0;
	return 0;

invalid:
	message_list_add(errors, "Certificate %zu has an invalid \"vhost_names\": "
	    "expected an array of virtual host names.", cert);
	return -1;
}

/* Return whether NAME ends with ".SUFFIX". */
static bool market_is_subdomain(const char *name, const char *suffix)
{
	size_t name_len = strlen(name);
	size_t suffix_len = strlen(suffix);

	return name_len > suffix_len + 1 &&
	    name[name_len - suffix_len - 1] == '.' &&
	    strcasecmp(name + name_len - suffix_len, suffix) == 0;
}

/* The mock does not know the account's virtual hosts, so a vhost matches a
 * subject name when the two are equal or one is a subdomain of the other
 * (www.example.com and sub.example.com both fall under vhost example.com).
 * A wildcard name *.example.com counts as example.com. */
static bool market_vhost_matches(const char *vhost, const struct order_item *item)
{
	if (strcmp(vhost, "*") == 0)
		return true;

	for (size_t i = 0; i < item->subject_count; i++) {
		const char *name = item->subject_names[i];

		if (strncmp(name, "*.", 2) == 0)
			name += 2;
		if (strcasecmp(name, vhost) == 0 || market_is_subdomain(name, vhost) ||
		    market_is_subdomain(vhost, name))
			return true;
	}
	return false;
}

static int market_check_vhosts(const struct order_item *item, size_t cert,
    struct message_list *errors)
{
	int rc = 0;

	for (size_t i = 0; i < item->subject_count; i++) {
		if (strncasecmp(item->subject_names[i], "www.", 4) == 0 &&
		    !item->has_vhost_names) {
			message_list_add(errors, "Certificate %zu includes \"%s\" but has "
			    "no \"vhost_names\"; a www. name needs the virtual host it "
			    "belongs to.", cert, item->subject_names[i]);
			rc = -1;
		}
	}

	for (size_t v = 0; v < item->vhost_count; v++) {
		if (!market_vhost_matches(item->vhost_names[v], item)) {
			message_list_add(errors, "Certificate %zu: virtual host %zu (\"%s\") "
			    "matches none of the certificate's subject names.", cert,
			    v + 1, item->vhost_names[v]);
			rc = -1;
		}
	}
	return rc;
}

/* Parse and check certificate CERT into ITEM. */
static int market_read_certificate(const char *text, size_t len, size_t cert,
    struct order_item *item, struct message_list *errors)
{
	static const char *const required[] = {
		"product_id", "price", "subject_names",
	};
	yajl_val tree = NULL;
	int rc = -1;

	if (market_is_blank(text, len)) {
		message_list_add(errors, "Certificate %zu is empty.", cert);
		return -1;
	}
	if (strlen(text) == len)
		tree = yajl_tree_parse(text, NULL, 0);
	if (tree == NULL) {
		message_list_add(errors, "Certificate %zu is not valid JSON.", cert);
		return -1;
	}
	if (!YAJL_IS_OBJECT(tree)) {
		message_list_add(errors, "Certificate %zu is not a JSON object.", cert);
		goto done;
	}
	if (tree->u.object.len == 0) {
		message_list_add(errors, "Certificate %zu is empty.", cert);
		goto done;
	}

	bool missing = false;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (market_member(tree, required[i]) == NULL) {
			message_list_add(errors, "Certificate %zu lacks the required "
			    "parameter \"%s\".", cert, required[i]);
			missing = true;
		}
	}
	if (missing)
		goto done;

	rc = 0;
	item->product_id = market_read_product_id(market_member(tree, "product_id"));
	if (item->product_id == NULL) {
		message_list_add(errors, "Certificate %zu has an invalid "
		    "\"product_id\": expected a string or a number.", cert);
		rc = -1;
	}
	if (!market_read_price(market_member(tree, "price"), &item->price_usd)) {
		message_list_add(errors, "Certificate %zu has an invalid \"price\": "
		    "expected a number of US dollars.", cert);
		rc = -1;
	}
	if (market_read_subject_names(market_member(tree, "subject_names"), cert,
	    item, errors) < 0)
		rc = -1;
	if (market_read_vhost_names(market_member(tree, "vhost_names"), cert,
	    item, errors) < 0)
		rc = -1;
	if (rc == 0)
		rc = market_check_vhosts(item, cert, errors);

done:
	yajl_tree_free(tree);
	return rc;
}

static int market_compare_names(const void *a, const void *b)
{
	const struct named_cert *left = a;
	const struct named_cert *right = b;

	int order = strcasecmp(left->name, right->name);

	if (order != 0)
		return order;
	return left->cert < right->cert ? -1 : left->cert > right->cert;
}

/* Report every name that appears more than once across the call. */
static int market_check_duplicates(const struct order_item *items,
    size_t count, struct message_list *errors)
{
	size_t total = 0;
	size_t n = 0;
	struct named_cert *names;
	int rc = 0;

	for (size_t i = 0; i < count; i++)
		total += items[i].subject_count;
	names = malloc((total + 1) * sizeof(*names));
	if (names == NULL)
		return -1;

	for (size_t i = 0; i < count; i++) {
		for (size_t k = 0; k < items[i].subject_count; k++) {
			names[n].name = items[i].subject_names[k];
			names[n].cert = i;
			n++;
		}
	}
	qsort(names, n, sizeof(*names), market_compare_names);

	for (size_t i = 1; i < n; i++) {
		if (strcasecmp(names[i - 1].name, names[i].name) != 0)
			continue;
		if (i >= 2 && strcasecmp(names[i - 2].name, names[i].name) == 0)
			continue;
		message_list_add(errors, "The name \"%s\" appears more than once in "
		    "this request; each name may be ordered once.", names[i - 1].name);
		rc = -1;
	}

	free(names);
	return rc;
}

/* Check the items against the store's catalogue, as the store does after
 * cPanel's own checks passed. */
static int market_check_catalogue(const char *provider,
    const struct order_item *items, size_t count, struct message_list *errors)
{
	int rc = 0;

	for (size_t i = 0; i < count; i++) {
		double price_usd = state_product_price(items[i].product_id);
		char price_text[32];

		if (price_usd < 0) {
			message_list_add(errors, "The provider \"%s\" has no product with "
			    "the ID \"%s\" (certificate %zu).", provider,
			    items[i].product_id, i);
			rc = -1;
			continue;
		}
		if (fabs(price_usd - items[i].price_usd) >= 0.005) {
			jsonout_format_price(price_usd, price_text, sizeof(price_text));
			message_list_add(errors, "The price does not match the catalogue: "
			    "the correct price for item #%zu is %s.", i + 1, price_text);
			rc = -1;
		}
	}
	return rc;
}

static int market_check_params(const struct market_params *params,
    struct message_list *errors)
{
	int rc = 0;

	if (params->provider == NULL || params->provider[0] == '\0') {
		message_list_add(errors, "Missing required parameter \"provider\".");
		rc = -1;
	}
	if (params->access_token == NULL || params->access_token[0] == '\0') {
		message_list_add(errors, "Missing required parameter \"access_token\".");
		rc = -1;
	}
	if (params->url_after_checkout != NULL &&
	    strchr(params->url_after_checkout, '?') != NULL) {
		message_list_add(errors, "The \"url_after_checkout\" URL must not "
		    "contain a query string.");
		rc = -1;
	}
	if (params->certificate_count == 0) {
		message_list_add(errors, "No certificate given: send at least one "
		    "\"certificate\" parameter.");
		rc = -1;
	}
	return rc;
}

int market_check_order(const struct market_params *params,
    struct order_item **items_out, struct message_list *errors)
{
	size_t count = params->certificate_count;
	struct order_item *items = NULL;
	int rc;

	*items_out = NULL;
	rc = market_check_params(params, errors);
	if (count == 0)
		return -1;

	items = calloc(count, sizeof(*items));
	if (items == NULL) {
		message_list_add(errors, "The mock ran out of memory.");
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		if (market_read_certificate(params->certificates[i],
		    params->certificate_lens[i], i, &items[i], errors) < 0)
			rc = -1;
	}
	if (rc == 0)
		rc = market_check_duplicates(items, count, errors);
	if (rc == 0)
		rc = market_check_catalogue(params->provider, items, count, errors);

	if (rc < 0) {
		market_free_items(items, count);
		return -1;
	}
	*items_out = items;
	return 0;
}
