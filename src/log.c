/* log.c: leveled logging for every reuseproxy process, and rate-limited event counters.
 *
 * A line goes to stderr as "2026-11-26T01:02:03.456Z LEVEL [tag] message", in one write(2) so
 * that the master and the forked workers sharing stderr never interleave halves of lines (a
 * write of at most PIPE_BUF bytes to a pipe is atomic, POSIX write(2)). Under systemd the
 * journal stamps every line itself, so when $JOURNAL_STREAM names our stderr (systemd.exec(5),
 * "JOURNAL_STREAM") the timestamp is left out and the line starts with the "<N>" syslog priority
 * prefix that journald turns into the entry's priority (sd-daemon(3)). With use_syslog, lines go
 * to the syslog socket /dev/log instead, in the format syslog(3) uses (RFC 3164).
 *
 * Logging never blocks the caller (issue 20 item 5): a worker whose stderr is a pipe nobody
 * reads, or whose syslog daemon is stuck, must keep relaying. A line that does not fit at once
 * is dropped and counted; the next line that does fit is preceded by "N log lines dropped", and
 * log_dropped_total() tells the total. How each kind of destination is written without blocking:
 *  - a socket (the journal's stream, our own /dev/log socket): send(2) with MSG_DONTWAIT, which
 *    is per call and so changes nothing for anyone else using the socket;
 *  - a pipe, FIFO or terminal: stderr's file description is shared with whoever started us
 *    (a shell, a test driver, systemd), and O_NONBLOCK on it would change their writes too. So
 *    we open our own description of the same pipe, /proc/self/fd/2 with O_NONBLOCK, used only by
 *    this process and the workers it forks. If that open fails (no /proc, or a worker that gave
 *    up root cannot open a root-owned pipe), poll(2) with a zero timeout precedes each write:
 *    a pipe that polls writable has a free page, and a line (at most ~1.2 KiB, under PIPE_BUF)
 *    then goes in at once; only a race with another writer filling the last page in between
 *    could still block, which is why the private description is preferred;
 *  - a regular file: written directly (a disk write waits for no reader).
 * Our descriptors may be closed behind our back (the master closes every descriptor it does not
 * hand to a forked worker), and the number then reused by a client socket, so each is checked
 * by fstat(2) against the device and inode it was opened for before every use.
 *
 * The state below is the one piece of global state besides signal flags: every module logs, and
 * passing a context to each call for four fields would buy nothing. Each process owns a copy
 * after fork, so no locks are needed. */
#include "autoconfig.h" /* _GNU_SOURCE first: gmtime_r */

#include "log.h"
#include "rp_assert.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Longest message kept; longer ones are cut and end in "...". */
#define LOG_TEXT_MAX 1024
/* A whole line: prefix (timestamp, level, tag, or the syslog header) + text + "...\n". */
#define LOG_PREFIX_MAX 160
#define LOG_LINE_MAX (LOG_PREFIX_MAX + LOG_TEXT_MAX + 8)
#define LOG_SYSLOG_PATH "/dev/log"

static struct {
    enum log_level level;
    bool use_syslog;
    bool journal;
    char tag[32];
    char ident[32];
} log_state = {LOG_LEVEL_INFO, false, false, "", "reuseproxy"};

/* A descriptor log.c opened itself, with the identity it must still have to be ours. */
struct log_fd {
    int fd; /* -1: none */
    dev_t dev;
    ino_t ino;
};

/* How a destination is written without blocking (see the top of the file). */
enum log_how { LOG_HOW_SEND, LOG_HOW_WRITE, LOG_HOW_POLL_WRITE };

static struct {
    struct log_fd own_stderr; /* our O_NONBLOCK description of stderr's pipe or terminal */
    struct log_fd syslog;     /* our socket connected to /dev/log */
    bool syslog_stream;       /* /dev/log took only SOCK_STREAM: messages end in NUL */
    uint64_t dropped;         /* lines dropped since the last "dropped" note */
    uint64_t dropped_total;
    /* The rest of a line a stream socket took only in part; sent before anything else so that
     * lines are never spliced. */
    char pending[LOG_LINE_MAX];
    size_t pending_len;
} log_sink = {.own_stderr = {.fd = -1}, .syslog = {.fd = -1}};

