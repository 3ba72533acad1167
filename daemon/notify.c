/*
 * systemd's notification protocol: one datagram per state change to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (an abstract socket when it starts
 * with '@').  This is all of sd_notify that certqd needs.
 */
#include "daemon/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr;
    size_t len;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    len = strlen(path);
    if (len >= sizeof(addr.sun_path))
        return;

    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

void notify_sendf(const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    notify_send(text);
}

int64_t notify_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");

    char *end;

    if (usec == NULL)
        return 0;
    if (pid) {
        errno = 0;
        long p = strtol(pid, &end, 10);
        if (errno || *end != '\0' || p != (long)getpid())
            return 0;
    }
    errno = 0;
    long long v = strtoll(usec, &end, 10);
    if (errno || *end != '\0' || v <= 0)
        return 0;
    return v / 1000;
}
