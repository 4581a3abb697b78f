/* sdnotify.c: systemd's notification and socket-activation protocols (see sdnotify.h). Both are
 * a few lines of environment and one datagram, so reuseproxy speaks them itself rather than
 * depend on libsystemd. */
#include "autoconfig.h"

#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void sdnotify_send(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char msg[1024];
    va_list ap;

    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof sun.sun_path)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* A long STATUS= (a reload's reason names a file and a line) is cut rather than dropped:
     * callers put STATUS= last, so the assignments before it arrive whole. */
    if ((size_t)n >= sizeof msg)
        n = (int)sizeof msg - 1;
    strcpy(sun.sun_path, path);
    if (path[0] == '@') /* abstract namespace */
        sun.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    if (sendto(fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

unsigned long long sdnotify_monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

int sdnotify_listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int n = 0;
    if (pid && fds && atol(pid) == (long)getpid()) {
        n = atoi(fds);
        /* Descriptors at or above the limit cannot exist: a bogus count must not size an
         * allocation. */
        struct rlimit rl;
        long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (long)rl.rlim_cur - SDNOTIFY_LISTEN_FDS_START
                       : 65536 - SDNOTIFY_LISTEN_FDS_START;
        if (n < 0)
            n = 0;
        if (n > max)
            n = (int)max;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
    }
    return n;
}
