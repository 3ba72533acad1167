/* Output formatting for certq: times, durations and tables for people, and JSON for scripts. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/util.h"

void out_duration(char *out, size_t len, long long ms)
{
    if (ms < 0)
        ms = 0;

    long long s = ms / 1000;
    if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm %llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
}

void out_time(char *out, size_t len, long long epoch_ms)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    char when[64], age[32];
    long long delta = now_ms() - epoch_ms;

    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm);
    if (delta >= 0) {
        out_duration(age, sizeof(age), delta);
        snprintf(out, len, "%s (%s ago)", when, age);
    } else {
        out_duration(age, sizeof(age), -delta);
        snprintf(out, len, "%s (in %s)", when, age);
    }
}

yajl_gen out_json_begin(bool pretty)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    if (pretty) {
        yajl_gen_config(gen, yajl_gen_beautify, 1);
        yajl_gen_config(gen, yajl_gen_indent_string, "  ");
    }
    return gen;
}

void out_json_finish(yajl_gen gen)
{
    char *text = json_gen_finish(gen);
    size_t len = strlen(text);

    /* yajl's beautifier already ends its output with a newline. */
    fputs(text, stdout);
    if (len == 0 || text[len - 1] != '\n')
        putchar('\n');
    free(text);
}

void out_json_node(yajl_val node, bool pretty)
{
    yajl_gen gen = out_json_begin(pretty);

    json_gen_node(gen, node);
    out_json_finish(gen);
}

static bool is_json_field(const char *field)
{
    return !strcmp(field, "certificates") || !strcmp(field, "messages") || !strcmp(field, "result");
}

static bool is_number_field(const char *field)
{
    size_t n = strlen(field);

    return !strcmp(field, "attempts") || (n > 3 && !strcmp(field + n - 3, "_ms"));
}

static void gen_field_value(yajl_gen gen, const char *field, const char *value)
{
    char err[128];
    char *end;

    if (is_json_field(field)) {
        yajl_val node = json_parse(value, strlen(value), err, sizeof(err));
        if (node) {
            json_gen_node(gen, node);
            yajl_tree_free(node);
            return;
        }
    }
    if (is_number_field(field) && *value != '\0') {
        long long v = strtoll(value, &end, 10);
        if (*end == '\0') {
            yajl_gen_integer(gen, v);
            return;
        }
    }
    json_gen_str(gen, value);
}

void out_job_hash_json(yajl_gen gen, const char *id, const redisReply *hash)
{
    yajl_gen_map_open(gen);
    json_gen_kv_str(gen, "id", id);
    for (size_t i = 0; i + 1 < hash->elements; i += 2) {
        const char *field = hash->element[i]->str;
        if (!strcmp(field, "payload") || !strcmp(field, "id"))
            continue;
        json_gen_str(gen, field);
        gen_field_value(gen, field, hash->element[i + 1]->str);
    }
    yajl_gen_map_close(gen);
}

static void print_line(const char *label, const char *value)
{
    if (value && *value)
        printf("  %-17s %s\n", label, value);
}

static void print_time(const char *label, const char *ms)
{
    char text[128];
    char *end;

    if (ms == NULL || *ms == '\0')
        return;
    long long v = strtoll(ms, &end, 10);
    if (*end != '\0') {
        print_line(label, ms);
        return;
    }
    out_time(text, sizeof(text), v);
    print_line(label, text);
}

/* Prints one line per certificate of a job: its key id and order item id. */
static void print_certificates(const char *json)
{
    char err[128];
    yajl_val list = json ? json_parse(json, strlen(json), err, sizeof(err)) : NULL;

    if (list == NULL || list->type != yajl_t_array || list->u.array.len == 0) {
        if (list)
            yajl_tree_free(list);
        return;
    }
    printf("  %-17s %zu\n", "certificates:", list->u.array.len);
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val c = list->u.array.values[i];
        yajl_val key_id = json_get(c, "key_id");
        yajl_val item = json_get(c, "order_item_id");
        char *key_text = key_id ? json_node_to_string(key_id) : xstrdup("-");
        char *item_text = item ? json_node_to_string(item) : xstrdup("-");
        printf("    key_id %s, order_item_id %s\n", key_text, item_text);
        free(key_text);
        free(item_text);
    }
    yajl_tree_free(list);
}

void out_job_hash_text(const char *id, const redisReply *hash)
{
    printf("job %s\n", id);
    print_line("state:", rconn_hash_get(hash, "state"));
    print_line("attempts:", rconn_hash_get(hash, "attempts"));
    print_line("server:", rconn_hash_get(hash, "server"));
    print_line("user:", rconn_hash_get(hash, "user"));
    print_line("batch_id:", rconn_hash_get(hash, "batch_id"));
    print_line("order_id:", rconn_hash_get(hash, "order_id"));
    print_line("checkout_url:", rconn_hash_get(hash, "checkout_url"));
    print_certificates(rconn_hash_get(hash, "certificates"));
    print_line("error_kind:", rconn_hash_get(hash, "error_kind"));
    print_line("error:", rconn_hash_get(hash, "error"));
    print_line("reconcile reason:", rconn_hash_get(hash, "reconcile_reason"));
    print_time("created:", rconn_hash_get(hash, "created_at_ms"));
    print_time("first attempt:", rconn_hash_get(hash, "first_attempt_ms"));
    print_time("updated:", rconn_hash_get(hash, "updated_at_ms"));
    print_time("retry at:", rconn_hash_get(hash, "retry_at_ms"));
    print_line("resolved by:", rconn_hash_get(hash, "resolved_by"));
    print_time("resolved at:", rconn_hash_get(hash, "resolved_at_ms"));
}

void table_init(struct table *t, const char *const *headers, const bool *right_aligned)
{
    size_t n = 0;

    while (headers[n])
        n++;
    t->rows = NULL;
    t->row_count = 0;
    t->column_count = n;
    t->right_aligned = right_aligned;
    table_add(t, headers);
}

void table_add(struct table *t, const char *const *cells)
{
    char **row = xcalloc(t->column_count, sizeof(char *));

    for (size_t i = 0; i < t->column_count; i++)
        row[i] = xstrdup(cells[i] ? cells[i] : "");
    t->rows = xrealloc(t->rows, (t->row_count + 1) * sizeof(char **));
    t->rows[t->row_count++] = row;
}

void table_print(struct table *t, int indent)
{
    size_t *widths = xcalloc(t->column_count, sizeof(size_t));

    for (size_t r = 0; r < t->row_count; r++)
        for (size_t c = 0; c < t->column_count; c++)
            if (strlen(t->rows[r][c]) > widths[c])
                widths[c] = strlen(t->rows[r][c]);

    for (size_t r = 0; r < t->row_count; r++) {
        printf("%*s", indent, "");
        for (size_t c = 0; c < t->column_count; c++) {
            bool right = t->right_aligned && t->right_aligned[c];
            bool last = c + 1 == t->column_count;
            if (right)
                printf("%*s", (int)widths[c], t->rows[r][c]);
            else if (last)
                fputs(t->rows[r][c], stdout);
            else
                printf("%-*s", (int)widths[c], t->rows[r][c]);
            if (!last)
                fputs("  ", stdout);
        }
        putchar('\n');
    }

    free(widths);
    table_free(t);
}

void table_free(struct table *t)
{
    for (size_t r = 0; r < t->row_count; r++) {
        for (size_t c = 0; c < t->column_count; c++)
            free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    t->rows = NULL;
    t->row_count = 0;
}
