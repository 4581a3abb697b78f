/* plugin.c: the SIP003 plugin as a supervised child of the master (see plugin.h).
 *
 * The master calls in at four places: start, SIGCHLD reaping, reload and stop; everything else
 * (the loopback port, the SIP003 environment, the plugin's output in our log, restarts with a
 * backoff, SIGTERM then SIGKILL) is here. The plugin keeps a copy of the settings it was
 * started with, so that a reload can tell whether they changed and no configuration it does
 * not own is read after the master freed it. */
#include "autoconfig.h"

#include "plugin.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "worker.h"

/* As master.c's rules for a worker: a plugin that dies within CRASH_WINDOW seconds of
 * starting CRASH_LIMIT times in a row is given up, and the master stops. */
#define PLUGIN_CRASH_WINDOW 2.0
#define PLUGIN_CRASH_LIMIT 6
/* Restart delays: 100 ms, doubled after each quick death, at most 5 s. */
#define PLUGIN_BACKOFF_FIRST 0.1
#define PLUGIN_BACKOFF_MAX 5.0
/* One line of the plugin's output; longer ones are logged in pieces. */
#define PLUGIN_LINE_MAX 1024

/* What the plugin is started with; compared on reload. */
struct plugin_settings {
    char *plugin; /* as written: argv[0], and what PATH is searched for */
    char *opts;   /* SS_PLUGIN_OPTIONS, or NULL */
    char *args[CONFIG_MAX_PLUGIN_ARGS];
    int nargs;
    enum config_plugin_mode mode;
    char *remote_host; /* SS_REMOTE_HOST */
    uint16_t remote_port;
    uint16_t local_port; /* SS_LOCAL_PORT, on 127.0.0.1 */
    char *user;          /* "user", or NULL */
};

struct plugin {
    struct ev_loop *loop;
    struct plugin_settings set; /* set.plugin NULL: no plugin, every call does nothing */
    struct netaddr_endpoint local;
    pid_t pid;          /* the running plugin, or 0 */
    pid_t old_pid;      /* a reload's previous plugin, stopping, or 0 */
    bool start_on_exit; /* start pid when old_pid has exited (it holds the port) */
    bool stopping;      /* the master stops: no restarts */
    int out[2];         /* the pipe the plugin's stdout and stderr write to */
    ev_io out_io;
    char line[PLUGIN_LINE_MAX];
    size_t line_len;
    ev_timer restart;
    ev_timer kill_timer;
    ev_tstamp started;
    int quick_deaths;
    void (*give_up)(void *);
    void *give_up_arg;
};

/* ---- settings ---- */

static void settings_free(struct plugin_settings *s)
{
    free(s->plugin);
    free(s->opts);
    for (int i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s->remote_host);
    free(s->user);
    memset(s, 0, sizeof *s);
}

static int dup_or_null(const char *in, char **out)
{
    *out = in ? strdup(in) : NULL;
    return in && !*out ? -1 : 0;
}

