/* Unit tests of job parsing, validation, redaction and peeking (common/job.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/job.h"
#include "common/util.h"

#define EXAMPLE_TOKEN "725431a1-d5bc-11e5-a28b-8b0e09a93f05"
#define SECRET_NUMBER "987654321987654321"
#define SECRET_TOKEN "SECRET-TOKEN-7f3a9c"

static const struct job_limits limits = { .max_bytes = 65536, .reply_prefix = "certq:reply:" };

static const char example_job[] =
    "{\"id\":\"renew-0001\",\"server\":\"cp1\",\"user\":\"bob\",\"provider\":\"cPStore\","
    "\"access_token\":\"" EXAMPLE_TOKEN "\","
    "\"url_after_checkout\":\"https://panel.example.com/ssl/done\","
    "\"certificates\":[{\"product_id\":143,\"price\":6,"
    "\"subject_names\":[[\"dNSName\",\"example.com\"],[\"dNSName\",\"example.org\"]],"
    "\"vhost_names\":[\"example.com\"]}],"
    "\"batch\":true,\"reply_to\":\"certq:reply:panel1\"}";

/* The example job's top-level fields in order, each value as JSON with ' for ". */
static const char *const example_fields[][2] = {
    { "id", "'renew-0001'" },
    { "server", "'cp1'" },
    { "user", "'bob'" },
    { "provider", "'cPStore'" },
    { "access_token", "'" EXAMPLE_TOKEN "'" },
    { "url_after_checkout", "'https://panel.example.com/ssl/done'" },
    { "certificates", "[{'product_id':143,'price':6,'subject_names':[['dNSName','example.com'],"
                      "['dNSName','example.org']],'vhost_names':['example.com']}]" },
    { "batch", "true" },
    { "reply_to", "'certq:reply:panel1'" },
};

#define EXAMPLE_FIELD_COUNT (sizeof(example_fields) / sizeof(example_fields[0]))

/* Appends s to b with each ' replaced by ", so that test JSON reads without escapes. */
static void append_dequoted(struct buf *b, const char *s)
{
    for (; *s; s++)
        buf_append(b, *s == '\'' ? "\"" : s, 1);
}

/*
 * Builds the example job with field set to value (JSON, ' for ") or, when value
 * is NULL, without field.  A field the example lacks is added at the end.
 */
static char *example_with(const char *field, const char *value)
{
    struct buf b;
    bool found = false;

    buf_init(&b);
    buf_puts(&b, "{");
    for (size_t i = 0; i < EXAMPLE_FIELD_COUNT; i++) {
        const char *v = example_fields[i][1];
        if (!strcmp(example_fields[i][0], field)) {
            found = true;
            v = value;
        }
        if (v == NULL)
            continue;
        if (b.len > 1)
            buf_puts(&b, ",");
        buf_printf(&b, "\"%s\":", example_fields[i][0]);
        append_dequoted(&b, v);
    }
    if (!found && value) {
        buf_printf(&b, ",\"%s\":", field);
        append_dequoted(&b, value);
    }
    buf_puts(&b, "}");
    return buf_steal(&b);
}

/* Builds the example job with one certificate (JSON, ' for ") in place of its own. */
static char *example_with_cert(const char *cert)
{
    struct buf b;

    buf_init(&b);
    buf_puts(&b, "[");
    buf_puts(&b, cert);
    buf_puts(&b, "]");
    char *job = example_with("certificates", b.data);
    buf_free(&b);
    return job;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_not_contains(const char *text, const char *part)
{
    if (strstr(text, part) != NULL)
        fail_msg("\"%s\" contains \"%s\"", text, part);
}

static struct job *parse_text(const char *payload, char *err, size_t err_len)
{
    return job_parse(payload, strlen(payload), &limits, err, err_len);
}

/* Parses payload, which must be valid, and frees it. */
static struct job *parse_valid(char *payload)
{
    char err[512];
    struct job *job = parse_text(payload, err, sizeof(err));

    if (job == NULL)
        fail_msg("rejected %s: %s", payload, err);
    free(payload);
    return job;
}

/* Checks that payload is rejected with a message that contains each part, and frees payload. */
static void assert_rejected(char *payload, const char *part1, const char *part2)
{
    char err[512];
    struct job *job = parse_text(payload, err, sizeof(err));

    if (job != NULL) {
        job_free(job);
        fail_msg("accepted %s", payload);
    }
    assert_contains(err, part1);
    if (part2)
        assert_contains(err, part2);
    free(payload);
}

static void assert_cert_rejected(const char *cert, const char *part1, const char *part2)
{
    assert_rejected(example_with_cert(cert), part1, part2);
}

static void test_job_example_fields(void **state)
{
    char err[512];
    struct job *job = parse_text(example_job, err, sizeof(err));

    assert_non_null(job);
    assert_string_equal(err, "");
    assert_string_equal(job->id, "renew-0001");
    assert_false(job->id_generated);
    assert_string_equal(job->server, "cp1");
    assert_string_equal(job->user, "bob");
    assert_string_equal(job->provider, "cPStore");
    assert_string_equal(job->access_token, EXAMPLE_TOKEN);
    assert_string_equal(job->url_after_checkout, "https://panel.example.com/ssl/done");
    assert_string_equal(job->reply_to, "certq:reply:panel1");
    assert_true(job->batch);
    job_free(job);
}

static void test_job_example_certificate(void **state)
{
    char err[512];
    struct job *job = parse_text(example_job, err, sizeof(err));

    assert_non_null(job);
    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].product_id, "143");
    assert_int_equal(job->certs[0].name_count, 2);
    assert_string_equal(job->certs[0].names[0], "example.com");
    assert_string_equal(job->certs[0].names[1], "example.org");
    assert_true(job->certs[0].has_vhosts);
    assert_string_equal(job->certs[0].json,
                        "{\"product_id\":143,\"price\":6,\"subject_names\":[[\"dNSName\",\"example.com\"],"
                        "[\"dNSName\",\"example.org\"]],\"vhost_names\":[\"example.com\"]}");
    job_free(job);
}

