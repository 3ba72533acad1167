/*
 * Fuzzes job_parse and the helpers the daemon runs on every payload
 * (job_redact_payload, job_peek, job_payload_with_id), and checks that the
 * access token never reaches an error message or a redacted copy.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"
#include "common/json.h"
#include "tests/fuzz/fuzz.h"

#define MAX_JOB_BYTES 65536
#define REPLY_PREFIX "certq:reply:"
/* Shorter tokens match ordinary words of the messages, so they prove nothing. */
#define MIN_TOKEN_CHARS 8
#define TOKEN_MAX_CHARS 512

static const struct job_limits limits = { .max_bytes = MAX_JOB_BYTES, .reply_prefix = REPLY_PREFIX };

static bool is_token_key(const char *key)
{
    return strcmp(key, "access_token") == 0;
}

/* Mirrors job_parse's rule for access_token: 1-512 printable ASCII characters, no spaces. */
static bool token_accepted(const char *token)
{
    size_t n = 0;

    for (; token[n] != '\0'; n++)
        if ((unsigned char)token[n] <= 0x20 || (unsigned char)token[n] >= 0x7f)
            return false;
    return n > 0 && n <= TOKEN_MAX_CHARS;
}

/* Returns true for tokens whose JSON text is the token itself, so a raw search of the output is exact. */
static bool token_is_plain(const char *token)
{
    return strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+=") == strlen(token);
}

/*
 * Returns true when a key, string or number under node contains needle.
 * skip_token leaves out the values of node's own access_token keys.
 */
static bool tree_contains(yajl_val node, const char *needle, bool skip_token)
{
    if (node == NULL)
        return false;
    switch (node->type) {
    case yajl_t_string:
        return strstr(node->u.string, needle) != NULL;
    case yajl_t_number:
        return strstr(node->u.number.r, needle) != NULL;
    case yajl_t_object:
        for (size_t i = 0; i < node->u.object.len; i++) {
            if (strstr(node->u.object.keys[i], needle))
                return true;
            if (skip_token && is_token_key(node->u.object.keys[i]))
                continue;
            if (tree_contains(node->u.object.values[i], needle, false))
                return true;
        }
        return false;
    case yajl_t_array:
        for (size_t i = 0; i < node->u.array.len; i++)
            if (tree_contains(node->u.array.values[i], needle, false))
                return true;
        return false;
    default:
        return false;
    }
}

/* Writes root (an object) back out with every top-level access_token value replaced by substitute. */
static char *replace_tokens(yajl_val root, const char *substitute)
{
    yajl_gen gen = yajl_gen_alloc(NULL);

    yajl_gen_map_open(gen);
    for (size_t i = 0; i < root->u.object.len; i++) {
        json_gen_str(gen, root->u.object.keys[i]);
        if (is_token_key(root->u.object.keys[i]))
            json_gen_str(gen, substitute);
        else
            json_gen_node(gen, root->u.object.values[i]);
    }
    yajl_gen_map_close(gen);
    return json_gen_finish(gen);
}

/*
 * Checks that a rejection message quotes the token only where the same
 * payload with another token would quote it too: the token may also be the
 * value of another field, or a word of the message itself.
 */
static void check_error_hides_token(yajl_val root, const char *token, const char *err)
{
    char other_err[512];

    if (strstr(err, token) == NULL)
        return;

    /* The substitute keeps the token's validity, so validation takes the same path. */
    char *other = replace_tokens(root, token_accepted(token) ? "[redacted]" : " ");
    struct job *job = job_parse(other, strlen(other), &limits, other_err, sizeof(other_err));

    FUZZ_CHECK(job == NULL, "job_parse accepted the payload once its token was replaced");
    FUZZ_CHECK(strstr(other_err, token) != NULL, "job_parse's error message quotes the access token: %s", err);
    job_free(job);
    free(other);
}

/* Checks that job_redact_payload removes every top-level token of a valid JSON object, in text and after decoding. */
static void check_redaction(const char *payload, size_t size, yajl_val root)
{
    char err[160];
    char *redacted = job_redact_payload(payload, size);
    yajl_val out = json_parse(redacted, strlen(redacted), err, sizeof(err));

    FUZZ_CHECK(out != NULL, "redacting valid JSON gave invalid JSON (%s): %s", err, redacted);
    for (size_t i = 0; i < root->u.object.len; i++) {
        yajl_val v = root->u.object.values[i];
        if (!is_token_key(root->u.object.keys[i]) || v->type != yajl_t_string || strlen(v->u.string) < MIN_TOKEN_CHARS)
            continue;
        const char *token = v->u.string;

        /* A token such as "redacted" is part of the replacement text, so finding it proves nothing. */
        if (out && strstr("[redacted]", token) == NULL && !tree_contains(root, token, true))
            FUZZ_CHECK(!tree_contains(out, token, false), "redacted payload still holds the access token: %s", redacted);
        if (token_is_plain(token)) {
            char *reference = replace_tokens(root, "[redacted]");
            if (strstr(reference, token) == NULL)
                FUZZ_CHECK(strstr(redacted, token) == NULL, "redacted text still holds the access token: %s", redacted);
            free(reference);
        }
    }
    if (out)
        yajl_tree_free(out);
    free(redacted);
}

