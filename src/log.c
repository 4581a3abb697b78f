/* log.c: leveled logging for every reuseproxy process, and rate-limited event counters.
 *
 * A line goes to stderr as "2026-11-26T01:02:03.456Z LEVEL [tag] message", in one write(2) so
 * that the master and the forked workers sharing stderr never interleave halves of lines (a
 * write of at most PIPE_BUF bytes to a pipe is atomic, POSIX write(2)). Under systemd the
 * journal stamps every line itself, so when $JOURNAL_STREAM names our stderr (systemd.exec(5),
 * "JOURNAL_STREAM") the timestamp is left out and the line starts with the "<N>" syslog priority
 * prefix that journald turns into the entry's priority (sd-daemon(3)). With use_syslog, lines go
 * to syslog(3) instead.
 *
 * The state below is the one piece of global state besides signal flags: every module logs, and
 * passing a context to each call for four fields would buy nothing. Each process owns a copy
 * after fork, so no locks are needed. */
#include "autoconfig.h" /* _GNU_SOURCE first: gmtime_r */

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Longest message kept; longer ones are cut and end in "...". */
#define LOG_TEXT_MAX 1024

static struct {
    enum log_level level;
    bool use_syslog;
    bool journal;
    char tag[32];
    char ident[32]; /* openlog(3) keeps the pointer, so it must outlive the call */
} log_state = {LOG_LEVEL_INFO, false, false, "", "reuseproxy"};

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

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
    if (ident && ident[0])
        snprintf(log_state.ident, sizeof log_state.ident, "%s", ident);
    log_set_level(level);
    if (log_state.use_syslog && !use_syslog)
        closelog();
    log_state.use_syslog = use_syslog;
    /* LOG_PID: syslog(3) asks getpid() on every call, so forked workers are told apart. */
    if (use_syslog)
        openlog(log_state.ident, LOG_PID, LOG_DAEMON);
    log_state.journal = log_stderr_is_journal();
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
}

bool log_to_journal(void)
{
    return log_state.journal;
}

enum log_level log_level_from_verbose(int verbose)
{
    return verbose > 0 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
}

static void log_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
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

static void log_emit(enum log_level level, const char *text, bool truncated)
{
    char line[128 + LOG_TEXT_MAX + 8];
    size_t n;

    if (log_state.use_syslog) {
        if (log_state.tag[0])
            syslog(log_syslog_priority(level), "[%s] %s%s", log_state.tag, text,
                   truncated ? "..." : "");
        else
            syslog(log_syslog_priority(level), "%s%s", text, truncated ? "..." : "");
        return;
    }
    n = log_prefix(line, 128, level);
    n += log_append_sanitized(line + n, LOG_TEXT_MAX, text);
    if (truncated) {
        memcpy(line + n, "...", 3);
        n += 3;
    }
    line[n++] = '\n';
    log_write_all(STDERR_FILENO, line, n);
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