static void test_job_optional_fields_absent(void **state)
{
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
        "\"certificates\":[{\"product_id\":\"176\",\"price\":\"3\","
        "\"subject_names\":[[\"dNSName\",\"test.example.com\"]]}]}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_null(job->user);
    assert_null(job->url_after_checkout);
    assert_null(job->reply_to);
    assert_true(job->batch);
    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].product_id, "176");
    assert_false(job->certs[0].has_vhosts);
    job_free(job);
}

static void test_job_certificate_object(void **state)
{
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
        "\"certificate\":{\"product_id\":\"176\",\"price\":3,"
        "\"subject_names\":[[\"dNSName\",\"Test.Example.com\"]]}}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].product_id, "176");
    assert_int_equal(job->certs[0].name_count, 1);
    assert_string_equal(job->certs[0].names[0], "test.example.com");
    assert_string_equal(job->certs[0].json,
                        "{\"product_id\":\"176\",\"price\":3,\"subject_names\":[[\"dNSName\",\"Test.Example.com\"]]}");
    job_free(job);
}

static void test_job_certificate_string(void **state)
{
    /* The form cPanel's own examples use: the certificate as a JSON-encoded string. */
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
        "\"certificate\":\"{\\\"product_id\\\":143,\\\"subject_names\\\":[[\\\"dNSName\\\",\\\"example.com\\\"]],"
        "\\\"vhost_names\\\":[\\\"example.com\\\"],\\\"price\\\":6}\"}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].product_id, "143");
    assert_int_equal(job->certs[0].name_count, 1);
    assert_string_equal(job->certs[0].names[0], "example.com");
    assert_true(job->certs[0].has_vhosts);
    assert_string_equal(job->certs[0].json,
                        "{\"product_id\":143,\"subject_names\":[[\"dNSName\",\"example.com\"]],"
                        "\"vhost_names\":[\"example.com\"],\"price\":6}");
    job_free(job);
}

static void test_job_certificate_array(void **state)
{
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\",\"certificate\":["
        "{\"product_id\":1,\"price\":1,\"subject_names\":[[\"dNSName\",\"a.example.com\"]]},"
        "\"{\\\"product_id\\\":2,\\\"price\\\":2,\\\"subject_names\\\":[[\\\"dNSName\\\",\\\"b.example.com\\\"]]}\"]}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_int_equal(job->cert_count, 2);
    assert_string_equal(job->certs[0].product_id, "1");
    assert_string_equal(job->certs[0].names[0], "a.example.com");
    assert_string_equal(job->certs[1].product_id, "2");
    assert_string_equal(job->certs[1].names[0], "b.example.com");
    job_free(job);
}

static void test_job_certificate_numbered(void **state)
{
    /* The keys are out of order, and the job must list them by N, with 10 after 2. */
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
        "\"certificate-10\":{\"product_id\":10,\"price\":1,\"subject_names\":[[\"dNSName\",\"ten.example.com\"]]},"
        "\"certificate-1\":{\"product_id\":1,\"price\":1,\"subject_names\":[[\"dNSName\",\"one.example.com\"]]},"
        "\"certificate-2\":{\"product_id\":2,\"price\":1,\"subject_names\":[[\"dNSName\",\"two.example.com\"]]},"
        "\"certificate-0\":{\"product_id\":0,\"price\":1,\"subject_names\":[[\"dNSName\",\"zero.example.com\"]]}}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_int_equal(job->cert_count, 4);
    assert_string_equal(job->certs[0].product_id, "0");
    assert_string_equal(job->certs[1].product_id, "1");
    assert_string_equal(job->certs[2].product_id, "2");
    assert_string_equal(job->certs[3].product_id, "10");
    assert_string_equal(job->certs[3].names[0], "ten.example.com");
    job_free(job);
}