/* The server role's plugin faces the public listen address; a client's, the server. */
static int settings_from(struct plugin_settings *s, const struct config *c)
{
    const struct netaddr_target *remote =
        c->role == ROLE_SERVER ? &c->listen[0].target : &c->upstream.target;
    int rc = 0;

    memset(s, 0, sizeof *s);
    if (!c->plugin.plugin)
        return 0;
    rc |= dup_or_null(c->plugin.plugin, &s->plugin);
    rc |= dup_or_null(c->plugin.plugin_opts, &s->opts);
    rc |= dup_or_null(remote->host, &s->remote_host);
    rc |= dup_or_null(c->user, &s->user);
    for (int i = 0; i < c->plugin.n_plugin_args; i++, s->nargs++)
        rc |= dup_or_null(c->plugin.plugin_args[i], &s->args[i]);
    s->mode = c->plugin.plugin_mode;
    s->remote_port = remote->port;
    s->local_port = c->plugin.local.target.port;
    if (rc != 0)
        settings_free(s);
    return rc;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool settings_equal(const struct plugin_settings *a, const struct plugin_settings *b)
{
    if (!same_text(a->plugin, b->plugin) || !same_text(a->opts, b->opts) ||
        !same_text(a->remote_host, b->remote_host) || !same_text(a->user, b->user) ||
        a->nargs != b->nargs || a->mode != b->mode || a->remote_port != b->remote_port ||
        a->local_port != b->local_port)
        return false;
    for (int i = 0; i < a->nargs; i++)
        if (strcmp(a->args[i], b->args[i]) != 0)
            return false;
    return true;
}

/* ---- the loopback port ---- */

/* A port of 127.0.0.1 that is free for TCP and, when asked, UDP: the kernel picks it for TCP
 * (port 0), then UDP is tried on the same number. */
static int plugin_free_port(bool udp, uint16_t *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;

    for (int tries = 0; tries < 64; tries++) {
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), u = -1;
        sin.sin_port = 0;
        bool ok = t >= 0 && bind(t, (struct sockaddr *)&sin, sizeof sin) == 0 &&
                  getsockname(t, (struct sockaddr *)&sin, &len) == 0;
        if (ok && udp) {
            u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            ok = u >= 0 && bind(u, (struct sockaddr *)&sin, sizeof sin) == 0;
        }
        if (t >= 0)
            close(t);
        if (u >= 0)
            close(u);
        if (ok) {
            *port = ntohs(sin.sin_port);
            return 0;
        }
    }
    return -1;
}

int plugin_prepare(struct config *c, char *err, size_t errlen)
{
    char text[32];
    uint16_t port;

    if (!c->plugin.plugin)
        return 0;
    if (plugin_free_port(c->plugin.plugin_mode == CONFIG_PLUGIN_TCP_AND_UDP, &port) != 0) {
        snprintf(err, errlen, "plugin: no free port on 127.0.0.1: %s", strerror(errno));
        return -1;
    }
    snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)port);
    if (netaddr_parse_hostport(text, strlen(text), NETADDR_NUMERIC, &c->plugin.local) != 0) {
        snprintf(err, errlen, "plugin: cannot use %s", text);
        return -1;
    }
    return 0;
}

/* ---- the plugin's output, in our log ---- */

static void plugin_log_line(struct plugin *p)
{
    size_t n = p->line_len;
    while (n > 0 && (p->line[n - 1] == '\r' || p->line[n - 1] == '\n'))
        n--;
    if (n > 0)
        log_info("[plugin] %.*s", (int)n, p->line);
    p->line_len = 0;
}

static void out_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct plugin *p = io->data;
    char buf[4096];
    (void)loop, (void)revents;

    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(p->out[0], buf, sizeof buf);
        if (n <= 0)
            return; /* EAGAIN; the master holds the write end, so never EOF */
        for (ssize_t i = 0; i < n; i++) {
            p->line[p->line_len++] = buf[i];
            if (buf[i] == '\n' || p->line_len == sizeof p->line)
                plugin_log_line(p);
        }
    }
}

/* ---- starting ---- */

