/* Settings of the mock cPanel server, from the command line or a file. */
#ifndef MOCK_CONFIG_H
#define MOCK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* A user name and its API token. */
struct credential {
	char *user;
	char *token;
};

/* A catalogue entry of the Market provider. */
struct product {
	char *id;
	double price_usd;
};

struct mock_config {
	char *listen_host;
	int listen_port;
	char *port_file;
	char *cert_file;
	char *key_file;
	bool plain;
	struct credential *accounts;
	size_t account_count;
	struct credential *whm_users;
	size_t whm_count;
	struct product *products;
	size_t product_count;
	int threads;
	size_t max_recorded;
	size_t max_body_bytes;
	int idle_timeout_s;
};

/* Fill CONFIG from ARGV, reading any --config file in place. Prints the
 * reason and returns -1 on invalid input, 1 after printing --help, else 0. */
int config_parse_args(struct mock_config *config, int argc, char **argv);

void config_free(struct mock_config *config);

#endif
