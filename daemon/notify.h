/* systemd's notification protocol (sd_notify), written by hand to avoid a libsystemd dependency. */
#ifndef CERTQD_NOTIFY_H
#define CERTQD_NOTIFY_H

#include <stdint.h>

/* Sends a state string such as "READY=1" to $NOTIFY_SOCKET; does nothing when it is unset. */
void notify_send(const char *state);
void notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns the watchdog interval systemd expects in milliseconds, or 0 when there is none. */
int64_t notify_watchdog_ms(void);

#endif
