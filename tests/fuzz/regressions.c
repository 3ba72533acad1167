/*
 * Replays the fuzz targets' stored inputs without libFuzzer: every file
 * under tests/fuzz/regressions/TARGET/ and tests/fuzz/corpus/TARGET/ goes
 * to that target, and each prints one TAP line.  Run from the repository
 * root, or pass it as the first argument.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tests/fuzz/fuzz.h"

#define MAX_INPUT_BYTES (1024 * 1024)

struct target {
    const char *name;
    int (*run)(const uint8_t *data, size_t size);
};

static const struct target targets[] = {
    { "job", fuzz_job },
    { "uapi", fuzz_uapi },
    { "form", fuzz_form },
    { "config", fuzz_config },
};

static int failures;
static int test_number;

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("# invariant failed: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    failures++;
}

static int skip_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Runs target on every file of the directory in name order; a missing directory counts as empty. */
static void replay_dir(const char *root, const char *kind, const struct target *target)
{
    char dir[2048], path[sizeof(dir) + 1 + 256];
    struct dirent **names;

    snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s/%s", root, kind, target->name);
    int n = scandir(dir, &names, skip_hidden, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        size_t len;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        char *data = file_read_all(path, MAX_INPUT_BYTES, &len);
        test_number++;
        if (data == NULL) {
            printf("not ok %d - %s/%s/%s: cannot read it\n", test_number, kind, target->name, names[i]->d_name);
            failures++;
        } else {
            int before = failures;
            target->run((const uint8_t *)data, len);
            printf("%s %d - %s/%s/%s\n", failures == before ? "ok" : "not ok", test_number, kind, target->name,
                   names[i]->d_name);
        }
        free(data);
        free(names[i]);
        fflush(stdout);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : ".";

    for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
        replay_dir(root, "regressions", &targets[t]);
        replay_dir(root, "corpus", &targets[t]);
    }
    printf("1..%d\n", test_number);
    return failures > 0 ? 1 : 0;
}
