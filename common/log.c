/* Leveled logging to stderr, with millisecond UTC timestamps and the pid on every line. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_INFO;
static const char *program = "certqd";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

void log_set_program(const char *name)
{
    program = name;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char stamp[32], line[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (level > current_level)
        return;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    /* One fprintf per line keeps lines whole when several processes share stderr. */
    fprintf(stderr, "%s.%03dZ %s[%d] %s: %s\n", stamp, (int)(tv.tv_usec / 1000), program,
            (int)getpid(), level_names[level], line);
}
