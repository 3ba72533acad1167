/* certqd's INI configuration: a [certqd] section and one [server NAME] section per cPanel server. */
#ifndef CERTQD_CONFIG_H
#define CERTQD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum server_auth { AUTH_CPANEL, AUTH_WHM };

enum ambiguous_policy { AMBIGUOUS_RECONCILE, AMBIGUOUS_HOLD, AMBIGUOUS_RETRY };

struct server_config {
    char *name;
    char *url;              /* https://HOST:PORT, no path */
    enum server_auth auth;
    char *user;             /* the cPanel account, or the WHM user (root or a reseller) */
    char *token;            /* read from token_file or token_env; never logged */
    char *ca_file;
    bool tls_verify;
    int max_in_flight;
    int per_user_in_flight;
};

struct config {
    char *path;

    char *redis_url;
    char *redis_host;       /* NULL when redis_unix is set */
    int redis_port;
    int redis_db;
    char *redis_unix;
    char *redis_password;

    char *key_prefix;
    char *reply_prefix;
    int log_level;
    char *state_dir;
    char *metrics_listen;
    char *instance_name;

    int batch_max_certificates;
    int batch_wait_ms;
    int max_in_flight;
    int prefetch;
    int request_timeout_s;
    int connect_timeout_s;
    int retry_base_ms;
    int retry_max_ms;
    int max_attempts;
    int max_job_bytes;
    int max_response_bytes;
    int result_ttl_s;
    int shutdown_timeout_s;
    int heartbeat_ttl_s;
    int recovery_interval_s;
    int redis_reply_timeout_ms;
    int dead_max;
    int reconcile_delay_s;
    enum ambiguous_policy ambiguous_policy;

    struct server_config *servers;
    size_t server_count;
};

/*
 * Loads and validates FILE.  On failure returns NULL and writes a message that
 * names the file, the line or option, and what to change into err.
 */
struct config *config_load(const char *path, char *err, size_t err_len);
void config_free(struct config *cfg);

const struct server_config *config_find_server(const struct config *cfg, const char *name);
const char *config_auth_name(enum server_auth auth);
const char *config_policy_name(enum ambiguous_policy policy);

#endif
