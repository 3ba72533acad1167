/* Settings of the mock cPanel server, from the command line or a file. */
#include "tests/mock/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char config_usage[] =
    "usage: mock-cpanel (--cert FILE --key FILE | --plain) [options]\n"
    "  --listen ADDR:PORT    address to listen on (default 127.0.0.1:0;\n"
    "                        port 0 picks a free port)\n"
    "  --port-file FILE      write the bound port to FILE once listening\n"
    "  --cert FILE           PEM certificate chain for HTTPS\n"
    "  --key FILE            PEM private key for HTTPS\n"
    "  --plain               serve plain HTTP instead of HTTPS\n"
    "  --account USER:TOKEN  cPanel account and its API token (repeatable)\n"
    "  --whm USER:TOKEN      WHM API token that may act for every account\n"
    "                        (repeatable)\n"
    "  --product ID:PRICE    catalogue entry, price in USD (repeatable;\n"
    "                        default 143:6, 176:3, 666:3.50)\n"
    "  --threads N           serving threads sharing one state (default 1)\n"
    "  --max-recorded N      requests and orders kept for read-back\n"
    "                        (default 1000000; older ones are dropped)\n"
    "  --max-body-bytes N    largest request body accepted (default 1048576)\n"
    "  --idle-timeout S      seconds before an idle connection is closed\n"
    "                        (default 120)\n"
    "  --config FILE         read KEY=VALUE lines with the same names as\n"
    "                        these options, without the leading dashes\n";

static int config_apply(struct mock_config *config, const char *name,
    const char *value, int depth);

/* Split "A:B" into two fresh strings, at the first colon for USER:TOKEN
 * (tokens may contain colons) or at the last one for ID:PRICE. */
static int config_split_pair(const char *text, bool at_first, char **left,
    char **right)
{
	const char *colon = at_first ? strchr(text, ':') : strrchr(text, ':');

	if (colon == NULL || colon == text || colon[1] == '\0')
		return -1;
	*left = strndup(text, (size_t)(colon - text));
	*right = strdup(colon + 1);
	if (*left == NULL || *right == NULL) {
		free(*left);
		free(*right);
		*left = NULL;
		*right = NULL;
		return -1;
	}
	return 0;
}

static int config_add_credential(struct credential **list, size_t *count,
    const char *text, const char *option)
{
	struct credential entry;
	struct credential *grown;

	if (config_split_pair(text, true, &entry.user, &entry.token) < 0) {
		fprintf(stderr, "mock-cpanel: invalid --%s \"%s\": expected USER:TOKEN\n",
		    option, text);
		return -1;
	}

	grown = realloc(*list, (*count + 1) * sizeof(**list));
	if (grown == NULL) {
		free(entry.user);
		free(entry.token);
		return -1;
	}
	grown[(*count)++] = entry;
	*list = grown;
	return 0;
}

static int config_add_product(struct mock_config *config, const char *text)
{
	struct product entry;
	struct product *grown;
	char *price_text = NULL;
	char *end;

	if (config_split_pair(text, false, &entry.id, &price_text) < 0)
		goto invalid;

	errno = 0;
	entry.price_usd = strtod(price_text, &end);
	if (errno != 0 || *end != '\0' || entry.price_usd < 0)
		goto invalid;
	free(price_text);

	grown = realloc(config->products,
	    (config->product_count + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(entry.id);
		return -1;
	}
	grown[config->product_count++] = entry;
	config->products = grown;
	return 0;

invalid:
	fprintf(stderr, "mock-cpanel: invalid --product \"%s\": expected ID:PRICE "
	    "with a non-negative price in USD\n", text);
	if (price_text != NULL) {
		free(entry.id);
		free(price_text);
	}
	return -1;
}

static int config_parse_count(const char *text, const char *option,
    long min, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || end == text || *out < min || *out > max) {
		fprintf(stderr, "mock-cpanel: invalid --%s \"%s\": expected a whole "
		    "number from %ld to %ld\n", option, text, min, max);
		return -1;
	}
	return 0;
}