static const char *const log_level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

static int log_syslog_priority(enum log_level level)
{
    switch (level) {
    case LOG_LEVEL_ERROR:
        return LOG_ERR;
    case LOG_LEVEL_WARN:
        return LOG_WARNING;
    case LOG_LEVEL_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

/* systemd sets JOURNAL_STREAM="DEV:INODE" (decimal) for a service whose stderr or stdout is a
 * journal stream; it is ours only if stderr's fstat(2) matches, since the variable is inherited
 * by children whose stderr may have been redirected. */
static bool log_stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char rest;
    struct stat st;

    if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &rest) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void log_sink_refresh(void);

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
    if (ident && ident[0])
        snprintf(log_state.ident, sizeof log_state.ident, "%s", ident);
    log_set_level(level);
    if (log_state.use_syslog != use_syslog)
        log_sink.pending_len = 0; /* the rest of a line belongs to the old destination */
    log_state.use_syslog = use_syslog;
    log_state.journal = log_stderr_is_journal();
    log_sink_refresh();
}

void log_set_level(enum log_level level)
{
    int n = (int)level; /* the enum may be unsigned; a negative value must clamp to ERROR */
    log_state.level = n < 0 ? LOG_LEVEL_ERROR : n > LOG_LEVEL_DEBUG ? LOG_LEVEL_DEBUG : level;
}

enum log_level log_get_level(void)
{
    return log_state.level;
}

void log_set_tag(const char *tag)
{
    snprintf(log_state.tag, sizeof log_state.tag, "%s", tag ? tag : "");
    /* A forked worker sets its tag first, after the master closed the descriptors it does not
     * hand over and before the worker gives up root: the moment to open our own again. */
    log_sink_refresh();
}

uint64_t log_dropped_total(void)
{
    return log_sink.dropped_total;
}

bool log_to_journal(void)
{
    return log_state.journal;
}

enum log_level log_level_from_verbose(int verbose)
{
    return verbose > 0 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
}

/* True when fd is still the file it was opened as (see the top of the file). */
static bool log_fd_valid(const struct log_fd *f)
{
    struct stat st;
    return f->fd >= 0 && fstat(f->fd, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
}

/* Forgets a descriptor; closes it only if it is still ours. */
static void log_fd_drop(struct log_fd *f)
{
    if (log_fd_valid(f))
        close(f->fd);
    f->fd = -1;
}

static void log_fd_adopt(struct log_fd *f, int fd)
{
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        f->fd = fd;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
    } else {
        if (fd >= 0)
            close(fd);
        f->fd = -1;
    }
}

