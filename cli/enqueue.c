/*
 * certq enqueue: builds jobs from options or reads them from a JSON-lines file,
 * validates each as certqd will, and pushes the valid ones onto the queue.
 */
#include <assert.h>
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"
#include "common/json.h"
#include "common/util.h"

/* Values per LPUSH, so one command never grows without bound. */
#define PUSH_CHUNK 500

/* One certificate of --domain NAME[,NAME...], with the --vhost options that followed it. */
struct domain_cert {
    const char *names;
    const char **vhosts;
    size_t vhost_count;
};

struct enqueue_options {
    const char *server;
    const char *user;
    const char *provider;
    const char *token_path;     /* a file, or "-" for stdin */
    const char *id;
    const char *url_after_checkout;
    const char *reply_to;
    bool no_batch;
    const char **certificates;  /* --certificate JSON values */
    size_t certificate_count;
    struct domain_cert *domains;
    size_t domain_count;
    const char *product;
    const char *price;
    const char *file;
};

/* Jobs ready to push: payloads and their ids, in input order. */
struct job_list {
    char **payloads;
    char **ids;
    size_t count;
};

static void print_enqueue_help(void)
{
    printf("Usage: certq enqueue --server NAME --provider P (--token-file FILE | --token-stdin)\n"
           "                     [--user U] [--id ID] [--url-after-checkout URL] [--reply-to KEY] [--no-batch]\n"
           "                     (--certificate JSON ... | --domain NAME[,NAME...] [--vhost NAME]... --product ID --price N)\n"
           "       certq enqueue --file JOBS.jsonl\n"
           "\n"
           "Validate jobs as certqd does and push them onto the queue.  Prints each job's id, one a line\n"
           "(with --json, a JSON array).  A job without --id gets a random UUID.\n"
           "\n"
           "  --server NAME            the [server NAME] section of certqd's config to order through\n"
           "  --user U                 the cPanel account (required for servers with auth = whm)\n"
           "  --provider P             the Market provider, such as cPStore\n"
           "  --token-file FILE        read the Market access token from the first line of FILE\n"
           "  --token-stdin            read the Market access token from the first line of stdin\n"
           "  --id ID                  the job id (1-128 characters of A-Z a-z 0-9 . _ : -)\n"
           "  --url-after-checkout URL where the store sends the buyer after checkout\n"
           "  --reply-to KEY           Redis list that receives the result; must start with reply_prefix\n"
           "  --no-batch               send this job in a request of its own\n"
           "  --certificate JSON       one certificate object as cPanel takes it (repeatable)\n"
           "  --domain NAME[,NAME...]  one certificate for these names (repeatable)\n"
           "  --vhost NAME             a vhost for the certificate of the --domain before it (repeatable;\n"
           "                           default: the first name of that --domain)\n"
           "  --product ID             Market product id of every --domain certificate, such as 143\n"
           "  --price N                price in US dollars of every --domain certificate, such as 6\n"
           "  --file FILE              read one job JSON per line from FILE (\"-\" for stdin); invalid lines\n"
           "                           are reported with their line number and not pushed\n"
           "\n"
           "Exit status: 0 all jobs pushed, 1 a job was invalid, 64 usage error, 69 Redis unavailable,\n"
           "78 config error.  The access token is never printed.\n");
}

/*
 * Applies the checks certqd makes against its server sections, when certq could
 * read them; without any, warns once that the server names go unchecked.
 */
static bool check_server(const struct cli *cli, const struct job *job, char *err, size_t err_len)
{
    const struct settings *s = &cli->settings;
    static bool warned;

    if (s->server_count == 0) {
        if (!warned && s->config_read)
            cli_error("warning: %s has no [server NAME] sections, so server \"%s\" and its account are not checked "
                      "here; certqd sends a job naming an unknown server to the dead letters; give certqd's config "
                      "with -c FILE", s->config_path, job->server);
        else if (!warned)
            cli_error("warning: no config file was read, so server \"%s\" and its account are not checked here; "
                      "certqd sends a job naming an unknown server to the dead letters; give certqd's config with "
                      "-c FILE", job->server);
        warned = true;
        return true;
    }
    const struct settings_server *server = settings_find_server(s, job->server);
    if (server == NULL) {
        snprintf(err, err_len, "server: \"%s\" is not a [server NAME] section of %s; use one of the configured servers",
                 job->server, s->config_path);
        return false;
    }
    if (!strcmp(server->auth, "whm")) {
        if (job->user == NULL) {
            snprintf(err, err_len, "user: missing; server \"%s\" uses a WHM token, so the job must name the cPanel account",
                     job->server);
            return false;
        }
        return true;
    }
    if (job->user && server->user && strcmp(job->user, server->user) != 0) {
        snprintf(err, err_len, "user: \"%s\" does not match account \"%s\" of server \"%s\"; omit user or use \"%s\"",
                 job->user, server->user, job->server, server->user);
        return false;
    }
    return true;
}