static int config_set_listen(struct mock_config *config, const char *text)
{
	const char *colon = strrchr(text, ':');
	const char *host_start = text;
	size_t host_len;
	long port;

	if (colon == NULL)
		goto invalid;
	host_len = (size_t)(colon - text);

	/* Accept [::1]:PORT for IPv6 addresses. */
	if (host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']') {
		host_start++;
		host_len -= 2;
	}
	if (host_len == 0)
		goto invalid;
	if (config_parse_count(colon + 1, "listen port", 0, 65535, &port) < 0)
		goto invalid;

	free(config->listen_host);
	config->listen_host = strndup(host_start, host_len);
	config->listen_port = (int)port;
	return config->listen_host != NULL ? 0 : -1;

invalid:
	fprintf(stderr, "mock-cpanel: invalid --listen \"%s\": expected ADDR:PORT\n",
	    text);
	return -1;
}

static int config_replace(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	return *field != NULL ? 0 : -1;
}

/* Read KEY=VALUE lines; '#' and ';' start comments, "[section]" lines are
 * ignored, so a small INI file works too. */
static int config_load_file(struct mock_config *config, const char *path,
    int depth)
{
	FILE *file = fopen(path, "r");
	char line[4096];
	int line_no = 0;

	if (file == NULL) {
		fprintf(stderr, "mock-cpanel: cannot open config file %s: %s\n",
		    path, strerror(errno));
		return -1;
	}

	while (fgets(line, sizeof(line), file) != NULL) {
		char *start = line;
		char *eq;
		char *end;

		line_no++;
		while (*start == ' ' || *start == '\t')
			start++;
		end = start + strcspn(start, "\r\n");
		*end = '\0';
		if (*start == '\0' || *start == '#' || *start == ';' || *start == '[')
			continue;

		eq = strchr(start, '=');
		if (eq == NULL) {
			fprintf(stderr, "mock-cpanel: %s:%d: expected KEY=VALUE\n",
			    path, line_no);
			goto fail;
		}
		*eq = '\0';
		for (char *t = eq - 1; t >= start && (*t == ' ' || *t == '\t'); t--)
			*t = '\0';
		char *value = eq + 1;
		while (*value == ' ' || *value == '\t')
			value++;

		if (config_apply(config, start, value, depth + 1) < 0) {
			fprintf(stderr, "mock-cpanel: %s:%d: invalid setting %s\n",
			    path, line_no, start);
			goto fail;
		}
	}

	fclose(file);
	return 0;

fail:
	fclose(file);
	return -1;
}

/* Apply one option by its long name. DEPTH stops config files that include
 * each other. */
static int config_apply(struct mock_config *config, const char *name,
    const char *value, int depth)
{
	long number;

	if (strcmp(name, "listen") == 0)
		return config_set_listen(config, value);
	if (strcmp(name, "port-file") == 0)
		return config_replace(&config->port_file, value);
	if (strcmp(name, "cert") == 0)
		return config_replace(&config->cert_file, value);
	if (strcmp(name, "key") == 0)
		return config_replace(&config->key_file, value);
	if (strcmp(name, "plain") == 0) {
		config->plain = strcmp(value, "0") != 0 && strcmp(value, "false") != 0;
		return 0;
	}
	if (strcmp(name, "account") == 0)
		return config_add_credential(&config->accounts,
		    &config->account_count, value, name);
	if (strcmp(name, "whm") == 0)
		return config_add_credential(&config->whm_users,
		    &config->whm_count, value, name);
	if (strcmp(name, "product") == 0)
		return config_add_product(config, value);
	if (strcmp(name, "threads") == 0) {
		if (config_parse_count(value, name, 1, 256, &number) < 0)
			return -1;
		config->threads = (int)number;
		return 0;
	}
	if (strcmp(name, "max-recorded") == 0) {
		if (config_parse_count(value, name, 1, 1L << 40, &number) < 0)
			return -1;
		config->max_recorded = (size_t)number;
		return 0;
	}
	if (strcmp(name, "max-body-bytes") == 0) {
		if (config_parse_count(value, name, 1024, 1L << 30, &number) < 0)
			return -1;
		config->max_body_bytes = (size_t)number;
		return 0;
	}
	if (strcmp(name, "idle-timeout") == 0) {
		if (config_parse_count(value, name, 1, 86400, &number) < 0)
			return -1;
		config->idle_timeout_s = (int)number;
		return 0;
	}
	if (strcmp(name, "config") == 0) {
		if (depth > 4) {
			fprintf(stderr, "mock-cpanel: config files nest too deeply\n");
			return -1;
		}
		return config_load_file(config, value, depth);
	}

	fprintf(stderr, "mock-cpanel: unknown setting \"%s\"\n", name);
	return -1;
}

