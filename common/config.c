/* Loads certqd's INI configuration with libinih and checks every value before the daemon uses it. */
#include "common/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"

#define MAX_SECRET_BYTES 4096

struct server_draft {
    struct server_config s;
    char *token_file;
    char *token_env;
    bool seen_tls_verify;
};

struct loader {
    struct config *cfg;
    struct server_draft *drafts;
    size_t draft_count;
    char *redis_password_file;
    char *redis_password_env;
    char *err;
    size_t err_len;
    bool failed;
    int line;
};

struct int_option {
    const char *name;
    size_t offset;
    int min;
    int max;
};

#define INT_OPTION(field, lo, hi) { #field, offsetof(struct config, field), lo, hi }

static const struct int_option int_options[] = {
    INT_OPTION(batch_max_certificates, 1, 1000),
    INT_OPTION(batch_wait_ms, 0, 600000),
    INT_OPTION(max_in_flight, 1, 100000),
    INT_OPTION(prefetch, 1, 10000000),
    INT_OPTION(request_timeout_s, 1, 86400),
    INT_OPTION(connect_timeout_s, 1, 3600),
    INT_OPTION(retry_base_ms, 1, 86400000),
    INT_OPTION(retry_max_ms, 1, INT_MAX),
    INT_OPTION(max_attempts, 1, 1000),
    INT_OPTION(max_job_bytes, 256, 64 * 1024 * 1024),
    INT_OPTION(max_response_bytes, 1024, 256 * 1024 * 1024),
    INT_OPTION(result_ttl_s, 1, INT_MAX),
    INT_OPTION(shutdown_timeout_s, 0, 86400),
    INT_OPTION(heartbeat_ttl_s, 2, 3600),
    INT_OPTION(recovery_interval_s, 1, 86400),
    INT_OPTION(redis_reply_timeout_ms, 100, 3600000),
    INT_OPTION(dead_max, 1, INT_MAX),
    INT_OPTION(reconcile_delay_s, 0, 86400),
};

static void fail(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct loader *ld, const char *fmt, ...)
{
    va_list ap;
    char msg[512];

    if (ld->failed)
        return;
    ld->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->line > 0)
        snprintf(ld->err, ld->err_len, "%s:%d: %s", ld->cfg->path, ld->line, msg);
    else
        snprintf(ld->err, ld->err_len, "%s: %s", ld->cfg->path, msg);
}

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
}

static bool parse_int(const char *value, long min, long max, long *out)
{
    char *end;

    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *value, bool *out)
{
    if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") || !strcmp(value, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") || !strcmp(value, "0")) {
        *out = false;
        return true;
    }
    return false;
}

static void set_defaults(struct config *cfg)
{
    cfg->redis_url = xstrdup("redis://127.0.0.1:6379/0");
    cfg->key_prefix = xstrdup("certq");
    cfg->reply_prefix = xstrdup("certq:reply:");
    cfg->log_level = LOG_INFO;
    cfg->state_dir = xstrdup("/var/lib/certqd");
    cfg->metrics_listen = xstrdup("127.0.0.1:9187");
    cfg->batch_max_certificates = 20;
    cfg->batch_wait_ms = 200;
    cfg->max_in_flight = 1024;
    cfg->prefetch = 10000;
    cfg->request_timeout_s = 300;
    cfg->connect_timeout_s = 30;
    cfg->retry_base_ms = 2000;
    cfg->retry_max_ms = 3600000;
    cfg->max_attempts = 10;
    cfg->max_job_bytes = 64 * 1024;
    cfg->max_response_bytes = 1024 * 1024;
    cfg->result_ttl_s = 7 * 86400;
    cfg->shutdown_timeout_s = 30;
    cfg->heartbeat_ttl_s = 30;
    cfg->recovery_interval_s = 10;
    cfg->redis_reply_timeout_ms = 30000;
    cfg->dead_max = 100000;
    cfg->reconcile_delay_s = 60;
    cfg->ambiguous_policy = AMBIGUOUS_RECONCILE;
}