/* Checks that a parsed job survives job_payload_with_id: same id, token and certificates. */
static void check_payload_with_id(const char *payload, size_t size, const struct job *job)
{
    char err[512];
    char *with_id = job_payload_with_id(payload, size, job->id);

    FUZZ_CHECK(with_id != NULL, "job_payload_with_id failed on a payload job_parse accepted");
    if (with_id == NULL)
        return;
    struct job *again = job_parse(with_id, strlen(with_id), &limits, err, sizeof(err));
    FUZZ_CHECK(again != NULL, "the payload with its id set no longer parses: %s", err);
    if (again) {
        FUZZ_CHECK(again->id && job->id && strcmp(again->id, job->id) == 0, "id changed");
        FUZZ_CHECK(!again->id_generated, "the id set by job_payload_with_id was not read back");
        FUZZ_CHECK(again->access_token && job->access_token && strcmp(again->access_token, job->access_token) == 0,
                   "access_token changed");
        FUZZ_CHECK(again->cert_count == job->cert_count, "certificate count changed from %zu to %zu", job->cert_count,
                   again->cert_count);
        for (size_t i = 0; i < job->cert_count && i < again->cert_count; i++)
            FUZZ_CHECK(strcmp(again->certs[i].json, job->certs[i].json) == 0, "certificate %zu changed", i);
    }
    job_free(again);
    free(with_id);
}

/* Checks that an accepted certificate's price is a finite, non-negative number or a plain decimal string. */
static void check_price(const char *cert_json)
{
    char err[160];
    yajl_val cert = json_parse(cert_json, strlen(cert_json), err, sizeof(err));
    yajl_val price = json_get(cert, "price");

    FUZZ_CHECK(price && (price->type == yajl_t_number || price->type == yajl_t_string),
               "accepted certificate without a price: %s", cert_json);
    if (price && price->type == yajl_t_number) {
        double value = strtod(price->u.number.r, NULL);
        FUZZ_CHECK(isfinite(value) && value >= 0, "accepted the price %s", price->u.number.r);
    } else if (price && price->type == yajl_t_string) {
        const char *s = price->u.string;
        FUZZ_CHECK(s[0] != '\0' && strspn(s, "0123456789.") == strlen(s), "accepted the price string \"%s\"", s);
    }
    if (cert)
        yajl_tree_free(cert);
}

static void check_peek(const char *payload, size_t size)
{
    char *id = NULL, *reply_to = NULL;

    job_peek(payload, size, REPLY_PREFIX, &id, &reply_to);
    FUZZ_CHECK(id == NULL || job_id_valid(id), "job_peek returned an invalid id");
    FUZZ_CHECK(reply_to == NULL || strncmp(reply_to, REPLY_PREFIX, strlen(REPLY_PREFIX)) == 0,
               "job_peek returned a reply_to outside %s", REPLY_PREFIX);
    free(id);
    free(reply_to);
}

int fuzz_job(const uint8_t *data, size_t size)
{
    const char *payload = (const char *)data;
    char err[512], parse_err[160];
    struct job *job = job_parse(payload, size, &limits, err, sizeof(err));

    FUZZ_CHECK(job != NULL || err[0] != '\0', "job_parse failed without a message");
    if (job) {
        FUZZ_CHECK(job->id && job_id_valid(job->id), "accepted job has an invalid id");
        FUZZ_CHECK(job->cert_count > 0 && job->cert_count <= JOB_MAX_CERTIFICATES, "accepted job has %zu certificates",
                   job->cert_count);
        FUZZ_CHECK(job->reply_to == NULL || strncmp(job->reply_to, REPLY_PREFIX, strlen(REPLY_PREFIX)) == 0,
                   "accepted reply_to outside %s", REPLY_PREFIX);
        for (size_t i = 0; i < job->cert_count; i++) {
            check_price(job->certs[i].json);
            for (size_t j = 0; j < job->certs[i].name_count; j++)
                FUZZ_CHECK(job_dns_name_valid(job->certs[i].names[j]), "accepted an invalid DNS name");
        }
    }

    yajl_val root = json_parse(payload, size, parse_err, sizeof(parse_err));
    if (root && root->type == yajl_t_object && size <= MAX_JOB_BYTES / 2) {
        const char *token = json_get_string(root, "access_token");
        if (job == NULL && token && strlen(token) >= MIN_TOKEN_CHARS)
            check_error_hides_token(root, token, err);
        check_redaction(payload, size, root);
        if (job)
            check_payload_with_id(payload, size, job);
    } else {
        free(job_redact_payload(payload, size));
    }
    if (root)
        yajl_tree_free(root);

    check_peek(payload, size);
    job_free(job);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_job(data, size);
}
#endif