/*
 * Validates one payload and adds it to list, with a generated id written into
 * it when it had none.  Returns false and writes the reason into err when the
 * job is invalid.
 */
static bool accept_payload(const struct cli *cli, struct job_list *list, const char *payload, char *err, size_t err_len)
{
    struct job_limits limits = { .max_bytes = cli->settings.max_job_bytes, .reply_prefix = cli->settings.reply_prefix };
    struct job *job = job_parse(payload, strlen(payload), &limits, err, err_len);
    char *stored;

    if (job == NULL)
        return false;
    if (!check_server(cli, job, err, err_len)) {
        job_free(job);
        return false;
    }

    stored = job->id_generated ? job_payload_with_id(payload, strlen(payload), job->id) : xstrdup(payload);
    list->payloads = xrealloc(list->payloads, (list->count + 1) * sizeof(char *));
    list->ids = xrealloc(list->ids, (list->count + 1) * sizeof(char *));
    list->payloads[list->count] = stored;
    list->ids[list->count] = xstrdup(job->id);
    list->count++;
    job_free(job);
    return true;
}

static void job_list_free(struct job_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        explicit_bzero(list->payloads[i], strlen(list->payloads[i]));
        free(list->payloads[i]);
        free(list->ids[i]);
    }
    free(list->payloads);
    free(list->ids);
}

/* LPUSHes the jobs in order, so certqd, which takes from the right, takes them first to last. */
static void push_jobs(struct cli *cli, const struct job_list *list)
{
    char key[CERTQ_KEY_MAX];
    const char **argv = xcalloc(PUSH_CHUNK + 2, sizeof(char *));

    rconn_key(cli, key, "queue");
    for (size_t start = 0; start < list->count; start += PUSH_CHUNK) {
        int argc = 0;
        argv[argc++] = "LPUSH";
        argv[argc++] = key;
        for (size_t i = start; i < list->count && i < start + PUSH_CHUNK; i++)
            argv[argc++] = list->payloads[i];
        freeReplyObject(rconn_run_argv(cli, argc, argv));
    }
    free(argv);
}

static void print_ids(const struct cli *cli, const struct job_list *list)
{
    if (!cli->json) {
        for (size_t i = 0; i < list->count; i++)
            printf("%s\n", list->ids[i]);
        return;
    }
    yajl_gen gen = out_json_begin(false);
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < list->count; i++)
        json_gen_str(gen, list->ids[i]);
    yajl_gen_array_close(gen);
    out_json_finish(gen);
}

/* Writes a --domain certificate: subject_names from the comma-separated names, vhost_names from --vhost or the first name. */
static void gen_domain_cert(yajl_gen gen, const struct domain_cert *d, const char *product, const char *price)
{
    /* The option check requires --product and --price with --domain. */
    assert(product != NULL);
    assert(price != NULL);
    char *names = xstrdup(d->names);
    char *first = NULL, *save = NULL;
    bool numeric_product = strspn(product, "0123456789") == strlen(product);

    yajl_gen_map_open(gen);
    json_gen_str(gen, "product_id");
    if (numeric_product)
        yajl_gen_number(gen, product, strlen(product));
    else
        json_gen_str(gen, product);
    json_gen_str(gen, "price");
    yajl_gen_number(gen, price, strlen(price));

    json_gen_str(gen, "subject_names");
    yajl_gen_array_open(gen);
    for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (first == NULL)
            first = name;
        yajl_gen_array_open(gen);
        json_gen_str(gen, "dNSName");
        json_gen_str(gen, name);
        yajl_gen_array_close(gen);
    }
    yajl_gen_array_close(gen);

    json_gen_str(gen, "vhost_names");
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < d->vhost_count; i++)
        json_gen_str(gen, d->vhosts[i]);
    if (d->vhost_count == 0 && first)
        json_gen_str(gen, first);
    yajl_gen_array_close(gen);
    yajl_gen_map_close(gen);
    free(names);
}