static void test_job_certificate_name_invalid(void **state)
{
    /* "certificate-01" would shadow "certificate-1", so it and other odd names are rejected, not dropped. */
    static const char *const names[] = { "certificate-01", "certificate-x", "certificate-1000", "certificate-" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct buf b;
        buf_init(&b);
        buf_printf(&b,
                   "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
                   "\"certificate-1\":{\"product_id\":1,\"price\":1,\"subject_names\":[[\"dNSName\",\"a.example.com\"]]},"
                   "\"%s\":{\"product_id\":2,\"price\":1,\"subject_names\":[[\"dNSName\",\"b.example.com\"]]}}",
                   names[i]);
        assert_rejected(buf_steal(&b), names[i], "certificate-N");
    }
}

static void test_job_certificate_forms_combined(void **state)
{
    /* The job lists certificates first, then certificate, then certificate-N. */
    static const char payload[] =
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"t\","
        "\"certificate-0\":{\"product_id\":3,\"price\":1,\"subject_names\":[[\"dNSName\",\"c.example.com\"]]},"
        "\"certificate\":{\"product_id\":2,\"price\":1,\"subject_names\":[[\"dNSName\",\"b.example.com\"]]},"
        "\"certificates\":[{\"product_id\":1,\"price\":1,\"subject_names\":[[\"dNSName\",\"a.example.com\"]]}]}";
    struct job *job = parse_valid(xstrdup(payload));

    assert_int_equal(job->cert_count, 3);
    assert_string_equal(job->certs[0].product_id, "1");
    assert_string_equal(job->certs[1].product_id, "2");
    assert_string_equal(job->certs[2].product_id, "3");
    job_free(job);
}

static void test_job_generated_id(void **state)
{
    struct job *first = parse_valid(example_with("id", NULL));
    struct job *second = parse_valid(example_with("id", NULL));

    assert_true(first->id_generated);
    assert_int_equal(strlen(first->id), 36);
    assert_true(job_id_valid(first->id));
    assert_int_equal(first->id[8], '-');
    assert_int_equal(first->id[13], '-');
    assert_int_equal(first->id[14], '4');
    assert_int_equal(first->id[18], '-');
    assert_int_equal(first->id[23], '-');
    assert_string_not_equal(first->id, second->id);
    job_free(first);
    job_free(second);
}

static void test_job_null_id_generated(void **state)
{
    struct job *job = parse_valid(example_with("id", "null"));

    assert_true(job->id_generated);
    assert_int_equal(strlen(job->id), 36);
    job_free(job);
}

static void test_job_batch_values(void **state)
{
    struct job *absent = parse_valid(example_with("batch", NULL));
    struct job *null = parse_valid(example_with("batch", "null"));
    struct job *off = parse_valid(example_with("batch", "false"));

    assert_true(absent->batch);
    assert_true(null->batch);
    assert_false(off->batch);
    job_free(absent);
    job_free(null);
    job_free(off);
    assert_rejected(example_with("batch", "'yes'"), "batch: must be true or false, not a string", NULL);
}

static void test_job_unknown_fields_kept(void **state)
{
    struct job *job = parse_valid(example_with_cert(
        "{'product_id':'176','price':3.50,'validity_period':[1,'year'],'x-extra':{'a':[1.0e2,null,false]},"
        "'subject_names':[{'type':'dNSName','name':'example.com','dcv_method':'dns'}]}"));

    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].json,
                        "{\"product_id\":\"176\",\"price\":3.50,\"validity_period\":[1,\"year\"],"
                        "\"x-extra\":{\"a\":[1.0e2,null,false]},"
                        "\"subject_names\":[{\"type\":\"dNSName\",\"name\":\"example.com\",\"dcv_method\":\"dns\"}]}");
    job_free(job);
}

static void test_job_subject_accepted(void **state)
{
    struct job *job = parse_valid(example_with_cert(
        "{'product_id':1,'price':'12.5','subject_names':[['dNSName','example.com']],"
        "'subject':[['countryName','US'],['organizationName','Example Inc.'],['emailAddress','a@example.com']]}"));

    assert_int_equal(job->cert_count, 1);
    assert_string_equal(job->certs[0].names[0], "example.com");
    job_free(job);
}

static void test_job_payload_too_big(void **state)
{
    size_t len = limits.max_bytes + 1;
    char *payload = xmalloc(len + 1);
    char err[512];

    memset(payload, ' ', len);
    memcpy(payload, example_job, strlen(example_job));
    payload[len] = '\0';
    assert_null(job_parse(payload, len, &limits, err, sizeof(err)));
    assert_string_equal(err, "payload is 65537 bytes, over max_job_bytes (65536); split the job");
    free(payload);
}

static void test_job_payload_at_limit(void **state)
{
    size_t len = limits.max_bytes;
    char *payload = xmalloc(len + 1);
    char err[512];

    memset(payload, ' ', len);
    memcpy(payload, example_job, strlen(example_job));
    payload[len] = '\0';
    struct job *job = job_parse(payload, len, &limits, err, sizeof(err));
    assert_non_null(job);
    job_free(job);
    free(payload);
}

