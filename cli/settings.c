/*
 * Reads the part of certqd's config that certq needs: where Redis is, the key
 * prefixes and limits, and the server names.  certq parses the file itself
 * rather than through config_load, because config_load also reads every
 * server's API token, which an operator's account usually cannot read.
 */
#include "cli/cli.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

#define SECRET_MAX_BYTES 4096

struct reader {
    struct settings *s;
    char *password_file;
    char *password_env;
    char error[512];
};

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = xstrdup(value);
}

static bool parse_int(const char *value, long min, long max, long *out)
{
    char *end;

    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static struct settings_server *server_for(struct settings *s, const char *name)
{
    for (size_t i = 0; i < s->server_count; i++)
        if (!strcmp(s->servers[i].name, name))
            return &s->servers[i];
    s->servers = xrealloc(s->servers, (s->server_count + 1) * sizeof(*s->servers));
    struct settings_server *server = &s->servers[s->server_count++];
    server->name = xstrdup(name);
    server->auth = xstrdup("cpanel");
    server->user = NULL;
    return server;
}

/* Keeps the options certq uses and ignores the rest, which certqd --check-config validates. */
static int handle_line(void *user, const char *section, const char *name, const char *value)
{
    struct reader *r = user;
    struct settings *s = r->s;
    long v;

    if (str_has_prefix(section, "server ")) {
        struct settings_server *server = server_for(s, section + 7);
        if (!strcmp(name, "auth"))
            set_string(&server->auth, value);
        else if (!strcmp(name, "user"))
            set_string(&server->user, value);
        return 1;
    }
    if (strcmp(section, "certqd") != 0)
        return 1;

    if (!strcmp(name, "redis_url"))
        set_string(&s->redis_url, value);
    else if (!strcmp(name, "redis_password_file"))
        set_string(&r->password_file, value);
    else if (!strcmp(name, "redis_password_env"))
        set_string(&r->password_env, value);
    else if (!strcmp(name, "key_prefix"))
        set_string(&s->key_prefix, value);
    else if (!strcmp(name, "reply_prefix"))
        set_string(&s->reply_prefix, value);
    else if (!strcmp(name, "max_job_bytes")) {
        if (!parse_int(value, 256, 64 * 1024 * 1024, &v)) {
            snprintf(r->error, sizeof(r->error), "invalid max_job_bytes \"%s\": expected an integer from 256 to 67108864", value);
            return 0;
        }
        s->max_job_bytes = (size_t)v;
    } else if (!strcmp(name, "result_ttl_s")) {
        if (!parse_int(value, 1, INT_MAX, &v)) {
            snprintf(r->error, sizeof(r->error), "invalid result_ttl_s \"%s\": expected an integer from 1 to 2147483647", value);
            return 0;
        }
        s->result_ttl_s = (int)v;
    }
    return 1;
}

static char *read_password_file(const char *config_path, const char *path)
{
    size_t len;
    char *text = file_read_all(path, SECRET_MAX_BYTES, &len);

    if (text == NULL) {
        cli_error("%s: cannot read redis_password_file %s: %s; check the path and that your user may read it", config_path,
                  path, strerror(errno));
        return NULL;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    return text;
}

static int read_password(struct settings *s, struct reader *r)
{
    if (r->password_file && r->password_env) {
        cli_error("%s: set either redis_password_file or redis_password_env, not both", s->config_path);
        return EXIT_CONFIG;
    }
    if (r->password_file) {
        s->redis_password = read_password_file(s->config_path, r->password_file);
        return s->redis_password ? 0 : EXIT_CONFIG;
    }
    if (r->password_env) {
        const char *v = getenv(r->password_env);
        if (v == NULL || *v == '\0') {
            cli_error("%s: redis_password_env names %s, which is not set in certq's environment; export it", s->config_path,
                      r->password_env);
            return EXIT_CONFIG;
        }
        s->redis_password = xstrdup(v);
    }
    return 0;
}

/* Splits redis://HOST[:PORT][/DB] or unix:///PATH into the settings; returns false on an invalid URL. */
static bool parse_redis_url(struct settings *s)
{
    const char *u = s->redis_url;
    long v;

    free(s->redis_host);
    free(s->redis_unix);
    s->redis_host = NULL;
    s->redis_unix = NULL;
    s->redis_port = 6379;
    s->redis_db = 0;

    if (str_has_prefix(u, "unix://")) {
        if (u[7] != '/')
            return false;
        s->redis_unix = xstrdup(u + 7);
        return true;
    }
    if (!str_has_prefix(u, "redis://"))
        return false;

    const char *host = u + 8;
    const char *end = host + strcspn(host, ":/");
    if (end == host)
        return false;
    s->redis_host = xstrndup(host, (size_t)(end - host));
    if (*end == ':') {
        const char *port_end = end + 1 + strcspn(end + 1, "/");
        char *port = xstrndup(end + 1, (size_t)(port_end - end - 1));
        bool ok = parse_int(port, 1, 65535, &v);
        free(port);
        if (!ok)
            return false;
        s->redis_port = (int)v;
        end = port_end;
    }
    if (*end == '/' && end[1] != '\0') {
        if (!parse_int(end + 1, 0, 100000, &v))
            return false;
        s->redis_db = (int)v;
    }
    return true;
}

static void set_defaults(struct settings *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->config_path = xstrdup(path);
    s->redis_url = xstrdup("redis://127.0.0.1:6379/0");
    s->key_prefix = xstrdup("certq");
    s->reply_prefix = xstrdup("certq:reply:");
    s->max_job_bytes = 64 * 1024;
    s->result_ttl_s = 7 * 86400;
}

int settings_load(struct settings *s, const char *path, bool required)
{
    struct reader r = { .s = s };
    struct stat st;
    int status = EXIT_CONFIG;

    set_defaults(s, path);
    if (!required && stat(path, &st) != 0 && errno == ENOENT)
        return parse_redis_url(s) ? 0 : EXIT_CONFIG;

    int rc = ini_parse(path, handle_line, &r);
    if (rc < 0) {
        cli_error("cannot read config %s: %s; give certqd's config with -c FILE, or --redis URL", path, strerror(errno));
        goto done;
    }
    if (rc > 0 && r.error[0] != '\0') {
        cli_error("config %s: %s", path, r.error);
        goto done;
    }
    if (rc > 0) {
        cli_error("config %s: line %d: syntax error: expected [section] or name = value", path, rc);
        goto done;
    }
    s->config_read = true;

    if (!str_is_token(s->key_prefix, 64, ":._-")) {
        cli_error("config %s: invalid key_prefix \"%s\": use 1-64 characters of A-Z a-z 0-9 : . _ -", path, s->key_prefix);
        goto done;
    }
    if (!str_is_token(s->reply_prefix, 128, ":._-")) {
        cli_error("config %s: invalid reply_prefix \"%s\": use 1-128 characters of A-Z a-z 0-9 : . _ -", path,
                  s->reply_prefix);
        goto done;
    }
    if (!parse_redis_url(s)) {
        cli_error("config %s: invalid redis_url \"%s\": use redis://HOST:PORT/DB or unix:///PATH", path, s->redis_url);
        goto done;
    }
    status = read_password(s, &r);

done:
    free(r.password_file);
    free(r.password_env);
    return status;
}

int settings_override(struct settings *s, const char *redis_url, const char *key_prefix)
{
    if (key_prefix) {
        if (!str_is_token(key_prefix, 64, ":._-")) {
            cli_error("invalid --prefix \"%s\": use 1-64 characters of A-Z a-z 0-9 : . _ -", key_prefix);
            return EXIT_USAGE;
        }
        set_string(&s->key_prefix, key_prefix);
    }
    if (redis_url) {
        set_string(&s->redis_url, redis_url);
        if (!parse_redis_url(s)) {
            cli_error("invalid --redis \"%s\": use redis://HOST:PORT/DB or unix:///PATH", redis_url);
            return EXIT_USAGE;
        }
    }
    return 0;
}

const struct settings_server *settings_find_server(const struct settings *s, const char *name)
{
    for (size_t i = 0; i < s->server_count; i++)
        if (!strcmp(s->servers[i].name, name))
            return &s->servers[i];
    return NULL;
}

void settings_free(struct settings *s)
{
    free(s->config_path);
    free(s->redis_url);
    free(s->redis_host);
    free(s->redis_unix);
    if (s->redis_password)
        explicit_bzero(s->redis_password, strlen(s->redis_password));
    free(s->redis_password);
    free(s->key_prefix);
    free(s->reply_prefix);
    for (size_t i = 0; i < s->server_count; i++) {
        free(s->servers[i].name);
        free(s->servers[i].auth);
        free(s->servers[i].user);
    }
    free(s->servers);
}