static int config_add_default_products(struct mock_config *config)
{
	static const char *const defaults[] = { "143:6", "176:3", "666:3.50" };

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (config_add_product(config, defaults[i]) < 0)
			return -1;
	}
	return 0;
}

int config_parse_args(struct mock_config *config, int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 0 },
		{ "port-file", required_argument, NULL, 0 },
		{ "cert", required_argument, NULL, 0 },
		{ "key", required_argument, NULL, 0 },
		{ "plain", no_argument, NULL, 0 },
		{ "account", required_argument, NULL, 0 },
		{ "whm", required_argument, NULL, 0 },
		{ "product", required_argument, NULL, 0 },
		{ "threads", required_argument, NULL, 0 },
		{ "max-recorded", required_argument, NULL, 0 },
		{ "max-body-bytes", required_argument, NULL, 0 },
		{ "idle-timeout", required_argument, NULL, 0 },
		{ "config", required_argument, NULL, 0 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int index;
	int c;

	memset(config, 0, sizeof(*config));
	config->threads = 1;
	config->max_recorded = 1000000;
	config->max_body_bytes = 1 << 20;
	config->idle_timeout_s = 120;
	if (config_replace(&config->listen_host, "127.0.0.1") < 0)
		return -1;

	while ((c = getopt_long(argc, argv, "h", options, &index)) != -1) {
		if (c == 'h') {
			fputs(config_usage, stdout);
			return 1;
		}
		if (c != 0) {
			fputs(config_usage, stderr);
			return -1;
		}
		const char *value = optarg != NULL ? optarg : "1";
		if (config_apply(config, options[index].name, value, 0) < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "mock-cpanel: unexpected argument \"%s\"\n",
		    argv[optind]);
		return -1;
	}

	if (config->plain && (config->cert_file != NULL || config->key_file != NULL)) {
		fprintf(stderr, "mock-cpanel: --plain conflicts with --cert and --key; "
		    "give one or the other\n");
		return -1;
	}
	if (!config->plain && (config->cert_file == NULL || config->key_file == NULL)) {
		fprintf(stderr, "mock-cpanel: give --cert FILE and --key FILE to serve "
		    "HTTPS, or --plain to serve plain HTTP\n");
		return -1;
	}
	if (config->product_count == 0 && config_add_default_products(config) < 0)
		return -1;
	return 0;
}

static void config_free_credentials(struct credential *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(list[i].user);
		free(list[i].token);
	}
	free(list);
}

void config_free(struct mock_config *config)
{
	config_free_credentials(config->accounts, config->account_count);
	config_free_credentials(config->whm_users, config->whm_count);
	for (size_t i = 0; i < config->product_count; i++)
		free(config->products[i].id);
	free(config->products);
	free(config->listen_host);
	free(config->port_file);
	free(config->cert_file);
	free(config->key_file);
	memset(config, 0, sizeof(*config));
}
