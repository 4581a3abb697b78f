/* sdnotify.h: the two systemd protocols reuseproxy speaks without linking libsystemd: readiness
 * and reload/stop notices on $NOTIFY_SOCKET (sd_notify(3)) and sockets passed by socket
 * activation on $LISTEN_FDS (sd_listen_fds(3)). */
#ifndef RP_SDNOTIFY_H
#define RP_SDNOTIFY_H

/* Socket activation passes its descriptors from this one on (SD_LISTEN_FDS_START). */
#define SDNOTIFY_LISTEN_FDS_START 3

/* Sends a message to systemd's $NOTIFY_SOCKET if there is one (sd_notify(3) protocol). One
 * beyond 1023 bytes is cut: put STATUS= last. */
void sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC=. */
unsigned long long sdnotify_monotonic_usec(void);
/* How many sockets systemd passed to this process (from SDNOTIFY_LISTEN_FDS_START on), 0 when
 * none or when they were meant for another process ($LISTEN_PID). Clears the variables, so a
 * child never takes them for its own. Never more than the descriptor limit allows. */
int sdnotify_listen_fds(void);

#endif