/* The descriptor to write stderr's lines to, and how. */
static int log_stderr_target(enum log_how *how)
{
    struct stat st;

    *how = LOG_HOW_WRITE;
    if (fstat(STDERR_FILENO, &st) != 0)
        return -1;
    if (S_ISSOCK(st.st_mode)) {
        *how = LOG_HOW_SEND;
        return STDERR_FILENO;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
        return STDERR_FILENO;
    if (log_fd_valid(&log_sink.own_stderr) && log_sink.own_stderr.dev == st.st_dev &&
        log_sink.own_stderr.ino == st.st_ino)
        return log_sink.own_stderr.fd;
    /* stderr changed (or ours was closed): a fresh private description of the new one */
    log_fd_drop(&log_sink.own_stderr);
    log_fd_adopt(&log_sink.own_stderr,
                 open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (log_fd_valid(&log_sink.own_stderr) && log_sink.own_stderr.dev == st.st_dev &&
        log_sink.own_stderr.ino == st.st_ino)
        return log_sink.own_stderr.fd;
    log_fd_drop(&log_sink.own_stderr);
    *how = LOG_HOW_POLL_WRITE;
    return STDERR_FILENO;
}

static int log_syslog_connect(int type)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", LOG_SYSLOG_PATH);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Our socket to the syslog daemon, (re)connected on demand; -1 when there is none. */
static int log_syslog_target(bool reconnect)
{
    if (!reconnect && log_fd_valid(&log_sink.syslog))
        return log_sink.syslog.fd;
    log_fd_drop(&log_sink.syslog);
    /* syslog(3)'s order: a datagram socket, else a stream one (a few daemons offer only that) */
    int fd = log_syslog_connect(SOCK_DGRAM);
    log_sink.syslog_stream = fd < 0;
    if (fd < 0)
        fd = log_syslog_connect(SOCK_STREAM);
    log_fd_adopt(&log_sink.syslog, fd);
    return log_sink.syslog.fd;
}

static void log_sink_refresh(void)
{
    enum log_how how;
    if (log_state.use_syslog)
        log_syslog_target(false);
    else
        log_stderr_target(&how);
}

/* One attempt to write without blocking; returns what went, or -1 (errno set). */
static ssize_t log_try_write(int fd, enum log_how how, const char *p, size_t n)
{
    for (;;) {
        ssize_t w;
        if (how == LOG_HOW_SEND) {
            w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (how == LOG_HOW_POLL_WRITE && (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT))) {
                errno = EAGAIN;
                return -1;
            }
            w = write(fd, p, n);
        }
        if (w >= 0 || errno != EINTR)
            return w;
    }
}

/* Sends one whole line, or nothing of it; returns false when it did not go. A stream that takes
 * a part keeps the rest pending, and the rest goes first next time. */
static bool log_put(int fd, enum log_how how, const char *p, size_t n)
{
    ssize_t w;
    if (fd < 0) {
        errno = EBADF;
        return false;
    }
    while (log_sink.pending_len > 0) {
        w = log_try_write(fd, how, log_sink.pending, log_sink.pending_len);
        if (w <= 0)
            return false;
        memmove(log_sink.pending, log_sink.pending + w, log_sink.pending_len - (size_t)w);
        log_sink.pending_len -= (size_t)w;
    }
    w = log_try_write(fd, how, p, n);
    if (w <= 0)
        return false;
    RP_ASSERT((size_t)w <= n && n - (size_t)w <= sizeof log_sink.pending);
    memcpy(log_sink.pending, p + w, n - (size_t)w);
    log_sink.pending_len = n - (size_t)w;
    return true;
}

/* Control characters become '?', so text that came from the network (a hostname, a SOCKS5
 * request) cannot start a forged line. */
static size_t log_append_sanitized(char *out, size_t cap, const char *text)
{
    size_t n = 0;
    for (; n < cap && text[n]; n++) {
        unsigned char ch = (unsigned char)text[n];
        out[n] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
    }
    return n;
}

static size_t log_prefix(char *out, size_t cap, enum log_level level)
{
    size_t n = 0;
    if (log_state.journal) {
        n = (size_t)snprintf(out, cap, "<%d>", log_syslog_priority(level));
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(out + n, cap - n, ".%03ldZ ", (long)(ts.tv_nsec / 1000000));
    }
    n += (size_t)snprintf(out + n, cap - n, "%s ", log_level_names[level]);
    if (log_state.tag[0])
        n += (size_t)snprintf(out + n, cap - n, "[%s] ", log_state.tag);
    return n;
}

/* The header syslog(3) writes (RFC 3164): "<PRI>Mmm dd hh:mm:ss ident[pid]: ", local time,
 * facility daemon; getpid() on every call so that forked workers are told apart. */
static size_t log_syslog_prefix(char *out, size_t cap, enum log_level level)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];

    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    size_t n =
        (size_t)snprintf(out, cap, "<%d>%s %s[%d]: ", LOG_DAEMON | log_syslog_priority(level),
                         stamp, log_state.ident, (int)getpid());
    if (log_state.tag[0])
        n += (size_t)snprintf(out + n, cap - n, "[%s] ", log_state.tag);
    return n;
}