static void plugin_setenv(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* In the child: the SIP003 environment, the pipe as stdout and stderr, nothing else of the
 * master's (descriptors, ignored signals, credentials), then the plugin. */
static void plugin_child(const struct plugin *p, const char *path)
{
    const struct plugin_settings *s = &p->set;
    char *argv[CONFIG_MAX_PLUGIN_ARGS + 2];
    char rport[8], lport[8];
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR2, SIGCHLD, SIGPIPE};
    sigset_t none;

    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL); /* main() ignores SIGPIPE; exec would keep that */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(p->out[1], STDOUT_FILENO) < 0 || dup2(p->out[1], STDERR_FILENO) < 0)
        _exit(127);
    close_range(3, ~0U, 0);
    /* The plugin ends with the master, even one killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (worker_drop_privileges(s->user, true) != 0)
        _exit(127);
    snprintf(rport, sizeof rport, "%u", (unsigned)s->remote_port);
    snprintf(lport, sizeof lport, "%u", (unsigned)s->local_port);
    plugin_setenv("SS_REMOTE_HOST", s->remote_host);
    plugin_setenv("SS_REMOTE_PORT", rport);
    plugin_setenv("SS_LOCAL_HOST", "127.0.0.1");
    plugin_setenv("SS_LOCAL_PORT", lport);
    plugin_setenv("SS_PLUGIN_OPTIONS", s->opts);
    argv[0] = s->plugin;
    for (int i = 0; i < s->nargs; i++)
        argv[i + 1] = s->args[i];
    argv[s->nargs + 1] = NULL;
    execv(path, argv);
    fprintf(stderr, "cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

static void plugin_schedule(struct plugin *p, double delay)
{
    ev_timer_stop(p->loop, &p->restart);
    ev_timer_set(&p->restart, delay, 0.);
    ev_timer_start(p->loop, &p->restart);
}

static double plugin_backoff(int quick_deaths)
{
    double d = PLUGIN_BACKOFF_FIRST;
    for (int i = 0; i < quick_deaths && d < PLUGIN_BACKOFF_MAX; i++)
        d *= 2;
    return d < PLUGIN_BACKOFF_MAX ? d : PLUGIN_BACKOFF_MAX;
}

static void plugin_died(struct plugin *p, int status);

static void plugin_spawn(struct plugin *p)
{
    char path[4096];

    p->started = ev_now(p->loop);
    /* Checked at load; looked up again in case it was uninstalled since. */
    if (config_plugin_path(p->set.plugin, path, sizeof path) != 0) {
        log_error("plugin %s: no such executable any more", p->set.plugin);
        plugin_died(p, 127 << 8);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("plugin %s: fork: %s", p->set.plugin, strerror(errno));
        plugin_schedule(p, plugin_backoff(p->quick_deaths));
        return;
    }
    if (pid == 0)
        plugin_child(p, path);
    p->pid = pid;
    log_info("plugin %s started (pid %ld): %s:%u <-> 127.0.0.1:%u", p->set.plugin, (long)pid,
             p->set.remote_host, (unsigned)p->set.remote_port, (unsigned)p->set.local_port);
}

static void restart_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct plugin *p = t->data;
    (void)loop, (void)revents;
    if (!p->stopping && p->pid == 0 && p->old_pid == 0)
        plugin_spawn(p);
}

static void kill_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct plugin *p = t->data;
    (void)loop, (void)revents;
    if (p->old_pid > 0)
        kill(p->old_pid, SIGKILL);
    if (p->stopping && p->pid > 0) {
        log_warn("plugin still running %.0f s after SIGTERM: killing it", PLUGIN_KILL_AFTER);
        kill(p->pid, SIGKILL);
    }
}

static void plugin_arm_kill(struct plugin *p)
{
    ev_timer_stop(p->loop, &p->kill_timer);
    ev_timer_set(&p->kill_timer, PLUGIN_KILL_AFTER, 0.);
    ev_timer_start(p->loop, &p->kill_timer);
}

/* ---- the master's calls ---- */

struct plugin *plugin_new(struct ev_loop *loop, const struct config *c, void (*give_up)(void *),
                          void *arg)
{
    struct plugin *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->loop = loop;
    p->out[0] = p->out[1] = -1;
    p->give_up = give_up;
    p->give_up_arg = arg;
    p->local = c->plugin.local;
    ev_init(&p->restart, restart_cb);
    ev_init(&p->kill_timer, kill_cb);
    p->restart.data = p->kill_timer.data = p;
    if (settings_from(&p->set, c) != 0 ||
        (p->set.plugin && pipe2(p->out, O_CLOEXEC | O_NONBLOCK) != 0)) {
        plugin_free(p);
        return NULL;
    }
    if (p->set.plugin) {
        ev_io_init(&p->out_io, out_cb, p->out[0], EV_READ);
        p->out_io.data = p;
        ev_io_start(loop, &p->out_io);
    }
    return p;
}

void plugin_start(struct plugin *p)
{
    if (p && p->set.plugin && p->pid == 0)
        plugin_spawn(p);
}