static void test_job_invalid_json(void **state)
{
    assert_rejected(xstrdup("{\"server\":\"cp1\","), "payload is not valid JSON", NULL);
    assert_rejected(xstrdup(""), "payload is not valid JSON", NULL);
    assert_rejected(xstrdup("{} {}"), "payload is not valid JSON", NULL);
}

static void test_job_not_object(void **state)
{
    assert_rejected(xstrdup("[1,2]"), "payload must be a JSON object, not an array", NULL);
    assert_rejected(xstrdup("\"job\""), "payload must be a JSON object, not a string", NULL);
}

static void test_job_duplicate_key(void **state)
{
    assert_rejected(example_with("server", "'cp1','server':'cp2'"), "field \"server\" appears twice", NULL);
}

static void test_job_server_invalid(void **state)
{
    assert_rejected(example_with("server", NULL), "server: missing", NULL);
    assert_rejected(example_with("server", "'cp 1'"), "server: invalid value \"cp 1\"", NULL);
    assert_rejected(example_with("server", "'cp1/x'"), "server: invalid value \"cp1/x\"", NULL);
    assert_rejected(example_with("server", "7"), "server: must be a string, not a number", NULL);
}

static void test_job_user_invalid(void **state)
{
    assert_rejected(example_with("user", "'Bob'"), "user: invalid value \"Bob\"", "lowercase");
    assert_rejected(example_with("user", "'bob smith'"), "user: invalid value \"bob smith\"", NULL);
}

static void test_job_provider_missing(void **state)
{
    assert_rejected(example_with("provider", NULL), "provider: missing", NULL);
    assert_rejected(example_with("provider", "'c P'"), "provider: invalid value \"c P\"", NULL);
}

static void test_job_access_token_missing(void **state)
{
    assert_rejected(example_with("access_token", NULL), "access_token: missing", NULL);
    assert_rejected(example_with("access_token", "''"), "access_token: invalid value", NULL);
    assert_rejected(example_with("access_token", "42"), "access_token: must be a string, not a number", NULL);
}

static void test_job_url_with_query(void **state)
{
    assert_rejected(example_with("url_after_checkout", "'https://panel.example.com/done?x=1'"),
                    "url_after_checkout: \"https://panel.example.com/done?x=1\" has a query string", NULL);
    assert_rejected(example_with("url_after_checkout", "'ftp://panel.example.com/'"),
                    "url_after_checkout: invalid URL \"ftp://panel.example.com/\"", NULL);
    assert_rejected(example_with("url_after_checkout", "'https://a.example.com/x#frag'"),
                    "url_after_checkout: invalid URL \"https://a.example.com/x#frag\"", NULL);
    assert_rejected(example_with("url_after_checkout", "'https:///path'"),
                    "url_after_checkout: invalid URL \"https:///path\"", NULL);
}