/* The whole line as the current destination wants it; returns its length. */
static size_t log_format(char *line, enum log_level level, const char *text, bool truncated)
{
    size_t n = log_state.use_syslog ? log_syslog_prefix(line, LOG_PREFIX_MAX, level)
                                    : log_prefix(line, LOG_PREFIX_MAX, level);
    n += log_append_sanitized(line + n, LOG_TEXT_MAX, text);
    if (truncated) {
        memcpy(line + n, "...", 3);
        n += 3;
    }
    if (!log_state.use_syslog)
        line[n++] = '\n';
    else if (log_sink.syslog_stream)
        line[n++] = '\0'; /* a stream has no datagram boundaries: syslog(3) ends each in NUL */
    return n;
}

/* Sends a formatted line without blocking; false when it had to be dropped. */
static bool log_deliver(const char *line, size_t n)
{
    enum log_how how;
    int fd;

    if (!log_state.use_syslog) {
        fd = log_stderr_target(&how);
        return log_put(fd, how, line, n);
    }
    if (log_put(log_syslog_target(false), LOG_HOW_SEND, line, n))
        return true;
    /* a restarted syslog daemon leaves our socket connected to nothing: reconnect once */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
        return false;
    fd = log_syslog_target(true);
    return log_put(fd, LOG_HOW_SEND, line, n);
}

static void log_emit(enum log_level level, const char *text, bool truncated)
{
    char line[LOG_LINE_MAX];
    size_t n;

    if (log_state.use_syslog)
        log_syslog_target(false); /* connected first: its socket type decides the format */
    if (log_sink.dropped > 0) {
        /* What was lost is said before anything else gets through, so the log shows the gap. */
        char note[96];
        snprintf(note, sizeof note, "%" PRIu64 " log lines dropped (the log was not taking them)",
                 log_sink.dropped);
        n = log_format(line, LOG_LEVEL_WARN, note, false);
        if (!log_deliver(line, n)) {
            log_sink.dropped++;
            log_sink.dropped_total++;
            return;
        }
        log_sink.dropped = 0;
    }
    n = log_format(line, level, text, truncated);
    if (!log_deliver(line, n)) {
        log_sink.dropped++;
        log_sink.dropped_total++;
    }
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level level, const char *fmt,
                                                           va_list ap)
{
    char text[LOG_TEXT_MAX + 1];
    int saved_errno = errno;
    int len = vsnprintf(text, sizeof text, fmt, ap);

    if (len < 0)
        snprintf(text, sizeof text, "(unformattable message \"%s\")", fmt);
    log_emit(level, text, len > LOG_TEXT_MAX);
    errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    if ((unsigned)level > (unsigned)log_state.level) /* also drops out-of-range levels */
        return;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static double log_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_event_summary(struct log_ratelimit *rl, double now)
{
    long seconds = (long)(now - rl->window_start + 0.5);
    if (seconds < 1)
        seconds = 1;
    log_msg(rl->level, "%s: %" PRIu64 " in the last %lds (e.g. %s)", rl->what, rl->in_window,
            seconds, rl->example);
    rl->window_start = now;
    rl->in_window = 0;
}

void log_event(struct log_ratelimit *rl, const char *detail_fmt, ...)
{
    double now = log_monotonic();

    rl->total++;
    if (rl->total > 1 && now - rl->window_start < rl->interval) {
        /* Inside the window: count it, and keep the first detail for the summary. */
        if (rl->in_window++ == 0) {
            va_list ap;
            va_start(ap, detail_fmt);
            vsnprintf(rl->example, sizeof rl->example, detail_fmt, ap);
            va_end(ap);
        }
        return;
    }
    if (rl->in_window > 0) {
        rl->in_window++;
        log_event_summary(rl, now);
        return;
    }
    /* The first event after a quiet interval is worth seeing at once, detail and all. */
    if (rl->level <= log_state.level) {
        char detail[LOG_EXAMPLE_MAX];
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(detail, sizeof detail, detail_fmt, ap);
        va_end(ap);
        log_msg(rl->level, "%s: %s", rl->what, detail);
    }
    rl->window_start = now;
}

void log_event_poll(struct log_ratelimit *rl)
{
    double now = log_monotonic();
    if (rl->in_window > 0 && now - rl->window_start >= rl->interval)
        log_event_summary(rl, now);
}

void log_event_flush(struct log_ratelimit *rl)
{
    if (rl->in_window > 0)
        log_event_summary(rl, log_monotonic());
}
