/* Unit tests of loading and checking certqd's INI configuration (common/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/util.h"

#define TOKEN "SECRETTOKEN-4c4d9e"
#define TOKEN_ENV "CERTQD_UNIT_TEST_TOKEN"

/* Paths of the token files, made once for the whole group. */
static char token_path[64];
static char open_token_path[64];
static char spaced_token_path[64];

/* Writes text to a new file under /tmp with the given mode and stores its path in path (64 bytes). */
static void write_temp(char *path, const char *text, mode_t mode)
{
    strcpy(path, "/tmp/certqd-unit-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static int make_token_files(void **state)
{
    write_temp(token_path, TOKEN "\n", 0600);
    write_temp(open_token_path, TOKEN "\n", 0644);
    write_temp(spaced_token_path, TOKEN " x\n", 0600);
    return 0;
}

static int remove_token_files(void **state)
{
    unlink(token_path);
    unlink(open_token_path);
    unlink(spaced_token_path);
    return 0;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_no_token(const char *text)
{
    if (strstr(text, "SECRETTOKEN") != NULL || strstr(text, "4c4d9e") != NULL)
        fail_msg("\"%s\" contains the token", text);
}

/* Loads text as a config file and returns the config, or NULL with the message in err. */
static struct config *load_text(const char *text, char *err, size_t err_len)
{
    char path[64];

    write_temp(path, text, 0600);
    struct config *cfg = config_load(path, err, err_len);
    unlink(path);
    return cfg;
}

/* Loads [certqd] lines followed by a valid [server cp1] section, which must succeed. */
static struct config *load_valid(const char *main_lines)
{
    struct buf text;
    char err[1024];

    buf_init(&text);
    buf_printf(&text, "[certqd]\n%s\n[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n",
               main_lines, token_path);
    struct config *cfg = load_text(text.data, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("rejected:\n%s\n%s", text.data, err);
    buf_free(&text);
    return cfg;
}

/* Checks that text, with its one %s replaced by the 0600 token file, fails with each part in the message. */
static void assert_rejected(const char *text_with_path, const char *part1, const char *part2)
{
    const char *slot = strstr(text_with_path, "%s");
    struct buf text;
    char err[1024];

    assert_non_null(slot);
    buf_init(&text);
    buf_append(&text, text_with_path, (size_t)(slot - text_with_path));
    buf_puts(&text, token_path);
    buf_puts(&text, slot + 2);
    struct config *cfg = load_text(text.data, err, sizeof(err));
    if (cfg != NULL) {
        config_free(cfg);
        fail_msg("accepted:\n%s", text.data);
    }
    assert_contains(err, part1);
    if (part2)
        assert_contains(err, part2);
    assert_no_token(err);
    buf_free(&text);
}

/* Checks that one [certqd] line is rejected, with a valid server section after it. */
static void assert_main_rejected(const char *line, const char *part1, const char *part2)
{
    struct buf text;

    buf_init(&text);
    buf_printf(&text, "[certqd]\n%s\n[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %%s\n",
               line);
    assert_rejected(text.data, part1, part2);
    buf_free(&text);
}

static void test_config_minimal_defaults(void **state)
{
    struct config *cfg = load_valid("");

    assert_int_equal(cfg->batch_max_certificates, 20);
    assert_int_equal(cfg->batch_wait_ms, 200);
    assert_int_equal(cfg->max_in_flight, 1024);
    assert_int_equal(cfg->prefetch, 10000);
    assert_int_equal(cfg->request_timeout_s, 300);
    assert_int_equal(cfg->retry_base_ms, 2000);
    assert_int_equal(cfg->retry_max_ms, 3600000);
    assert_int_equal(cfg->max_attempts, 10);
    assert_int_equal(cfg->max_job_bytes, 65536);
    assert_int_equal(cfg->result_ttl_s, 604800);
    assert_string_equal(cfg->key_prefix, "certq");
    assert_string_equal(cfg->reply_prefix, "certq:reply:");
    assert_string_equal(cfg->redis_host, "127.0.0.1");
    assert_int_equal(cfg->redis_port, 6379);
    assert_int_equal(cfg->redis_db, 0);
    assert_null(cfg->redis_unix);
    assert_null(cfg->redis_password);
    assert_int_equal(cfg->ambiguous_policy, AMBIGUOUS_RECONCILE);
    config_free(cfg);
}

static void test_config_server_fields(void **state)
{
    struct config *cfg = load_valid("");

    assert_int_equal(cfg->server_count, 1);
    const struct server_config *s = config_find_server(cfg, "cp1");
    assert_non_null(s);
    assert_string_equal(s->name, "cp1");
    assert_string_equal(s->url, "https://cp1.example.com:2083");
    assert_string_equal(s->user, "bob");
    assert_string_equal(s->token, TOKEN);
    assert_int_equal(s->auth, AUTH_CPANEL);
    assert_true(s->tls_verify);
    assert_int_equal(s->max_in_flight, 8);
    assert_int_equal(s->per_user_in_flight, 1);
    assert_null(config_find_server(cfg, "cp2"));
    config_free(cfg);
}

static void test_config_main_options(void **state)
{
    struct config *cfg = load_valid("batch_max_certificates = 1000\nbatch_wait_ms = 0\nkey_prefix = jobs:q\n"
                                    "reply_prefix = jobs:r:\nambiguous_policy = hold\ninstance_name = node-1");

    assert_int_equal(cfg->batch_max_certificates, 1000);
    assert_int_equal(cfg->batch_wait_ms, 0);
    assert_string_equal(cfg->key_prefix, "jobs:q");
    assert_string_equal(cfg->reply_prefix, "jobs:r:");
    assert_int_equal(cfg->ambiguous_policy, AMBIGUOUS_HOLD);
    assert_string_equal(cfg->instance_name, "node-1");
    config_free(cfg);
}

static void test_config_redis_url_tcp(void **state)
{
    struct config *cfg = load_valid("redis_url = redis://h:1234/2");

    assert_string_equal(cfg->redis_host, "h");
    assert_int_equal(cfg->redis_port, 1234);
    assert_int_equal(cfg->redis_db, 2);
    assert_null(cfg->redis_unix);
    config_free(cfg);

    cfg = load_valid("redis_url = redis://redis.example.com");
    assert_string_equal(cfg->redis_host, "redis.example.com");
    assert_int_equal(cfg->redis_port, 6379);
    assert_int_equal(cfg->redis_db, 0);
    config_free(cfg);
}

static void test_config_redis_url_unix(void **state)
{
    struct config *cfg = load_valid("redis_url = unix:///run/redis/redis.sock");

    assert_string_equal(cfg->redis_unix, "/run/redis/redis.sock");
    assert_null(cfg->redis_host);
    config_free(cfg);
}

static void test_config_redis_url_invalid(void **state)
{
    static const char *const urls[] = {
        "http://h:6379", "redis://", "redis://:1234", "redis://h:0", "redis://h:65536", "redis://h:12a",
        "redis://h:", "redis://h:1234/x", "redis://h/-1", "unix://run/redis.sock",
    };
    char line[128], want[128];

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        snprintf(line, sizeof(line), "redis_url = %s", urls[i]);
        snprintf(want, sizeof(want), "redis_url \"%s\"", urls[i]);
        assert_main_rejected(line, want, NULL);
    }
}

static void test_config_unknown_option(void **state)
{
    assert_main_rejected("frobnicate = 1", "unknown option \"frobnicate\" in [certqd]", NULL);
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\ncolour = red\n",
                    "unknown option \"colour\" in [server cp1]", NULL);
}

static void test_config_unknown_section(void **state)
{
    assert_rejected("[redis]\nurl = redis://h\n[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\n"
                    "token_file = %s\n",
                    "unknown section [redis]", NULL);
}

static void test_config_token_file_mode(void **state)
{
    char text[512], err[1024];

    snprintf(text, sizeof(text), "[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n",
             open_token_path);
    assert_null(load_text(text, err, sizeof(err)));
    assert_contains(err, "chmod 600");
    assert_contains(err, open_token_path);
    assert_contains(err, "mode 0644");
    assert_no_token(err);
}

static void test_config_token_spaces(void **state)
{
    char text[512], err[1024];

    snprintf(text, sizeof(text), "[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n",
             spaced_token_path);
    assert_null(load_text(text, err, sizeof(err)));
    assert_contains(err, "contains spaces or control characters");
    assert_no_token(err);
}

static void test_config_token_file_missing(void **state)
{
    char err[1024];

    assert_null(load_text("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\n"
                          "token_file = /nonexistent/certqd-token\n", err, sizeof(err)));
    assert_contains(err, "/nonexistent/certqd-token");
    assert_contains(err, "No such file or directory");
}

static void test_config_token_env(void **state)
{
    static const char text[] =
        "[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_env = " TOKEN_ENV "\n";
    char err[1024];

    setenv(TOKEN_ENV, TOKEN "-env", 1);
    struct config *cfg = load_text(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->servers[0].token, TOKEN "-env");
    config_free(cfg);

    unsetenv(TOKEN_ENV);
    assert_null(load_text(text, err, sizeof(err)));
    assert_contains(err, "environment variable " TOKEN_ENV " is not set");
}

static void test_config_token_file_and_env(void **state)
{
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n"
                    "token_env = " TOKEN_ENV "\n",
                    "not both", NULL);
}

static void test_config_token_literal(void **state)
{
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n"
                    "token = " TOKEN "\n",
                    "server cp1: a token is not written into the config", "token_file");
}

