/* test_log.c: log.c's line format, level filtering, the journal detection and the rate-limited
 * event counters. stderr is captured by dup2() onto a file in the test's scratch directory. */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* JOURNAL_STREAM as systemd would set it for the current stderr. */
static void set_journal_stream_to_stderr(void)
{
    struct stat st;
    char value[64];
    fstat(STDERR_FILENO, &st);
    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
}

TEST(test_log_line_has_utc_timestamp_level_tag)
{
    unsetenv("JOURNAL_STREAM");
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag("worker 3");
    time_t before = time(NULL);
    log_info("listening on %s", "127.0.0.1:8488");
    time_t after = time(NULL);
    const char *out = unit_capture_stderr_stop();

    /* 2026-11-26T01:02:03.456Z INFO [worker 3] listening on 127.0.0.1:8488\n */
    CHECK_INT(strlen(out), 25 + strlen("INFO [worker 3] listening on 127.0.0.1:8488\n"));
    CHECK_STR(out + 25, "INFO [worker 3] listening on 127.0.0.1:8488\n");
    CHECK(out[4] == '-' && out[7] == '-' && out[10] == 'T' && out[13] == ':' && out[16] == ':');
    CHECK(out[19] == '.' && out[23] == 'Z' && out[24] == ' ');
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    CHECK(strptime(out, "%Y-%m-%dT%H:%M:%S", &tm) == out + 19);
    time_t stamped = timegm(&tm);
    CHECK(stamped >= before && stamped <= after);
}

TEST(test_log_without_tag)
{
    unsetenv("JOURNAL_STREAM");
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    log_error("bind failed: %s", "Address already in use");
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out + 25, "ERROR bind failed: Address already in use\n");
}

TEST(test_log_level_filtering)
{
    unsetenv("JOURNAL_STREAM");
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_WARN, false);
    log_set_tag("master");
    log_debug("debug %d", 1);
    log_info("info %d", 2);
    log_warn("warn %d", 3);
    log_error("error %d", 4);
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("debug %d", 5);
    const char *out = unit_capture_stderr_stop();

    CHECK_INT(count_lines(out), 3);
    CHECK(strstr(out, "info 2") == NULL);
    CHECK(strstr(out, "debug 1") == NULL);
    CHECK_CONTAINS(out, " WARN [master] warn 3\n");
    CHECK_CONTAINS(out, " ERROR [master] error 4\n");
    CHECK_CONTAINS(out, " DEBUG [master] debug 5\n");
    CHECK_INT(log_get_level(), LOG_LEVEL_DEBUG);
}

TEST(test_log_set_level_clamps)
{
    log_set_level((enum log_level)99);
    CHECK_INT(log_get_level(), LOG_LEVEL_DEBUG);
    log_set_level((enum log_level)(-5));
    CHECK_INT(log_get_level(), LOG_LEVEL_ERROR);
}

TEST(test_log_level_from_verbose)
{
    CHECK_INT(log_level_from_verbose(0), LOG_LEVEL_INFO);
    CHECK_INT(log_level_from_verbose(1), LOG_LEVEL_DEBUG);
    CHECK_INT(log_level_from_verbose(2), LOG_LEVEL_DEBUG);
}

TEST(test_log_journal_stream_drops_timestamp)
{
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag("worker 1");
    log_warn("slow start");
    log_info("ready");
    const char *out = unit_capture_stderr_stop();
    CHECK(log_to_journal());
    /* "<4>" and "<6>": sd-daemon(3) priority prefixes journald turns into the entry's level. */
    CHECK_STR(out, "<4>WARN [worker 1] slow start\n<6>INFO [worker 1] ready\n");
}

TEST(test_log_journal_stream_of_another_file_keeps_timestamp)
{
    struct stat st;
    char value[64];
    unit_capture_stderr_start();
    fstat(STDERR_FILENO, &st);
    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", value, 1);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag("");
    log_info("hello");
    const char *out = unit_capture_stderr_stop();
    CHECK(!log_to_journal());
    CHECK_INT(strlen(out), 25 + strlen("INFO hello\n"));
    CHECK_STR(out + 25, "INFO hello\n");
    CHECK(out[23] == 'Z');
}

TEST(test_log_journal_stream_of_another_device_keeps_timestamp)
{
    struct stat st;
    char value[64];
    unit_capture_stderr_start();
    fstat(STDERR_FILENO, &st);
    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st.st_dev + 1,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    unit_capture_stderr_stop();
    CHECK(!log_to_journal());
}

