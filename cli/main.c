/* certq: the command-line tool for operators of certqd.  Parses the global options and runs a command. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "enqueue", enqueue_main, "validate jobs and push them onto the queue" },
    { "status", status_main, "show the state of jobs" },
    { "wait", wait_main, "wait until jobs reach a final state" },
    { "stats", stats_main, "show queue sizes, counters and live instances" },
    { "watch", watch_main, "redraw the stats every second until Ctrl-C" },
    { "dead", dead_main, "list, show, requeue or purge dead-letter entries" },
    { "unknown", unknown_main, "list jobs in state unknown and record their outcome" },
};

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("certq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "certq %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'certq %s --help' for usage.\n", command);
    return EXIT_USAGE;
}

bool cli_parse_count(const char *s, long long max, long long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static void print_help(void)
{
    printf("Usage: certq [-c FILE] [--redis URL] [--prefix P] [--json] COMMAND [ARGS...]\n"
           "\n"
           "Operate certqd, which orders SSL certificates through cPanel for jobs taken from Redis.\n"
           "\n"
           "Options:\n"
           "  -c, --config FILE  certqd's config, for redis_url, the Redis password, key_prefix,\n"
           "                     reply_prefix and max_job_bytes (default %s;\n"
           "                     API tokens in it are not read)\n"
           "      --redis URL    Redis to use: redis://HOST:PORT/DB or unix:///PATH (overrides redis_url)\n"
           "      --prefix P     key prefix of certqd's keys (overrides key_prefix)\n"
           "      --json         print JSON for scripts\n"
           "  -h, --help         print this help\n"
           "\n"
           "Commands:\n",
           CERTQ_DEFAULT_CONFIG);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        printf("  %-9s %s\n", commands[i].name, commands[i].summary);
    printf("  %-9s %s\n", "help", "print this help, or a command's help with 'certq help COMMAND'");
    printf("\n"
           "Exit status:\n"
           "  0   success\n"
           "  1   a job failed or ended unknown, or an operation was refused\n"
           "  2   timed out waiting\n"
           "  3   a job or entry was not found\n"
           "  64  usage error\n"
           "  69  Redis unavailable or rejected the password\n"
           "  78  config error\n");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* certq help COMMAND runs COMMAND --help. */
static int run_help(struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        print_help();
        return EXIT_DONE;
    }
    const struct command *cmd = find_command(argv[1]);
    if (cmd == NULL) {
        cli_error("unknown command \"%s\"; run 'certq help' for the list", argv[1]);
        return EXIT_USAGE;
    }
    char *help_argv[] = { argv[1], (char *)"--help", NULL };
    return cmd->run(cli, 2, help_argv);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "redis", required_argument, NULL, 'r' },
        { "prefix", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cli cli = { 0 };
    const char *config_path = NULL, *redis_url = NULL, *key_prefix = NULL;
    int opt, status;

    /* "+" stops at the command's name, so each command parses its own options. */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'r':
            redis_url = optarg;
            break;
        case 'p':
            key_prefix = optarg;
            break;
        case 'j':
            cli.json = true;
            break;
        case 'h':
            print_help();
            return EXIT_DONE;
        case ':':
            cli_error("option %s needs a value; run 'certq --help' for usage", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            cli_error("unknown option %s; run 'certq --help' for usage", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("no command given; run 'certq --help' for the commands");
        return EXIT_USAGE;
    }

    char *name = argv[optind];
    const struct command *cmd = find_command(name);
    if (cmd == NULL && strcmp(name, "help") != 0) {
        cli_error("unknown command \"%s\"; run 'certq help' for the list", name);
        return EXIT_USAGE;
    }

    status = settings_load(&cli.settings, config_path ? config_path : CERTQ_DEFAULT_CONFIG, config_path != NULL);
    if (status == 0)
        status = settings_override(&cli.settings, redis_url, key_prefix);
    if (status != 0)
        goto done;

    /* Each command gets its name as argv[0] and parses from argv[1]. */
    int command_argc = argc - optind;
    char **command_argv = argv + optind;
    optind = 0;
    opterr = 1;
    if (cmd == NULL)
        status = run_help(&cli, command_argc, command_argv);
    else
        status = cmd->run(&cli, command_argc, command_argv);

done:
    rconn_close(&cli);
    settings_free(&cli.settings);
    return status;
}