static void plugin_died(struct plugin *p, int status)
{
    ev_tstamp lived = ev_now(p->loop) - p->started;

    if (WIFSIGNALED(status))
        log_warn("plugin %s killed by signal %d", p->set.plugin, WTERMSIG(status));
    else
        log_warn("plugin %s exited with status %d", p->set.plugin, WEXITSTATUS(status));
    p->quick_deaths = lived < PLUGIN_CRASH_WINDOW ? p->quick_deaths + 1 : 0;
    if (p->quick_deaths >= PLUGIN_CRASH_LIMIT) {
        log_error("plugin %s died %d times in a row within %.0f s of starting: giving up",
                  p->set.plugin, p->quick_deaths, PLUGIN_CRASH_WINDOW);
        p->stopping = true;
        if (p->give_up)
            p->give_up(p->give_up_arg);
        return;
    }
    plugin_schedule(p, plugin_backoff(p->quick_deaths > 0 ? p->quick_deaths - 1 : 0));
}

bool plugin_reaped(struct plugin *p, pid_t pid, int status)
{
    if (!p || !p->set.plugin || pid == 0)
        return false;
    if (pid > 0 && pid == p->old_pid) {
        p->old_pid = 0;
        if (p->start_on_exit && !p->stopping) {
            p->start_on_exit = false;
            plugin_spawn(p);
        }
        return true;
    }
    if (pid > 0 && pid != p->pid)
        return false;
    p->pid = 0;
    if (!p->stopping)
        plugin_died(p, status);
    return true;
}

int plugin_reload(struct plugin *p, struct config *nc, char *err, size_t errlen)
{
    struct plugin_settings next;

    if (!p->set.plugin != !nc->plugin.plugin ||
        (p->set.plugin && p->set.mode != nc->plugin.plugin_mode)) {
        snprintf(err, errlen,
                 "a plugin is added or removed, or its plugin_mode changed, only with "
                 "a restart: the sockets between it and the workers change");
        return -1;
    }
    if (!p->set.plugin)
        return 0;
    nc->plugin.local = p->local; /* the new workers meet the plugin where the old ones did */
    if (settings_from(&next, nc) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (settings_equal(&p->set, &next)) {
        settings_free(&next);
        return 0;
    }
    log_info("plugin settings changed: restarting %s", next.plugin);
    settings_free(&p->set);
    p->set = next;
    p->quick_deaths = 0;
    ev_timer_stop(p->loop, &p->restart);
    if (p->pid > 0 && p->old_pid == 0) {
        /* the old one holds the port: the new one starts once it has exited */
        kill(p->pid, SIGTERM);
        p->old_pid = p->pid;
        p->pid = 0;
        p->start_on_exit = true;
        plugin_arm_kill(p);
    } else if (p->pid > 0) { /* a reload while the previous one is still stopping */
        kill(p->pid, SIGKILL);
        p->pid = 0;
        p->start_on_exit = true;
    } else if (p->old_pid == 0) {
        plugin_spawn(p);
    }
    return 0;
}

void plugin_stop(struct plugin *p)
{
    if (!p || !p->set.plugin || p->stopping)
        return;
    p->stopping = true;
    ev_timer_stop(p->loop, &p->restart);
    if (p->pid > 0)
        kill(p->pid, SIGTERM);
    if (p->old_pid > 0)
        kill(p->old_pid, SIGTERM);
    if (p->pid > 0 || p->old_pid > 0)
        plugin_arm_kill(p);
}

bool plugin_running(const struct plugin *p)
{
    return p && (p->pid > 0 || p->old_pid > 0);
}

pid_t plugin_pid(const struct plugin *p)
{
    return p ? p->pid : 0;
}

void plugin_free(struct plugin *p)
{
    if (!p)
        return;
    if (p->loop) {
        ev_timer_stop(p->loop, &p->restart);
        ev_timer_stop(p->loop, &p->kill_timer);
        if (p->out[0] >= 0)
            ev_io_stop(p->loop, &p->out_io);
    }
    if (p->line_len > 0)
        plugin_log_line(p);
    for (int i = 0; i < 2; i++)
        if (p->out[i] >= 0)
            close(p->out[i]);
    settings_free(&p->set);
    free(p);
}
