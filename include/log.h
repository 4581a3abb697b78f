/* log.h: leveled logging to stderr (timestamps unless stderr is the systemd journal) or syslog,
 * and rate-limited counters for noisy events such as failed handshakes. */
#ifndef RP_LOG_H
#define RP_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* ident: program name for syslog; use_syslog: send to the syslog socket /dev/log instead of
 * stderr. No log call ever blocks: a line the destination cannot take at once is dropped and
 * counted, and the next line that gets through is preceded by "N log lines dropped".
 * Timestamps are left out when $JOURNAL_STREAM names stderr's device and inode.
 * The state is per process: a forked worker inherits it and may change its tag. */
void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* A short tag put after the timestamp, e.g. "master" or "worker 1"; NULL or "" for none. */
void log_set_tag(const char *tag);
/* Log lines this process dropped because stderr or syslog could not take them at once. */
uint64_t log_dropped_total(void);
/* True when stderr was found to be the systemd journal at log_init(). */
bool log_to_journal(void);
/* The level for a verbosity count ("verbose", -v): 0 -> info, 1 or more -> debug. */
enum log_level log_level_from_verbose(int verbose);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* A rate-limited event: log_event() counts every occurrence and prints at most one line per
 * interval, never one line per event. The first event (and the first after a quiet interval) is
 * printed at once as "<what>: <detail>"; later ones are counted and summed up by the next line,
 * "<what>: N in the last Ts (e.g. <detail>)", printed by the first event after the interval, by
 * log_event_poll() from a periodic timer, or by log_event_flush(). */
#define LOG_EXAMPLE_MAX 128
struct log_ratelimit {
    const char *what; /* e.g. "failed handshakes" */
    enum log_level level;
    double interval;               /* seconds between lines */
    double window_start;           /* monotonic seconds of the last line printed */
    uint64_t in_window;            /* events since the last line, not yet printed */
    uint64_t total;                /* events ever */
    char example[LOG_EXAMPLE_MAX]; /* detail of the first event in the window */
};
#define LOG_RATELIMIT_INIT(what_, level_, interval_)                                               \
    {                                                                                              \
        .what = (what_), .level = (level_), .interval = (interval_)                                \
    }
void log_event(struct log_ratelimit *rl, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the pending summary if the interval has passed since the last line (for a timer). */
void log_event_poll(struct log_ratelimit *rl);
/* Prints the pending summary, if any (called on shutdown). */
void log_event_flush(struct log_ratelimit *rl);

#endif