TEST(test_log_journal_stream_malformed_is_ignored)
{
    struct stat st;
    char value[64];
    unit_capture_stderr_start();
    fstat(STDERR_FILENO, &st);
    /* Right numbers, trailing junk: not systemd's format, so not trusted. */
    snprintf(value, sizeof value, "%llu:%llux", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    CHECK(!log_to_journal());
    setenv("JOURNAL_STREAM", "garbage", 1);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    CHECK(!log_to_journal());
    unsetenv("JOURNAL_STREAM");
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    CHECK(!log_to_journal());
    unit_capture_stderr_stop();
}

TEST(test_log_control_characters_replaced)
{
    unsetenv("JOURNAL_STREAM");
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    log_info("host %s done", "evil\nINFO forged\r\x1b[31m\tok");
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(count_lines(out), 1);
    CHECK_STR(out + 25, "INFO host evil?INFO forged??[31m\tok done\n");
}

TEST(test_log_long_message_truncated)
{
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    setenv("JOURNAL_STREAM", "1:1", 1);
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    log_info("%s", big);
    const char *out = unit_capture_stderr_stop();
    /* "<6>INFO " + 1024 bytes of text + "..." + newline */
    CHECK_INT(strlen(out), 8 + 1024 + 3 + 1);
    CHECK_STR(out + 8 + 1024, "...\n");
    CHECK(out[8] == 'a' && out[8 + 1023] == 'a');
}

TEST(test_log_preserves_errno)
{
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    errno = ECONNRESET;
    log_info("x");
    int saved = errno;
    unit_capture_stderr_stop();
    CHECK_INT(saved, ECONNRESET);
}

TEST(test_log_syslog_writes_nothing_to_stderr)
{
    unsetenv("JOURNAL_STREAM");
    unit_capture_stderr_start();
    log_init("reuseproxy-test", LOG_LEVEL_DEBUG, true);
    log_info("to syslog");
    log_init("reuseproxy-test", LOG_LEVEL_DEBUG, false);
    log_info("back on stderr");
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(count_lines(out), 1);
    CHECK_CONTAINS(out, "INFO back on stderr\n");
}

TEST(test_log_event_thousand_events_one_line)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("failed handshakes", LOG_LEVEL_WARN, 10.0);
    setenv("JOURNAL_STREAM", "0:0", 1);
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag("worker 0");
    for (int i = 0; i < 1000; i++)
        log_event(&rl, "bad tag from 1.2.3.4:%d", 1000 + i);
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out, "<4>WARN [worker 0] failed handshakes: bad tag from 1.2.3.4:1000\n");
    CHECK_INT(rl.total, 1000);
    CHECK_INT(rl.in_window, 999);
    CHECK_STR(rl.example, "bad tag from 1.2.3.4:1001");
}

TEST(test_log_event_flush_prints_summary_once)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("failed handshakes", LOG_LEVEL_WARN, 10.0);
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    for (int i = 0; i < 1000; i++)
        log_event(&rl, "bad tag from 1.2.3.4:%d", i);
    log_event_flush(&rl);
    log_event_flush(&rl); /* nothing pending any more */
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out, "<4>WARN failed handshakes: bad tag from 1.2.3.4:0\n"
                   "<4>WARN failed handshakes: 999 in the last 1s (e.g. bad tag from 1.2.3.4:1)\n");
    CHECK_INT(rl.total, 1000);
    CHECK_INT(rl.in_window, 0);
}

TEST(test_log_event_summary_after_interval)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("replays", LOG_LEVEL_WARN, 0.2);
    struct timespec pause = {0, 250 * 1000 * 1000};
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    log_event(&rl, "salt %d", 0);
    for (int i = 1; i <= 5; i++)
        log_event(&rl, "salt %d", i);
    nanosleep(&pause, NULL);
    log_event(&rl, "salt %d", 6); /* closes the window: 5 counted + this one */
    nanosleep(&pause, NULL);
    log_event(&rl, "salt %d", 7); /* quiet interval before it: printed alone */
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out, "<4>WARN replays: salt 0\n"
                   "<4>WARN replays: 6 in the last 1s (e.g. salt 1)\n"
                   "<4>WARN replays: salt 7\n");
    CHECK_INT(rl.total, 8);
    CHECK_INT(rl.in_window, 0);
}

TEST(test_log_event_poll_waits_for_interval)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("udp drops", LOG_LEVEL_INFO, 0.2);
    struct timespec pause = {0, 250 * 1000 * 1000};
    unit_capture_stderr_start();
    set_journal_stream_to_stderr();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    log_event_poll(&rl); /* nothing yet */
    log_event(&rl, "from %s", "a");
    log_event(&rl, "from %s", "b");
    log_event(&rl, "from %s", "c");
    log_event_poll(&rl); /* too early: keeps counting */
    log_event(&rl, "from %s", "d");
    nanosleep(&pause, NULL);
    log_event_poll(&rl);
    log_event_poll(&rl);
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out, "<6>INFO udp drops: from a\n"
                   "<6>INFO udp drops: 3 in the last 1s (e.g. from b)\n");
    CHECK_INT(rl.total, 4);
}

TEST(test_log_event_below_level_counts_silently)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("probes", LOG_LEVEL_DEBUG, 10.0);
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    for (int i = 0; i < 50; i++)
        log_event(&rl, "probe %d", i);
    log_event_flush(&rl);
    const char *out = unit_capture_stderr_stop();
    CHECK_STR(out, "");
    CHECK_INT(rl.total, 50);
}

TEST(test_log_event_long_detail_cut_to_example_size)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT("x", LOG_LEVEL_WARN, 10.0);
    char big[400];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    unit_capture_stderr_start();
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_event(&rl, "%s", big);
    log_event(&rl, "%s", big);
    unit_capture_stderr_stop();
    CHECK_INT(strlen(rl.example), LOG_EXAMPLE_MAX - 1);
}