static void test_job_reply_to_invalid(void **state)
{
    static const char *const cases[][2] = {
        { "'other:reply:panel1'", "\"other:reply:panel1\"" },
        { "'certq:reply:a\\rb'", "\"certq:reply:a\\x0db\"" },
        { "'certq:reply:a\\nb'", "\"certq:reply:a\\x0ab\"" },
        { "'certq:reply:a b'", "\"certq:reply:a b\"" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_rejected(example_with("reply_to", cases[i][0]), "reply_to:", cases[i][1]);

    /* A NUL would cut the key short, to "certq:reply:a", so the JSON itself is rejected. */
    assert_rejected(example_with("reply_to", "'certq:reply:a\\u0000b'"), "NUL character", NULL);
}

static void test_job_id_invalid(void **state)
{
    char long_id[JOB_ID_MAX + 4];

    /* 129 characters, as JSON with ' for ". */
    long_id[0] = '\'';
    memset(long_id + 1, 'a', JOB_ID_MAX + 1);
    long_id[JOB_ID_MAX + 2] = '\'';
    long_id[JOB_ID_MAX + 3] = '\0';
    assert_rejected(example_with("id", long_id), "id: invalid value \"aaaa", "1-128 characters");
    assert_rejected(example_with("id", "'a/b'"), "id: invalid value \"a/b\"", NULL);
    assert_rejected(example_with("id", "'a b'"), "id: invalid value \"a b\"", NULL);
    assert_rejected(example_with("id", "''"), "id: invalid value \"\"", NULL);
    assert_rejected(example_with("id", "'ab\\u0000cd'"), "NUL character", NULL);
    assert_rejected(example_with("id", "12"), "id: must be a string, not a number", NULL);
}

static void test_job_no_certificates(void **state)
{
    assert_rejected(example_with("certificates", NULL), "certificates: missing", NULL);
    assert_rejected(example_with("certificates", "[]"), "certificates: missing", NULL);
    assert_rejected(example_with("certificates", "{}"), "certificates: must be an array", NULL);
}

static void test_job_empty_certificate(void **state)
{
    assert_cert_rejected("{}", "certificates[0]: empty certificate", NULL);
    assert_cert_rejected("'{}'", "certificates[0]: empty certificate", NULL);
    assert_cert_rejected("7", "certificates[0]: must be a certificate object, not a number", NULL);
    assert_cert_rejected("'{'", "certificates[0]: invalid JSON in the certificate string", NULL);
}

static void test_job_certificate_fields_missing(void **state)
{
    assert_cert_rejected("{'price':6,'subject_names':[['dNSName','example.com']]}",
                         "certificates[0].product_id: missing", NULL);
    assert_cert_rejected("{'product_id':143,'subject_names':[['dNSName','example.com']]}",
                         "certificates[0].price: missing", NULL);
    assert_cert_rejected("{'product_id':143,'price':6}", "certificates[0].subject_names: missing", NULL);
}

static void test_job_certificate_fields_invalid(void **state)
{
    assert_cert_rejected("{'product_id':-1,'price':6,'subject_names':[['dNSName','example.com']]}",
                         "certificates[0].product_id: must be a string or a non-negative integer", NULL);
    assert_cert_rejected("{'product_id':'a b','price':6,'subject_names':[['dNSName','example.com']]}",
                         "certificates[0].product_id: invalid value \"a b\"", NULL);
    assert_cert_rejected("{'product_id':1,'price':'six','subject_names':[['dNSName','example.com']]}",
                         "certificates[0].price: invalid value \"six\"", NULL);
    assert_cert_rejected("{'product_id':1,'price':-6,'subject_names':[['dNSName','example.com']]}",
                         "certificates[0].price: must be a non-negative number", NULL);
    assert_cert_rejected("{'product_id':1,'price':'-6','subject_names':[['dNSName','example.com']]}",
                         "certificates[0].price: invalid value \"-6\"", NULL);
}

static void test_job_subject_names_empty(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[]}",
                         "certificates[0].subject_names: must be a non-empty array", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':'example.com'}",
                         "certificates[0].subject_names: must be a non-empty array", NULL);
}

static void test_job_name_type_not_dnsname(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['iPAddress','192.0.2.1']]}",
                         "certificates[0].subject_names[0]: name type \"iPAddress\" is not supported", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[{'type':'dnsname','name':'example.com'}]}",
                         "certificates[0].subject_names[0]: name type \"dnsname\" is not supported", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName']]}",
                         "certificates[0].subject_names[0]: must be [\"dNSName\", NAME]", NULL);
}

static void test_job_dns_name_invalid(void **state)
{
    static const char label64[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    char cert[256], want[256];
    const char *names[] = { "a b.com", "-a.com", "localhost", label64 };

    assert_int_equal(strlen(label64), 64);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *name = names[i];
        char full[128];
        if (name == label64) {
            snprintf(full, sizeof(full), "%s.com", label64);
            name = full;
        }
        snprintf(cert, sizeof(cert),
                 "{'product_id':143,'price':6,'subject_names':[['dNSName','example.com'],['dNSName','%s']]}", name);
        snprintf(want, sizeof(want), "certificates[0].subject_names[1]: invalid DNS name \"%s", name);
        assert_cert_rejected(cert, want, NULL);
    }
}

static void test_job_duplicate_names(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com'],"
                         "['dNSName','EXAMPLE.com']]}",
                         "certificates[0].subject_names[1]: duplicate name \"EXAMPLE.com\"", NULL);
}

static void test_job_wildcard_over_http(void **state)
{
    struct job *job;

    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':"
                         "[{'type':'dNSName','name':'*.example.com','dcv_method':'http'}]}",
                         "certificates[0].subject_names[0]: wildcard \"*.example.com\" cannot be validated over http",
                         NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':"
                         "[{'type':'dNSName','name':'example.com','dcv_method':'email'}]}",
                         "certificates[0].subject_names[0].dcv_method: invalid value \"email\"", NULL);

    job = parse_valid(example_with_cert("{'product_id':143,'price':6,'subject_names':"
                                        "[{'type':'dNSName','name':'*.Example.com','dcv_method':'dns'}]}"));
    assert_string_equal(job->certs[0].names[0], "*.example.com");
    job_free(job);
}

static void test_job_vhost_names_invalid(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],'vhost_names':[1]}",
                         "certificates[0].vhost_names[0]: must be a string, not a number", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'vhost_names':['example.com',null]}",
                         "certificates[0].vhost_names[1]: must be a string, not null", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'vhost_names':'example.com'}",
                         "certificates[0].vhost_names: must be an array", NULL);
}

static void test_job_subject_common_name(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'subject':[['countryName','US'],['commonName','example.com']]}",
                         "certificates[0].subject[1]: commonName is not allowed", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'subject':[['title','Dr']]}",
                         "certificates[0].subject[0]: unknown field \"title\"", NULL);
}

