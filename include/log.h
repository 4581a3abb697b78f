/* log.h: leveled logging to stderr (timestamps unless stderr is the systemd journal) or syslog,
 * and rate-limited counters for noisy events such as failed handshakes. */
#ifndef RP_LOG_H
#define RP_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* ident: program name for syslog; use_syslog: send to syslog(3) instead of stderr.
 * Timestamps are left out when $JOURNAL_STREAM names stderr's device and inode. */
void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* A short tag put after the timestamp, e.g. "master" or "worker 1". */
void log_set_tag(const char *tag);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* A rate-limited event: log_event() counts every occurrence and prints at most one summary line
 * per interval ("<what>: N times in the last Ts, e.g. <detail>"), never one line per event. */
struct log_ratelimit {
    const char *what;      /* e.g. "failed handshakes" */
    enum log_level level;
    double interval;       /* seconds between summary lines */
    double window_start;   /* monotonic seconds */
    uint64_t in_window;    /* events since the last summary line */
    uint64_t total;        /* events ever */
};
#define LOG_RATELIMIT_INIT(what_, level_, interval_) { (what_), (level_), (interval_), 0, 0, 0 }
void log_event(struct log_ratelimit *rl, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the pending summary, if any (called on shutdown). */
void log_event_flush(struct log_ratelimit *rl);

#endif
