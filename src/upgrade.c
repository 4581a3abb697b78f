/* upgrade.c: the binary upgrade hand-over between an old and a new master (see upgrade.h). */
#include "autoconfig.h"

#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "sdnotify.h"

void upgrade_init(struct upgrade *u, char **argv, void (*on_ready)(void *arg), void *arg)
{
    u->argv = argv;
    u->pid = 0;
    u->fd = u->handover_fd = u->inherited_replay_fd = -1;
    u->on_ready = on_ready;
    u->arg = arg;
    if (!realpath(argv[0], u->exe) && readlink("/proc/self/exe", u->exe, sizeof u->exe - 1) < 0)
        snprintf(u->exe, sizeof u->exe, "%s", argv[0]);
    const char *fds = getenv("REUSEPROXY_FDS"), *rs = fds ? strstr(fds, "replay=") : NULL;
    if (rs && atoi(rs + strlen("replay=")) >= 3)
        u->inherited_replay_fd = atoi(rs + strlen("replay="));
    const char *h = getenv("REUSEPROXY_UPGRADE_FD");
    if (h) {
        u->handover_fd = atoi(h);
        netaddr_set_cloexec(u->handover_fd, true);
        unsetenv("REUSEPROXY_UPGRADE_FD");
    }
}

void upgrade_handover_ready(struct upgrade *u)
{
    if (u->handover_fd < 0)
        return;
    /* binary upgrade: systemd learns the new main PID first, then the old master may go */
    sdnotify_send("MAINPID=%ld\nREADY=1", (long)getpid());
    if (write(u->handover_fd, "R", 1) != 1)
        log_warn("cannot tell the previous master that the upgrade is ready");
    close(u->handover_fd);
    u->handover_fd = -1;
}

bool upgrade_reaped(struct upgrade *u, pid_t pid)
{
    if (u->pid <= 0 || pid != u->pid)
        return false;
    log_error("binary upgrade failed: the new master exited");
    u->pid = 0;
    return true;
}

static void upgrade_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct upgrade *u = io->data;
    char c;
    (void)revents;
    ssize_t n = read(u->fd, &c, 1);
    if (n < 0 && errno == EAGAIN)
        return;
    ev_io_stop(loop, io);
    close(u->fd);
    u->fd = -1;
    if (n == 1) {
        log_info("binary upgrade: new master %ld is ready", (long)u->pid);
        u->pid = 0; /* it lives on after us */
        u->on_ready(u->arg);
    } else {
        log_error("binary upgrade failed: the new master did not become ready");
    }
}

/* SIGUSR2: runs the binary again (possibly a new one at the same path), handing it every
 * listening socket through $REUSEPROXY_FDS, and leaves once it reports ready. */
void upgrade_start(struct upgrade *u, struct ev_loop *loop, const struct socket_set *socks,
                   int replay_fd, bool stopping, void (*child_reset)(void))
{
    char env_fd[32], replay[32] = "";
    int p[2];

    if (u->pid > 0 || stopping) {
        log_warn("binary upgrade already in progress or stopping: SIGUSR2 ignored");
        return;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_error("binary upgrade: pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        child_reset();
        signal(SIGHUP, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        char *fds = sockets_export(socks);
        if (!fds || fcntl(p[1], F_SETFD, 0) < 0)
            _exit(127);
        if (replay_fd >= 0) {
            if (netaddr_set_cloexec(replay_fd, false) < 0)
                _exit(127);
            snprintf(replay, sizeof replay, "%sreplay=%d", *fds ? "," : "", replay_fd);
        }
        size_t n = strlen(fds) + strlen(replay) + 1;
        char *all = malloc(n);
        if (!all)
            _exit(127);
        snprintf(all, n, "%s%s", fds, replay);
        snprintf(env_fd, sizeof env_fd, "%d", p[1]);
        setenv("REUSEPROXY_FDS", all, 1);
        setenv("REUSEPROXY_UPGRADE_FD", env_fd, 1);
        execv(u->exe, u->argv);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        log_error("binary upgrade: fork: %s", strerror(errno));
        close(p[0]);
        return;
    }
    log_info("binary upgrade: started %s as %ld", u->exe, (long)pid);
    u->pid = pid;
    u->fd = p[0];
    ev_io_init(&u->io, upgrade_cb, p[0], EV_READ);
    u->io.data = u;
    ev_io_start(loop, &u->io);
}

int upgrade_inherited_fds(struct upgrade_fd **out)
{
    const char *env = getenv("REUSEPROXY_FDS");
    *out = NULL;
    if (!env)
        return 0;
    /* one entry per comma, plus one: the list is allocated to what was handed over */
    size_t cap = 1;
    for (const char *c = env; *c; c++)
        cap += *c == ',';
    struct upgrade_fd *fds = calloc(cap, sizeof *fds);
    if (!fds)
        return -1;
    int n = 0;
    const char *p = env;
    /* a "replay=FD" entry, last, is the replay store's: master.c reads it */
    while (*p && (size_t)n < cap && strncmp(p, "replay=", 7) != 0) {
        char *end;
        long slot = strtol(p, &end, 10);
        if (*end != ':')
            break;
        long fd = strtol(end + 1, &end, 10);
        if (fd >= 3 && fd < 65536)
            fds[n++] = (struct upgrade_fd){.slot = (int)slot, .fd = (int)fd};
        p = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    unsetenv("REUSEPROXY_FDS");
    *out = fds;
    return n;
}