static void test_job_country_name_invalid(void **state)
{
    static const char *const values[] = { "us", "USA", "U", "U1" };
    char cert[256], want[128];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(cert, sizeof(cert),
                 "{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                 "'subject':[['countryName','%s']]}", values[i]);
        snprintf(want, sizeof(want), "certificates[0].subject[0]: invalid countryName \"%s\"", values[i]);
        assert_cert_rejected(cert, want, NULL);
    }
}

static void test_job_subject_control_chars(void **state)
{
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'subject':[['organizationName','Example\\nInc']]}",
                         "certificates[0].subject[0]: invalid organizationName value \"Example\\x0aInc\"", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'subject':[['localityName',' Houston']]}",
                         "certificates[0].subject[0]: invalid localityName value \" Houston\"", NULL);
    assert_cert_rejected("{'product_id':143,'price':6,'subject_names':[['dNSName','example.com']],"
                         "'subject':[['localityName','Hou\\u0000ston']]}",
                         "NUL character", NULL);
}

static void test_job_error_hides_token(void **state)
{
    /* Each payload is invalid and carries the token; no message may quote it. */
    static const char *const payloads[] = {
        "{\"access_token\":\"" SECRET_TOKEN "\",\"server\":",
        "{\"access_token\":\"" SECRET_TOKEN "\" \"server\":\"cp1\"}",
        "{\"access_token\":\"" SECRET_TOKEN "\x01\"}",
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"" SECRET_TOKEN " x\","
        "\"certificates\":[{}]}",
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"" SECRET_TOKEN "\\u0001\","
        "\"certificates\":[{}]}",
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"" SECRET_TOKEN "\","
        "\"access_token\":\"" SECRET_TOKEN "\",\"certificates\":[{}]}",
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":\"" SECRET_TOKEN "\","
        "\"certificates\":[{}]}",
        "{\"server\":\"cp1\",\"provider\":\"cPStore\",\"access_token\":[\"" SECRET_TOKEN "\"],"
        "\"certificates\":[{}]}",
        "[\"" SECRET_TOKEN "\"",
    };
    char err[512];

    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        struct job *job = parse_text(payloads[i], err, sizeof(err));
        assert_null(job);
        assert_true(err[0] != '\0');
        assert_not_contains(err, "SECRET");
        assert_not_contains(err, "7f3a9c");
    }
}

static void test_job_error_hides_token_too_long(void **state)
{
    struct buf token;
    char err[512];

    buf_init(&token);
    buf_puts(&token, "'");
    for (int i = 0; i < 40; i++)
        buf_puts(&token, SECRET_TOKEN);
    buf_puts(&token, "'");
    char *payload = example_with("access_token", token.data);

    assert_null(parse_text(payload, err, sizeof(err)));
    assert_contains(err, "access_token: invalid value");
    assert_not_contains(err, "SECRET");
    free(payload);
    buf_free(&token);
}

static void test_job_redact_valid(void **state)
{
    char *out = job_redact_payload(example_job, strlen(example_job));

    assert_not_contains(out, EXAMPLE_TOKEN);
    assert_contains(out, "\"access_token\":\"[redacted]\",\"url_after_checkout\"");
    assert_contains(out, "\"id\":\"renew-0001\"");
    assert_contains(out, "\"reply_to\":\"certq:reply:panel1\"}");
    free(out);
}

static void test_job_redact_escaped_quotes(void **state)
{
    static const char payload[] = "{\"access_token\" : \"SECRET\\\"TOKEN\\\\\\\"7f3a9c\\\\\",\"server\":\"cp1\"}";
    char err[128];
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, "{\"access_token\" : \"[redacted]\",\"server\":\"cp1\"}");
    free(out);

    /* The input really is JSON with that token as one string. */
    struct job *job = parse_text(payload, err, sizeof(err));
    assert_null(job);
    assert_contains(err, "provider: missing");
}

static void test_job_redact_invalid_json(void **state)
{
    static const char payload[] = "{\"server\":\"cp1\", \"access_token\": \"" SECRET_TOKEN "\", \"certificates\": [";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, "{\"server\":\"cp1\", \"access_token\": \"[redacted]\", \"certificates\": [");
    free(out);
}

static void test_job_redact_unterminated(void **state)
{
    static const char payload[] = "{\"access_token\":\"" SECRET_TOKEN;
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, "{\"access_token\":\"[redacted]\"");
    free(out);
}

static void test_job_redact_bare_value(void **state)
{
    static const char payload[] = "{\"access_token\":" SECRET_TOKEN ",\"server\":\"cp1\"}";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, "{\"access_token\":\"[redacted]\",\"server\":\"cp1\"}");
    free(out);
}

static void test_job_redact_every_occurrence(void **state)
{
    static const char payload[] =
        "{\"access_token\":\"" SECRET_TOKEN "\",\"x\":{\"access_token\":\"" SECRET_TOKEN "\"}}";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, "{\"access_token\":\"[redacted]\",\"x\":{\"access_token\":\"[redacted]\"}}");
    free(out);
}