static void test_config_server_missing_fields(void **state)
{
    assert_rejected("[server cp1]\nuser = bob\ntoken_file = %s\n", "server cp1: url is missing", NULL);
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\ntoken_file = %s\n",
                    "server cp1: user is missing", NULL);
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\n#%s\n",
                    "server cp1: set token_file", NULL);
    assert_rejected("[certqd]\nmax_attempts = 3\n#%s\n", "no [server NAME] section", NULL);
}

static void test_config_server_invalid_url(void **state)
{
    assert_rejected("[server cp1]\nurl = ftp://cp1.example.com\nuser = bob\ntoken_file = %s\n",
                    "server cp1: invalid url \"ftp://cp1.example.com\"", NULL);
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083/?x=1\nuser = bob\ntoken_file = %s\n",
                    "server cp1: invalid url", "no spaces, query or fragment");
}

static void test_config_integer_ranges(void **state)
{
    static const char *const lines[][2] = {
        { "batch_max_certificates = 0", "invalid batch_max_certificates \"0\": expected an integer from 1 to 1000" },
        { "batch_max_certificates = 1001", "invalid batch_max_certificates \"1001\"" },
        { "batch_wait_ms = -1", "invalid batch_wait_ms \"-1\"" },
        { "max_in_flight = 100001", "invalid max_in_flight \"100001\"" },
        { "prefetch = 10x", "invalid prefetch \"10x\"" },
        { "request_timeout_s = ", "invalid request_timeout_s \"\"" },
        { "max_attempts = 99999999999999999999", "invalid max_attempts" },
        { "max_job_bytes = 255", "invalid max_job_bytes \"255\": expected an integer from 256 to 67108864" },
        { "result_ttl_s = 0", "invalid result_ttl_s \"0\"" },
    };

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_main_rejected(lines[i][0], lines[i][1], NULL);
}