static void handle_main_option(struct loader *ld, const char *name, const char *value)
{
    struct config *cfg = ld->cfg;

    for (size_t i = 0; i < sizeof(int_options) / sizeof(int_options[0]); i++) {
        const struct int_option *opt = &int_options[i];
        long v;
        if (strcmp(name, opt->name) != 0)
            continue;
        if (!parse_int(value, opt->min, opt->max, &v))
            fail(ld, "invalid %s \"%s\": expected an integer from %d to %d", name, value, opt->min, opt->max);
        else {
            /* offsetof gives an int field's offset, so copying the bytes stores the int exactly. */
            int iv = (int)v;
            memcpy((char *)cfg + opt->offset, &iv, sizeof(iv));
        }
        return;
    }

    if (!strcmp(name, "redis_url"))
        set_string(&cfg->redis_url, value);
    else if (!strcmp(name, "redis_password_file"))
        set_string(&ld->redis_password_file, value);
    else if (!strcmp(name, "redis_password_env"))
        set_string(&ld->redis_password_env, value);
    else if (!strcmp(name, "key_prefix")) {
        if (!str_is_token(value, 64, ":._-"))
            fail(ld, "invalid key_prefix \"%s\": use 1-64 characters of A-Z a-z 0-9 : . _ -", value);
        set_string(&cfg->key_prefix, value);
    } else if (!strcmp(name, "reply_prefix")) {
        if (!str_is_token(value, 128, ":._-"))
            fail(ld, "invalid reply_prefix \"%s\": use 1-128 characters of A-Z a-z 0-9 : . _ -", value);
        set_string(&cfg->reply_prefix, value);
    } else if (!strcmp(name, "log_level")) {
        int level = log_level_parse(value);
        if (level < 0)
            fail(ld, "invalid log_level \"%s\": use error, warn, info or debug", value);
        cfg->log_level = level;
    } else if (!strcmp(name, "state_dir"))
        set_string(&cfg->state_dir, value);
    else if (!strcmp(name, "metrics_listen"))
        set_string(&cfg->metrics_listen, value);
    else if (!strcmp(name, "instance_name")) {
        if (!str_is_token(value, 64, "._-"))
            fail(ld, "invalid instance_name \"%s\": use 1-64 characters of A-Z a-z 0-9 . _ -", value);
        set_string(&cfg->instance_name, value);
    } else if (!strcmp(name, "ambiguous_policy")) {
        if (!strcmp(value, "reconcile"))
            cfg->ambiguous_policy = AMBIGUOUS_RECONCILE;
        else if (!strcmp(value, "hold"))
            cfg->ambiguous_policy = AMBIGUOUS_HOLD;
        else if (!strcmp(value, "retry"))
            cfg->ambiguous_policy = AMBIGUOUS_RETRY;
        else
            fail(ld, "invalid ambiguous_policy \"%s\": use reconcile, hold or retry", value);
    } else
        fail(ld, "unknown option \"%s\" in [certqd]; see certqd.conf(5) for the option names", name);
}

static struct server_draft *find_draft(struct loader *ld, const char *name)
{
    for (size_t i = 0; i < ld->draft_count; i++)
        if (!strcmp(ld->drafts[i].s.name, name))
            return &ld->drafts[i];

    ld->drafts = xrealloc(ld->drafts, (ld->draft_count + 1) * sizeof(*ld->drafts));
    struct server_draft *d = &ld->drafts[ld->draft_count++];
    memset(d, 0, sizeof(*d));
    d->s.name = xstrdup(name);
    d->s.auth = AUTH_CPANEL;
    d->s.tls_verify = true;
    d->s.max_in_flight = 8;
    d->s.per_user_in_flight = 1;
    return d;
}