static void test_job_redact_escaped_key(void **state)
{
    /* JSON allows the key to be spelled with escapes; it still names the access token. */
    static const char payload[] = "{\"access\\u005ftoken\":\"" SECRET_TOKEN "\",\"server\":\"cp1\"}";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_not_contains(out, SECRET_TOKEN);
    assert_string_equal(out, "{\"access\\u005ftoken\":\"[redacted]\",\"server\":\"cp1\"}");
    free(out);
}

static void test_job_redact_escaped_key_invalid_json(void **state)
{
    /* A payload cut off after the token is not JSON; the escaped key must still be found. */
    static const char payload[] = "{\"\\u0061ccess\\u005Ftoken\" : \"" SECRET_TOKEN "\", \"certificates\": [";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_not_contains(out, SECRET_TOKEN);
    assert_string_equal(out, "{\"\\u0061ccess\\u005Ftoken\" : \"[redacted]\", \"certificates\": [");
    free(out);
}

static void test_job_redact_escaped_nested_and_value(void **state)
{
    static const char payload[] =
        "{\"note\":\"access\\u005ftoken\",\"x\":{\"access\\u005ftoken\":" SECRET_NUMBER "},\"server\":\"cp1\"}";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_not_contains(out, SECRET_NUMBER);
    assert_string_equal(out,
                        "{\"note\":\"access\\u005ftoken\",\"x\":{\"access\\u005ftoken\":\"[redacted]\"},\"server\":\"cp1\"}");
    free(out);
}

static void test_job_redact_no_token(void **state)
{
    static const char payload[] = "{\"server\":\"cp1\",\"note\":\"access_token\"}";
    char *out = job_redact_payload(payload, strlen(payload));

    assert_string_equal(out, payload);
    free(out);
}

static void test_job_payload_with_id(void **state)
{
    char *out = job_payload_with_id(example_job, strlen(example_job), "gen-1");

    assert_non_null(out);
    assert_true(str_has_prefix(out, "{\"id\":\"gen-1\",\"server\":\"cp1\""));
    assert_not_contains(out, "renew-0001");
    assert_contains(out, "\"access_token\":\"" EXAMPLE_TOKEN "\"");
    assert_contains(out, "\"reply_to\":\"certq:reply:panel1\"}");
    free(out);

    static const char no_id[] = "{\"server\":\"cp1\",\"certificates\":[{\"price\":3.50}]}";
    out = job_payload_with_id(no_id, strlen(no_id), "gen-2");
    assert_string_equal(out, "{\"id\":\"gen-2\",\"server\":\"cp1\",\"certificates\":[{\"price\":3.50}]}");
    free(out);

    assert_null(job_payload_with_id("{", 1, "gen-3"));
    assert_null(job_payload_with_id("[]", 2, "gen-4"));
}

static void test_job_peek_valid(void **state)
{
    char *id, *reply_to;

    job_peek(example_job, strlen(example_job), "certq:reply:", &id, &reply_to);
    assert_string_equal(id, "renew-0001");
    assert_string_equal(reply_to, "certq:reply:panel1");
    free(id);
    free(reply_to);
}

static void test_job_peek_invalid(void **state)
{
    static const char bad_fields[] = "{\"id\":\"a b\",\"reply_to\":\"other:x\"}";
    static const char bad_chars[] = "{\"id\":\"ok-1\",\"reply_to\":\"certq:reply:a\\nb\"}";
    char *id, *reply_to;

    job_peek(bad_fields, strlen(bad_fields), "certq:reply:", &id, &reply_to);
    assert_null(id);
    assert_null(reply_to);

    job_peek(bad_chars, strlen(bad_chars), "certq:reply:", &id, &reply_to);
    assert_string_equal(id, "ok-1");
    assert_null(reply_to);
    free(id);

    job_peek("{\"id\":\"x\"", 9, "certq:reply:", &id, &reply_to);
    assert_null(id);
    assert_null(reply_to);

    job_peek("[1]", 3, "certq:reply:", &id, &reply_to);
    assert_null(id);
    assert_null(reply_to);
}

static void test_job_id_valid_cases(void **state)
{
    char id[JOB_ID_MAX + 2];

    memset(id, 'a', JOB_ID_MAX);
    id[JOB_ID_MAX] = '\0';
    assert_true(job_id_valid(id));
    id[JOB_ID_MAX] = 'a';
    id[JOB_ID_MAX + 1] = '\0';
    assert_false(job_id_valid(id));

    assert_true(job_id_valid("renew-0001"));
    assert_true(job_id_valid("A.b_c:d-9"));
    assert_false(job_id_valid(""));
    assert_false(job_id_valid("a b"));
    assert_false(job_id_valid("a/b"));
    assert_false(job_id_valid("a\nb"));
    assert_false(job_id_valid("caf\xc3\xa9"));
}

