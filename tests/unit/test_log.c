/* test_log.c: log.c's line format, level filtering, the journal detection, the rate-limited
 * event counters, and lines dropped and counted (never blocked on) when the log is full. stderr is
 * captured by dup2() onto a file in the test's scratch directory. */
#define _GNU_SOURCE /* strptime, timegm, unshare */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
    /* where no syslog daemon listens, the line sent there is dropped and the note says so */
    CHECK(strstr(out, "to syslog") == NULL);
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

/* ---- logging never blocks (issue 20 item 5) ------------------------------------------------ */

/* Fills a pipe or socket so that the next write would block; fd stays blocking afterwards, as a
 * reader-less stderr would be. */
static void fill_to_the_brim(int fd)
{
    static char junk[4096];
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    while (write(fd, junk, sizeof junk) > 0)
        ;
    while (write(fd, junk, 1) > 0)
        ;
    fcntl(fd, F_SETFL, flags);
}

/* Reads what is waiting on fd without blocking (static storage). */
static const char *drain(int fd)
{
    static char text[1 << 20];
    size_t n = 0;
    ssize_t r;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (n < sizeof text - 1 && (r = recv(fd, text + n, sizeof text - 1 - n, MSG_DONTWAIT)) > 0)
        n += (size_t)r;
    if (n == 0) /* a pipe: recv() does not apply */
        while (n < sizeof text - 1 && (r = read(fd, text + n, sizeof text - 1 - n)) > 0)
            n += (size_t)r;
    text[n] = '\0';
    return text;
}

/* Points stderr at fd; returns the descriptor to put back with restore_stderr(). */
static int stderr_onto(int fd)
{
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    return saved;
}

static void restore_stderr(int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
}

/* The lines after the junk a filled pipe holds: from the first timestamped line on. */
static const char *after_junk(const char *text)
{
    while (*text == '\0')
        text++;
    return text;
}

TEST(test_log_full_pipe_drops_counts_and_notes_when_it_drains)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fill_to_the_brim(p[1]);
    unsetenv("JOURNAL_STREAM");
    int saved = stderr_onto(p[1]);
    alarm(10); /* a blocked write would hang here: SIGALRM then fails the test */
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag("worker 0");
    uint64_t before = log_dropped_total();
    for (int i = 0; i < 100; i++)
        log_info("line %d", i);
    uint64_t dropped = log_dropped_total() - before;
    restore_stderr(saved);
    CHECK_INT(dropped, 100);

    /* the reader comes back: the next line is preceded by the note, and nothing more is lost */
    drain(p[0]);
    saved = stderr_onto(p[1]);
    log_info("back");
    restore_stderr(saved);
    alarm(0);
    const char *out = after_junk(drain(p[0]));
    CHECK_CONTAINS(out, "WARN [worker 0] 100 log lines dropped");
    CHECK(strstr(out, "dropped") < strstr(out, "INFO [worker 0] back\n"));
    CHECK_INT(count_lines(out), 2);
    CHECK_INT(log_dropped_total() - before, 100);
    close(p[0]);
    close(p[1]);
}

TEST(test_log_full_pipe_leaves_stderr_description_blocking)
{
    /* The private description is ours: the shared one (a shell's, a test driver's) keeps its
     * flags, so their writes still block as they expect. */
    int p[2];
    CHECK(pipe(p) == 0);
    int saved = stderr_onto(p[1]);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_info("x");
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    restore_stderr(saved);
    CHECK(!(flags & O_NONBLOCK));
    CHECK_CONTAINS(drain(p[0]), "INFO x\n");
    close(p[0]);
    close(p[1]);
}

TEST(test_log_full_journal_stream_keeps_lines_whole)
{
    /* the journal's stream socket as stderr: send() with MSG_DONTWAIT, a part taken is finished
     * before the next line, so no line is ever spliced into another */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int small = 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    int saved = stderr_onto(sv[1]);
    set_journal_stream_to_stderr();
    alarm(10);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    log_set_tag(NULL);
    uint64_t before = log_dropped_total();
    for (int i = 0; i < 2000; i++)
        log_info("line %04d %s", i, "padding padding padding padding padding padding padding");
    restore_stderr(saved);
    uint64_t dropped = log_dropped_total() - before;
    CHECK(dropped > 0 && dropped < 2000);
    drain(sv[0]);
    saved = stderr_onto(sv[1]);
    log_info("back");
    restore_stderr(saved);
    alarm(0);
    const char *out = drain(sv[0]);
    char expect[96];
    snprintf(expect, sizeof expect, "<4>WARN %llu log lines dropped", (unsigned long long)dropped);
    /* the rest of a line cut earlier may come first; then the note, then the line */
    const char *note = strstr(out, expect);
    CHECK(note != NULL);
    CHECK(note == out || note[-1] == '\n');
    CHECK_CONTAINS(note, "\n<6>INFO back\n");
    unsetenv("JOURNAL_STREAM");
    close(sv[0]);
    close(sv[1]);
}

/* A private mount namespace with a tmpfs on /dev, so that the test owns /dev/log; skips where
 * the machine does not allow it (not root, no namespaces). */
static int syslog_socket_of_our_own(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        unit_skip("cannot make a mount namespace (%s): needs root", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0)
        unit_skip("cannot mount a tmpfs on /dev in a namespace (%s)", strerror(errno));
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
        return -1;
    return fd;
}

TEST(test_log_syslog_format_drops_and_notes_without_blocking)
{
    int daemon_fd = syslog_socket_of_our_own();
    CHECK(daemon_fd >= 0);
    unit_capture_stderr_start();
    log_init("reuseproxy-test", LOG_LEVEL_DEBUG, true);
    log_set_tag("worker 2");
    log_info("hello %d", 7);
    char msg[2048];
    ssize_t n = recv(daemon_fd, msg, sizeof msg - 1, 0);
    CHECK(n > 0);
    msg[n] = '\0';
    /* <30> = facility daemon (3 << 3) + info (6), as syslog(3) would send it */
    CHECK(strncmp(msg, "<30>", 4) == 0);
    char tail[128];
    snprintf(tail, sizeof tail, " reuseproxy-test[%d]: [worker 2] hello 7", (int)getpid());
    CHECK_CONTAINS(msg, tail);
    CHECK_INT(strlen(msg), 4 + 15 + strlen(tail));

    /* nobody reads the socket: lines are dropped and counted, never waited for */
    alarm(10);
    uint64_t before = log_dropped_total();
    for (int i = 0; i < 5000; i++)
        log_info("burst %d", i);
    uint64_t dropped = log_dropped_total() - before;
    CHECK(dropped > 0);
    while (recv(daemon_fd, msg, sizeof msg - 1, MSG_DONTWAIT) > 0)
        ;
    log_info("after");
    alarm(0);
    n = recv(daemon_fd, msg, sizeof msg - 1, MSG_DONTWAIT);
    CHECK(n > 0);
    msg[n] = '\0';
    char note[64];
    snprintf(note, sizeof note, "[worker 2] %llu log lines dropped", (unsigned long long)dropped);
    CHECK(strncmp(msg, "<28>", 4) == 0); /* a warning */
    CHECK_CONTAINS(msg, note);
    n = recv(daemon_fd, msg, sizeof msg - 1, MSG_DONTWAIT);
    CHECK(n > 0);
    msg[n] = '\0';
    CHECK_CONTAINS(msg, "[worker 2] after");
    CHECK_STR(unit_capture_stderr_stop(), "");
}