static void handle_server_option(struct loader *ld, const char *server, const char *name, const char *value)
{
    struct server_draft *d = find_draft(ld, server);
    long v;

    if (!strcmp(name, "url"))
        set_string(&d->s.url, value);
    else if (!strcmp(name, "auth")) {
        if (!strcmp(value, "cpanel"))
            d->s.auth = AUTH_CPANEL;
        else if (!strcmp(value, "whm"))
            d->s.auth = AUTH_WHM;
        else
            fail(ld, "invalid auth \"%s\" for server %s: use cpanel or whm", value, server);
    } else if (!strcmp(name, "user")) {
        if (!str_is_token(value, 64, "._-"))
            fail(ld, "invalid user \"%s\" for server %s: use 1-64 characters of a-z 0-9 . _ -", value, server);
        set_string(&d->s.user, value);
    } else if (!strcmp(name, "token_file"))
        set_string(&d->token_file, value);
    else if (!strcmp(name, "token_env"))
        set_string(&d->token_env, value);
    else if (!strcmp(name, "ca_file"))
        set_string(&d->s.ca_file, value);
    else if (!strcmp(name, "tls_verify")) {
        if (!parse_bool(value, &d->s.tls_verify))
            fail(ld, "invalid tls_verify \"%s\" for server %s: use yes or no", value, server);
        d->seen_tls_verify = true;
    } else if (!strcmp(name, "max_in_flight")) {
        if (!parse_int(value, 1, 100000, &v))
            fail(ld, "invalid max_in_flight \"%s\" for server %s: expected an integer from 1 to 100000", value, server);
        else
            d->s.max_in_flight = (int)v;
    } else if (!strcmp(name, "per_user_in_flight")) {
        if (!parse_int(value, 1, 1000, &v))
            fail(ld, "invalid per_user_in_flight \"%s\" for server %s: expected an integer from 1 to 1000", value, server);
        else
            d->s.per_user_in_flight = (int)v;
    } else if (!strcmp(name, "token"))
        fail(ld, "server %s: a token is not written into the config; use token_file (mode 0600) or token_env", server);
    else
        fail(ld, "unknown option \"%s\" in [server %s]; see certqd.conf(5) for the option names", name, server);
}

/* libinih as Debian builds it passes no line number, so messages name the section and option instead. */
static int handle_line(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;

    if (ld->failed)
        return 1;
    if (!strcmp(section, "certqd"))
        handle_main_option(ld, name, value);
    else if (str_has_prefix(section, "server ")) {
        const char *server = section + 7;
        while (*server == ' ')
            server++;
        if (!str_is_token(server, 64, "._-"))
            fail(ld, "invalid server name \"%s\": use 1-64 characters of A-Z a-z 0-9 . _ -", server);
        else
            handle_server_option(ld, server, name, value);
    } else
        fail(ld, "unknown section [%s]: use [certqd] or [server NAME]", section);
    return 1;
}

/*
 * Reads a secret from a file that only its owner can read, so a token is never
 * exposed to other local users through a careless mode.
 */