static void test_job_dns_name_cases(void **state)
{
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        { "example.com", true },
        { "a.b.c.example.com", true },
        { "*.example.com", true },
        { "xn--bcher-kva.example", true },
        { "a-b.example.com", true },
        { "123.example.com", true },
        { "EXAMPLE.COM", true },
        { "", false },
        { "localhost", false },
        { "-a.com", false },
        { "a-.com", false },
        { "a..com", false },
        { ".a.com", false },
        { "a.com.", false },
        { "*.com", false },
        { "*.", false },
        { "*", false },
        { "a*.example.com", false },
        { "*.*.example.com", false },
        { "www.*.example.com", false },
        { "a_b.example.com", false },
        { "a b.com", false },
        { "ex\xc3\xa4mple.com", false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (job_dns_name_valid(cases[i].name) != cases[i].valid)
            fail_msg("job_dns_name_valid(\"%s\") should be %s", cases[i].name, cases[i].valid ? "true" : "false");
}

static void test_job_dns_name_lengths(void **state)
{
    char name[300];

    /* A label of 63 characters is the maximum. */
    memset(name, 'a', 63);
    strcpy(name + 63, ".com");
    assert_true(job_dns_name_valid(name));
    memset(name, 'a', 64);
    strcpy(name + 64, ".com");
    assert_false(job_dns_name_valid(name));

    /* A name of 253 characters is the maximum: 63 + 1 + 63 + 1 + 63 + 1 + 61. */
    memset(name, 'a', 253);
    name[63] = name[127] = name[191] = '.';
    name[253] = '\0';
    assert_true(job_dns_name_valid(name));
    name[253] = 'a';
    name[254] = '\0';
    assert_false(job_dns_name_valid(name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_example_fields),
        cmocka_unit_test(test_job_example_certificate),
        cmocka_unit_test(test_job_optional_fields_absent),
        cmocka_unit_test(test_job_certificate_object),
        cmocka_unit_test(test_job_certificate_string),
        cmocka_unit_test(test_job_certificate_array),
        cmocka_unit_test(test_job_certificate_numbered),
        cmocka_unit_test(test_job_certificate_name_invalid),
        cmocka_unit_test(test_job_certificate_forms_combined),
        cmocka_unit_test(test_job_generated_id),
        cmocka_unit_test(test_job_null_id_generated),
        cmocka_unit_test(test_job_batch_values),
        cmocka_unit_test(test_job_unknown_fields_kept),
        cmocka_unit_test(test_job_subject_accepted),
        cmocka_unit_test(test_job_payload_too_big),
        cmocka_unit_test(test_job_payload_at_limit),
        cmocka_unit_test(test_job_invalid_json),
        cmocka_unit_test(test_job_not_object),
        cmocka_unit_test(test_job_duplicate_key),
        cmocka_unit_test(test_job_server_invalid),
        cmocka_unit_test(test_job_user_invalid),
        cmocka_unit_test(test_job_provider_missing),
        cmocka_unit_test(test_job_access_token_missing),
        cmocka_unit_test(test_job_url_with_query),
        cmocka_unit_test(test_job_reply_to_invalid),
        cmocka_unit_test(test_job_id_invalid),
        cmocka_unit_test(test_job_no_certificates),
        cmocka_unit_test(test_job_empty_certificate),
        cmocka_unit_test(test_job_certificate_fields_missing),
        cmocka_unit_test(test_job_certificate_fields_invalid),
        cmocka_unit_test(test_job_subject_names_empty),
        cmocka_unit_test(test_job_name_type_not_dnsname),
        cmocka_unit_test(test_job_dns_name_invalid),
        cmocka_unit_test(test_job_duplicate_names),
        cmocka_unit_test(test_job_wildcard_over_http),
        cmocka_unit_test(test_job_vhost_names_invalid),
        cmocka_unit_test(test_job_subject_common_name),
        cmocka_unit_test(test_job_country_name_invalid),
        cmocka_unit_test(test_job_subject_control_chars),
        cmocka_unit_test(test_job_error_hides_token),
        cmocka_unit_test(test_job_error_hides_token_too_long),
        cmocka_unit_test(test_job_redact_valid),
        cmocka_unit_test(test_job_redact_escaped_quotes),
        cmocka_unit_test(test_job_redact_invalid_json),
        cmocka_unit_test(test_job_redact_unterminated),
        cmocka_unit_test(test_job_redact_bare_value),
        cmocka_unit_test(test_job_redact_every_occurrence),
        cmocka_unit_test(test_job_redact_escaped_key),
        cmocka_unit_test(test_job_redact_escaped_key_invalid_json),
        cmocka_unit_test(test_job_redact_escaped_nested_and_value),
        cmocka_unit_test(test_job_redact_no_token),
        cmocka_unit_test(test_job_payload_with_id),
        cmocka_unit_test(test_job_peek_valid),
        cmocka_unit_test(test_job_peek_invalid),
        cmocka_unit_test(test_job_id_valid_cases),
        cmocka_unit_test(test_job_dns_name_cases),
        cmocka_unit_test(test_job_dns_name_lengths),
    };

    return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