/* Builds the job JSON from the options; returns NULL after printing a usage error. */
static char *build_job(const struct enqueue_options *o, const char *token)
{
    yajl_gen gen = yajl_gen_alloc(NULL);
    char err[160];
    yajl_val *certs = xcalloc(o->certificate_count + 1, sizeof(yajl_val));
    char *payload = NULL;

    for (size_t i = 0; i < o->certificate_count; i++) {
        certs[i] = json_parse(o->certificates[i], strlen(o->certificates[i]), err, sizeof(err));
        if (certs[i] == NULL) {
            cli_usage_error("enqueue", "--certificate number %zu is not valid JSON: %s", i + 1, err);
            goto fail;
        }
    }

    yajl_gen_map_open(gen);
    if (o->id)
        json_gen_kv_str(gen, "id", o->id);
    json_gen_kv_str(gen, "server", o->server);
    if (o->user)
        json_gen_kv_str(gen, "user", o->user);
    json_gen_kv_str(gen, "provider", o->provider);
    json_gen_kv_str(gen, "access_token", token);
    if (o->url_after_checkout)
        json_gen_kv_str(gen, "url_after_checkout", o->url_after_checkout);
    if (o->reply_to)
        json_gen_kv_str(gen, "reply_to", o->reply_to);
    if (o->no_batch) {
        json_gen_str(gen, "batch");
        yajl_gen_bool(gen, 0);
    }
    json_gen_str(gen, "certificates");
    yajl_gen_array_open(gen);
    for (size_t i = 0; i < o->certificate_count; i++)
        json_gen_node(gen, certs[i]);
    for (size_t i = 0; i < o->domain_count; i++)
        gen_domain_cert(gen, &o->domains[i], o->product, o->price);
    yajl_gen_array_close(gen);
    yajl_gen_map_close(gen);
    payload = json_gen_finish(gen);
    gen = NULL;

fail:
    if (gen)
        yajl_gen_free(gen);
    for (size_t i = 0; i < o->certificate_count; i++)
        if (certs[i])
            yajl_tree_free(certs[i]);
    free(certs);
    return payload;
}

static bool is_json_number(const char *text)
{
    char err[64];
    yajl_val v = json_parse(text, strlen(text), err, sizeof(err));
    bool number = v && v->type == yajl_t_number;

    if (v)
        yajl_tree_free(v);
    return number;
}

/* Checks the combination of options; returns 0 or EXIT_USAGE after printing why. */
static int check_options(const struct enqueue_options *o)
{
    if (o->file) {
        if (o->server || o->user || o->provider || o->token_path || o->id || o->url_after_checkout || o->reply_to ||
            o->no_batch || o->certificate_count || o->domain_count || o->product || o->price)
            return cli_usage_error("enqueue", "--file takes whole jobs, so it cannot be combined with job options; "
                                              "put the fields into each line");
        return 0;
    }
    if (o->server == NULL)
        return cli_usage_error("enqueue", "--server is missing; give the [server NAME] section to order through");
    if (o->provider == NULL)
        return cli_usage_error("enqueue", "--provider is missing; give the Market provider, such as cPStore");
    if (o->token_path == NULL)
        return cli_usage_error("enqueue", "no access token; give --token-file FILE or --token-stdin");
    if (o->certificate_count == 0 && o->domain_count == 0)
        return cli_usage_error("enqueue", "no certificate; give --domain NAME with --product and --price, or --certificate JSON");
    if (o->domain_count && (o->product == NULL || o->price == NULL))
        return cli_usage_error("enqueue", "--domain needs --product ID and --price N");
    if (o->domain_count == 0 && (o->product || o->price))
        return cli_usage_error("enqueue", "--product and --price apply to --domain certificates; give --domain NAME");
    if (o->price && !is_json_number(o->price))
        return cli_usage_error("enqueue", "invalid --price \"%s\": use a number of US dollars, such as 6 or 3.5", o->price);
    return 0;
}

static int enqueue_one(struct cli *cli, const struct enqueue_options *o)
{
    struct job_list list = { 0 };
    char err[512];
    char *token = token_read(o->token_path);
    char *payload = NULL;
    int status = EXIT_FAILED;

    if (token == NULL)
        return EXIT_USAGE;
    payload = build_job(o, token);
    explicit_bzero(token, strlen(token));
    free(token);
    if (payload == NULL)
        return EXIT_USAGE;

    if (!accept_payload(cli, &list, payload, err, sizeof(err))) {
        cli_error("enqueue: invalid job, nothing pushed: %s", err);
        goto done;
    }
    push_jobs(cli, &list);
    print_ids(cli, &list);
    status = EXIT_DONE;

done:
    explicit_bzero(payload, strlen(payload));
    free(payload);
    job_list_free(&list);
    return status;
}

static bool is_blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