static char *read_secret_file(struct loader *ld, const char *what, const char *path)
{
    struct stat st;
    size_t len;

    if (stat(path, &st) != 0) {
        fail(ld, "%s %s: %s; create it (mode 0600, owned by certqd's user) or fix the path", what, path,
             strerror(errno));
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        fail(ld, "%s %s is readable by group or others (mode %04o); run chmod 600 %s", what, path,
             (unsigned)(st.st_mode & 07777), path);
        return NULL;
    }
    char *text = file_read_all(path, MAX_SECRET_BYTES, &len);
    if (text == NULL) {
        fail(ld, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    return text;
}

static char *read_secret(struct loader *ld, const char *what, const char *file, const char *env)
{
    if (file && env) {
        fail(ld, "%s: set either the file or the environment variable, not both", what);
        return NULL;
    }
    if (file)
        return read_secret_file(ld, what, file);
    if (env) {
        const char *v = getenv(env);
        if (v == NULL || *v == '\0') {
            fail(ld, "%s: environment variable %s is not set", what, env);
            return NULL;
        }
        return xstrdup(v);
    }
    return NULL;
}

/* Accepts characters a token may carry into an HTTP header: printable ASCII without spaces. */
static bool token_is_clean(const char *t)
{
    if (*t == '\0')
        return false;
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return false;
    return true;
}

static bool parse_redis_url(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    const char *u = cfg->redis_url;

    if (str_has_prefix(u, "unix://")) {
        if (u[7] != '/') {
            fail(ld, "invalid redis_url \"%s\": a socket path must be absolute, as unix:///run/redis/redis.sock", u);
            return false;
        }
        cfg->redis_unix = xstrdup(u + 7);
        return true;
    }
    if (!str_has_prefix(u, "redis://")) {
        fail(ld, "invalid redis_url \"%s\": use redis://HOST:PORT/DB or unix:///PATH", u);
        return false;
    }

    const char *host = u + 8;
    const char *end = host + strcspn(host, ":/");
    if (end == host) {
        fail(ld, "invalid redis_url \"%s\": the host is missing", u);
        return false;
    }
    cfg->redis_host = xstrndup(host, (size_t)(end - host));
    cfg->redis_port = 6379;
    if (*end == ':') {
        char port[16];
        const char *pend = end + 1 + strcspn(end + 1, "/");
        long v;
        size_t n = (size_t)(pend - end - 1);
        if (n == 0 || n >= sizeof(port)) {
            fail(ld, "invalid port in redis_url \"%s\"", u);
            return false;
        }
        memcpy(port, end + 1, n);
        port[n] = '\0';
        if (!parse_int(port, 1, 65535, &v)) {
            fail(ld, "invalid port in redis_url \"%s\": expected 1 to 65535", u);
            return false;
        }
        cfg->redis_port = (int)v;
        end = pend;
    }
    if (*end == '/' && end[1] != '\0') {
        long v;
        if (!parse_int(end + 1, 0, 100000, &v)) {
            fail(ld, "invalid database number in redis_url \"%s\"", u);
            return false;
        }
        cfg->redis_db = (int)v;
    }
    return true;
}

static bool finish_server(struct loader *ld, struct server_draft *d)
{
    struct server_config *s = &d->s;
    char what[128];

    if (s->url == NULL) {
        fail(ld, "server %s: url is missing; set url = https://HOST:2083 (cpanel) or :2087 (whm)", s->name);
        return false;
    }
    if (!str_has_prefix(s->url, "https://") && !str_has_prefix(s->url, "http://")) {
        fail(ld, "server %s: invalid url \"%s\": use https://HOST:PORT", s->name, s->url);
        return false;
    }
    for (const char *p = s->url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '?' || *p == '#') {
            fail(ld, "server %s: invalid url \"%s\": no spaces, query or fragment", s->name, s->url);
            return false;
        }
    size_t n = strlen(s->url);
    if (n > 8 && s->url[n - 1] == '/')
        s->url[n - 1] = '\0';
    if (s->user == NULL) {
        fail(ld, "server %s: user is missing; set the cPanel account (auth = cpanel) or the WHM user (auth = whm)", s->name);
        return false;
    }
    if (d->token_file == NULL && d->token_env == NULL) {
        fail(ld, "server %s: set token_file (a file of mode 0600 holding the API token) or token_env", s->name);
        return false;
    }
    snprintf(what, sizeof(what), "server %s: %s", s->name, d->token_file ? "token_file" : "token_env");
    s->token = read_secret(ld, what, d->token_file, d->token_env);
    if (s->token == NULL)
        return false;
    if (s->token[0] == '\0') {
        fail(ld, "server %s: the API token in %s is empty; write the token into it", s->name,
             d->token_file ? d->token_file : d->token_env);
        return false;
    }
    if (!token_is_clean(s->token)) {
        fail(ld, "server %s: the API token in %s contains spaces or control characters; write only the token",
             s->name, d->token_file ? d->token_file : d->token_env);
        return false;
    }
    return true;
}

struct config *config_load(const char *path, char *err, size_t err_len)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct loader ld = { .cfg = cfg, .err = err, .err_len = err_len };

    cfg->path = xstrdup(path);
    set_defaults(cfg);
    err[0] = '\0';

    int rc = ini_parse(path, handle_line, &ld);
    if (rc < 0) {
        ld.line = 0;
        fail(&ld, "cannot open: %s; give the config file with -c FILE (config/certqd.conf is an example)",
             strerror(errno));
    } else if (rc > 0 && !ld.failed) {
        ld.line = rc;
        fail(&ld, "syntax error: expected [section] or name = value");
    }
    if (ld.failed)
        goto fail;

    ld.line = 0;
    if (!parse_redis_url(&ld))
        goto fail;
    cfg->redis_password = read_secret(&ld, "redis_password_file", ld.redis_password_file, ld.redis_password_env);
    if (ld.failed)
        goto fail;
    if (cfg->retry_max_ms < cfg->retry_base_ms) {
        fail(&ld, "retry_max_ms (%d) is below retry_base_ms (%d); raise retry_max_ms", cfg->retry_max_ms, cfg->retry_base_ms);
        goto fail;
    }
    if (ld.draft_count == 0) {
        fail(&ld, "no [server NAME] section: add one per cPanel server");
        goto fail;
    }

    cfg->servers = xcalloc(ld.draft_count, sizeof(*cfg->servers));
    for (size_t i = 0; i < ld.draft_count; i++) {
        struct server_draft *d = &ld.drafts[i];
        bool ok = !ld.failed && finish_server(&ld, d);
        cfg->servers[cfg->server_count++] = d->s;
        free(d->token_file);
        free(d->token_env);
        if (!ok)
            ld.failed = true;
    }
    free(ld.drafts);
    ld.drafts = NULL;
    ld.draft_count = 0;
    if (ld.failed)
        goto fail;

    free(ld.redis_password_file);
    free(ld.redis_password_env);
    return cfg;

fail:
    for (size_t i = 0; i < ld.draft_count; i++) {
        free(ld.drafts[i].s.name);
        free(ld.drafts[i].s.url);
        free(ld.drafts[i].s.user);
        free(ld.drafts[i].s.ca_file);
        free(ld.drafts[i].s.token);
        free(ld.drafts[i].token_file);
        free(ld.drafts[i].token_env);
    }
    free(ld.drafts);
    free(ld.redis_password_file);
    free(ld.redis_password_env);
    config_free(cfg);
    return NULL;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->server_count; i++) {
        struct server_config *s = &cfg->servers[i];
        free(s->name);
        free(s->url);
        free(s->user);
        if (s->token)
            explicit_bzero(s->token, strlen(s->token));
        free(s->token);
        free(s->ca_file);
    }
    free(cfg->servers);
    free(cfg->path);
    free(cfg->redis_url);
    free(cfg->redis_host);
    free(cfg->redis_unix);
    if (cfg->redis_password)
        explicit_bzero(cfg->redis_password, strlen(cfg->redis_password));
    free(cfg->redis_password);
    free(cfg->key_prefix);
    free(cfg->reply_prefix);
    free(cfg->state_dir);
    free(cfg->metrics_listen);
    free(cfg->instance_name);
    free(cfg);
}

const struct server_config *config_find_server(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->server_count; i++)
        if (!strcmp(cfg->servers[i].name, name))
            return &cfg->servers[i];
    return NULL;
}

const char *config_auth_name(enum server_auth auth)
{
    return auth == AUTH_WHM ? "whm" : "cpanel";
}

const char *config_policy_name(enum ambiguous_policy policy)
{
    switch (policy) {
    case AMBIGUOUS_HOLD:
        return "hold";
    case AMBIGUOUS_RETRY:
        return "retry";
    default:
        return "reconcile";
    }
}