static void test_config_retry_order(void **state)
{
    assert_main_rejected("retry_base_ms = 5000\nretry_max_ms = 4000",
                         "retry_max_ms (4000) is below retry_base_ms (5000)", NULL);
}

static void test_config_server_whm(void **state)
{
    char text[512], err[1024];

    snprintf(text, sizeof(text),
             "[server whm1]\nurl = https://whm.example.com:2087/\nauth = whm\nuser = root\ntoken_file = %s\n"
             "tls_verify = no\nmax_in_flight = 32\nper_user_in_flight = 2\n",
             token_path);
    struct config *cfg = load_text(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->servers[0].auth, AUTH_WHM);
    assert_string_equal(cfg->servers[0].url, "https://whm.example.com:2087");
    assert_string_equal(cfg->servers[0].user, "root");
    assert_false(cfg->servers[0].tls_verify);
    assert_int_equal(cfg->servers[0].max_in_flight, 32);
    assert_int_equal(cfg->servers[0].per_user_in_flight, 2);
    assert_string_equal(config_auth_name(cfg->servers[0].auth), "whm");
    config_free(cfg);
}

static void test_config_server_invalid_values(void **state)
{
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\nauth = root\n",
                    "invalid auth \"root\" for server cp1", NULL);
    assert_rejected("[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n"
                    "tls_verify = maybe\n",
                    "invalid tls_verify \"maybe\" for server cp1", NULL);
    assert_rejected("[server cp 1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n",
                    "invalid server name \"cp 1\"", NULL);
}

static void test_config_two_servers(void **state)
{
    char text[512], err[1024];

    snprintf(text, sizeof(text),
             "[server cp1]\nurl = https://cp1.example.com:2083\nuser = bob\ntoken_file = %s\n"
             "[server cp2]\nurl = https://cp2.example.com:2083\nuser = alice\ntoken_file = %s\n",
             token_path, token_path);
    struct config *cfg = load_text(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->server_count, 2);
    assert_string_equal(config_find_server(cfg, "cp2")->user, "alice");
    assert_string_equal(config_find_server(cfg, "cp1")->user, "bob");
    config_free(cfg);
}

static void test_config_file_missing(void **state)
{
    char err[1024];

    assert_null(config_load("/nonexistent/certqd.conf", err, sizeof(err)));
    assert_contains(err, "/nonexistent/certqd.conf");
    assert_contains(err, "cannot open");
}

static void test_config_syntax_error(void **state)
{
    assert_rejected("[certqd]\nthis line has no equals sign\n#%s\n", "syntax error", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_minimal_defaults),
        cmocka_unit_test(test_config_server_fields),
        cmocka_unit_test(test_config_main_options),
        cmocka_unit_test(test_config_redis_url_tcp),
        cmocka_unit_test(test_config_redis_url_unix),
        cmocka_unit_test(test_config_redis_url_invalid),
        cmocka_unit_test(test_config_unknown_option),
        cmocka_unit_test(test_config_unknown_section),
        cmocka_unit_test(test_config_token_file_mode),
        cmocka_unit_test(test_config_token_spaces),
        cmocka_unit_test(test_config_token_file_missing),
        cmocka_unit_test(test_config_token_env),
        cmocka_unit_test(test_config_token_file_and_env),
        cmocka_unit_test(test_config_token_literal),
        cmocka_unit_test(test_config_server_missing_fields),
        cmocka_unit_test(test_config_server_invalid_url),
        cmocka_unit_test(test_config_integer_ranges),
        cmocka_unit_test(test_config_retry_order),
        cmocka_unit_test(test_config_server_whm),
        cmocka_unit_test(test_config_server_invalid_values),
        cmocka_unit_test(test_config_two_servers),
        cmocka_unit_test(test_config_file_missing),
        cmocka_unit_test(test_config_syntax_error),
    };

    return cmocka_run_group_tests_name("config", tests, make_token_files, remove_token_files);
}
