/* Reading a Market access token for a job from a file or stdin, without ever echoing it. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define TOKEN_MAX_BYTES 4096

static char *read_stdin_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);

    if (n < 0) {
        free(line);
        return NULL;
    }
    return line;
}

char *token_read(const char *path)
{
    char *text;

    if (!strcmp(path, "-")) {
        text = read_stdin_line();
        if (text == NULL) {
            cli_error("--token-stdin: no token on stdin; write the access token as the first line");
            return NULL;
        }
    } else {
        text = file_read_all(path, TOKEN_MAX_BYTES, NULL);
        if (text == NULL) {
            cli_error("cannot read token file %s: %s; check the path and its permissions", path, strerror(errno));
            return NULL;
        }
    }

    /* Only the first line counts, so a file may end with a newline. */
    text[strcspn(text, "\r\n")] = '\0';
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    if (len == 0) {
        cli_error("the access token from %s is empty; write the Market access token on its first line",
                  strcmp(path, "-") ? path : "stdin");
        free(text);
        return NULL;
    }
    return text;
}