static int enqueue_file(struct cli *cli, const char *path)
{
    struct job_list list = { 0 };
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    const char *display_name = strcmp(path, "-") ? path : "stdin";
    char *line = NULL, err[512];
    size_t cap = 0, line_number = 0, invalid = 0;
    ssize_t n;

    if (in == NULL) {
        cli_error("enqueue: cannot open %s: %s", path, strerror(errno));
        return EXIT_USAGE;
    }
    while ((n = getline(&line, &cap, in)) >= 0) {
        line_number++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (is_blank(line))
            continue;
        if (!accept_payload(cli, &list, line, err, sizeof(err))) {
            cli_error("enqueue: %s line %zu: invalid job, not pushed: %s", display_name, line_number, err);
            invalid++;
        }
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    if (in != stdin)
        fclose(in);

    if (list.count > 0)
        push_jobs(cli, &list);
    print_ids(cli, &list);
    if (invalid > 0)
        cli_error("enqueue: %zu of %zu jobs in %s were invalid and not pushed; fix those lines and enqueue them again",
                  invalid, invalid + list.count, display_name);
    job_list_free(&list);
    return invalid > 0 ? EXIT_FAILED : EXIT_DONE;
}

int enqueue_main(struct cli *cli, int argc, char **argv)
{
    enum { O_SERVER = 256, O_USER, O_PROVIDER, O_TOKEN_FILE, O_TOKEN_STDIN, O_ID, O_URL, O_REPLY_TO, O_NO_BATCH,
           O_CERTIFICATE, O_DOMAIN, O_VHOST, O_PRODUCT, O_PRICE, O_FILE, O_JSON };
    static const struct option options[] = {
        { "server", required_argument, NULL, O_SERVER },
        { "user", required_argument, NULL, O_USER },
        { "provider", required_argument, NULL, O_PROVIDER },
        { "token-file", required_argument, NULL, O_TOKEN_FILE },
        { "token-stdin", no_argument, NULL, O_TOKEN_STDIN },
        { "id", required_argument, NULL, O_ID },
        { "url-after-checkout", required_argument, NULL, O_URL },
        { "reply-to", required_argument, NULL, O_REPLY_TO },
        { "no-batch", no_argument, NULL, O_NO_BATCH },
        { "certificate", required_argument, NULL, O_CERTIFICATE },
        { "domain", required_argument, NULL, O_DOMAIN },
        { "vhost", required_argument, NULL, O_VHOST },
        { "product", required_argument, NULL, O_PRODUCT },
        { "price", required_argument, NULL, O_PRICE },
        { "file", required_argument, NULL, O_FILE },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct enqueue_options o = { 0 };
    int opt, status;

    o.certificates = xcalloc((size_t)argc, sizeof(char *));
    o.domains = xcalloc((size_t)argc, sizeof(struct domain_cert));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case O_SERVER: o.server = optarg; break;
        case O_USER: o.user = optarg; break;
        case O_PROVIDER: o.provider = optarg; break;
        case O_ID: o.id = optarg; break;
        case O_URL: o.url_after_checkout = optarg; break;
        case O_REPLY_TO: o.reply_to = optarg; break;
        case O_NO_BATCH: o.no_batch = true; break;
        case O_PRODUCT: o.product = optarg; break;
        case O_PRICE: o.price = optarg; break;
        case O_FILE: o.file = optarg; break;
        case O_JSON: cli->json = true; break;
        case O_CERTIFICATE: o.certificates[o.certificate_count++] = optarg; break;
        case O_DOMAIN: o.domains[o.domain_count++].names = optarg; break;
        case O_TOKEN_FILE:
        case O_TOKEN_STDIN:
            if (o.token_path) {
                status = cli_usage_error("enqueue", "give the access token once, with --token-file or --token-stdin");
                goto done;
            }
            o.token_path = opt == O_TOKEN_FILE ? optarg : "-";
            break;
        case O_VHOST: {
            if (o.domain_count == 0) {
                status = cli_usage_error("enqueue", "--vhost %s comes before any --domain; put it after the --domain it belongs to",
                                         optarg);
                goto done;
            }
            struct domain_cert *d = &o.domains[o.domain_count - 1];
            d->vhosts = xrealloc(d->vhosts, (d->vhost_count + 1) * sizeof(char *));
            d->vhosts[d->vhost_count++] = optarg;
            break;
        }
        case 'h':
            print_enqueue_help();
            status = EXIT_DONE;
            goto done;
        case ':':
            status = cli_usage_error("enqueue", "option %s needs a value", argv[optind - 1]);
            goto done;
        default:
            status = cli_usage_error("enqueue", "unknown option %s", argv[optind - 1]);
            goto done;
        }
    }
    if (optind < argc) {
        status = cli_usage_error("enqueue", "unexpected argument \"%s\"", argv[optind]);
        goto done;
    }
    status = check_options(&o);
    if (status != 0)
        goto done;

    status = o.file ? enqueue_file(cli, o.file) : enqueue_one(cli, &o);

done:
    for (size_t i = 0; i < o.domain_count; i++)
        free(o.domains[i].vhosts);
    free(o.domains);
    free(o.certificates);
    return status;
}
