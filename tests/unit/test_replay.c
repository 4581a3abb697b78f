/* test_replay.c: the shared salt store: replays refused, epochs expiring old salts, TCP and UDP
 * regions apart, shared across fork(), handed over by fd, exact under concurrent inserts, and
 * never stalled by a process stopped or killed in the middle of an insert. */
#include "autoconfig.h"

#include "replay.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A 32-byte salt that names (tag, i). */
static void make_salt(uint8_t salt[32], uint32_t tag, uint32_t i)
{
    memset(salt, 0xA5, 32);
    memcpy(salt, &tag, 4);
    memcpy(salt + 28, &i, 4);
}

static int add_kind(struct replay_store *r, enum replay_kind kind, uint32_t tag, uint32_t i)
{
    uint8_t salt[32];
    make_salt(salt, tag, i);
    return replay_check_and_add(r, kind, salt, sizeof salt);
}

static int add(struct replay_store *r, uint32_t tag, uint32_t i)
{
    return add_kind(r, REPLAY_TCP, tag, i);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Waits for pid; returns its exit status, or 100 + signal if it was killed. */
static int wait_child(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(test_replay_siphash_reference_vectors)
{
    /* Key 00..0f, message 00..len-1: vectors_sip128 of the SipHash reference implementation. */
    static const struct {
        size_t len;
        const char *hex;
    } v[] = {
        {0, "a3817f04ba25a8e66df67214c7550293"},  {1, "da87c1d86b99af44347659119b22fc45"},
        {7, "a1f1ebbed8dbc153c0b84aa61ff08239"},  {8, "3b62a9ba6258f5610f83e264f31497b4"},
        {15, "5493e99933b0a8117e08ec0f97cfc3d9"}, {16, "6ee2a4ca67b054bbfd3315bf85230577"},
        {63, "5150d1772f50834a503e069a973fbd7c"},
    };
    uint8_t key[16], msg[64], out[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        char hex[33];
        replay_siphash128(key, msg, v[k].len, out);
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", out[i]);
        CHECK_STR(hex, v[k].hex);
    }
}

TEST(test_replay_memory_size)
{
    struct replay_store *r = replay_new_shared(16);
    CHECK(r != NULL);
    CHECK_INT(replay_memory(r), 4096 + 2 * 64 * 64); /* the smallest table: 64 buckets */
    replay_free(r);
    r = replay_new_shared(1048576);
    CHECK(r != NULL);
    CHECK_INT(replay_memory(r), 67112960);
    CHECK_INT(add(r, 1, 1), 0);
    CHECK_INT(add(r, 1, 1), 1);
    replay_free(r);
}

TEST(test_replay_rejects_bad_capacity)
{
    CHECK(replay_new_shared(0) == NULL);
    CHECK(replay_new_shared(SIZE_MAX / 8) == NULL);
    struct replay_store *r = replay_new_shared(1); /* the smallest store still works */
    CHECK(r != NULL);
    CHECK_INT(add(r, 1, 1), 0);
    CHECK_INT(add(r, 1, 1), 1);
    CHECK_INT(add(r, 1, 2), 0);
    CHECK_INT(add(r, 1, 2), 1);
    replay_free(r);
}

TEST(test_replay_add_then_replay)
{
    struct replay_store *r = replay_new_shared(16);
    CHECK(r != NULL);
    CHECK_INT(add(r, 1, 1), 0);
    CHECK_INT(add(r, 1, 1), 1);
    CHECK_INT(add(r, 1, 1), 1);
    CHECK_INT(add(r, 1, 2), 0);
    CHECK_INT(add(r, 2, 1), 0);
    CHECK_INT(add(r, 1, 2), 1);
    replay_free(r);
}

TEST(test_replay_distinct_salts_are_new)
{
    struct replay_store *r = replay_new_shared(4096);
    CHECK(r != NULL);
    for (uint32_t i = 0; i < 4000; i++)
        CHECK_INT(add(r, 7, i), 0);
    for (uint32_t i = 0; i < 4000; i++)
        CHECK_INT(add(r, 7, i), 1);
    replay_free(r);
}

TEST(test_replay_length_is_part_of_the_salt)
{
    uint8_t salt[32];
    make_salt(salt, 3, 3);
    struct replay_store *r = replay_new_shared(16);
    CHECK(r != NULL);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 32), 0);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 16), 0);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 24), 0);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 16), 1);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 0), 0);
    CHECK_INT(replay_check_and_add(r, REPLAY_TCP, salt, 0), 1);
    replay_free(r);
}

TEST(test_replay_recent_capacity_always_remembered)
{
    enum { N = 16 };
    struct replay_store *r = replay_new_shared(N);
    CHECK(r != NULL);
    for (uint32_t i = 0; i < 10 * N; i++) {
        CHECK_INT(add(r, 9, i), 0);
        /* Lookups that hit add nothing, so this does not disturb the store. */
        for (uint32_t j = i >= N - 1 ? i - (N - 1) : 0; j <= i; j++)
            CHECK_INT(add(r, 9, j), 1);
    }
    replay_free(r);
}

TEST(test_replay_oldest_forgotten_after_rotation)
{
    enum { N = 16 };
    struct replay_store *r = replay_new_shared(N);
    CHECK(r != NULL);
    for (uint32_t i = 0; i <= 2 * N; i++)
        CHECK_INT(add(r, 4, i), 0);
    for (uint32_t i = N + 1; i <= 2 * N; i++) /* the most recent N */
        CHECK_INT(add(r, 4, i), 1);
    CHECK_INT(add(r, 4, 0), 0); /* two rotations ago: forgotten, so new again */
    CHECK_INT(add(r, 4, 0), 1);
    replay_free(r);
}

TEST(test_replay_shared_across_fork)
{
    struct replay_store *r = replay_new_shared(64);
    CHECK(r != NULL);
    int go[2];
    CHECK_INT(pipe(go), 0);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) { /* the child adds A, then waits for the parent to add B */
        char c;
        int ok = add(r, 5, 'A') == 0 && read(go[0], &c, 1) == 1 && add(r, 5, 'B') == 1;
        _exit(ok ? 0 : 1);
    }
    /* The parent adds B while the child runs, and only then lets it look. */
    CHECK_INT(add(r, 5, 'B'), 0);
    CHECK_INT(write(go[1], "x", 1), 1);
    CHECK_INT(wait_child(pid), 0);
    CHECK_INT(add(r, 5, 'A'), 1);
    replay_free(r);
}

/* Each of two processes offers the same 100,000 salts (racing on every one, across several
 * epochs) and 100,000 of its own; seen[] counts, per shared salt, how many processes were told
 * it was new. */
TEST(test_replay_concurrent_inserts_exact)
{
    /* The store promises a salt is refused for at least CAPACITY further recordings. Both
     * processes record 300,000 salts in all, and under load one may run tens of thousands of
     * salts ahead of the other: with CAPACITY at 65,536 the lagging one could then meet a shared
     * salt that has (rightly) aged out, which is not a race. CAPACITY 262,144 keeps every salt
     * within the promise while the count still crosses an epoch. */
    enum { SALTS = 100000, CAPACITY = 262144 };
    struct replay_store *r = replay_new_shared(CAPACITY);
    CHECK(r != NULL);
    int *seen =
        mmap(NULL, SALTS * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(seen != MAP_FAILED);
    int start[2];
    CHECK_INT(pipe(start), 0);
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            int bad = 0;
            char c;
            alarm(60); /* a livelock fails the test instead of hanging it */
            /* Both start together (EOF when the parent closes the pipe) and walk the shared
             * salts in the same order, so they race on the same salt again and again. */
            close(start[1]);
            if (read(start[0], &c, 1) != 0)
                _exit(2);
            for (uint32_t i = 0; i < SALTS; i++) {
                int rc = add(r, 100, i);
                if (rc == 0)
                    __atomic_fetch_add(&seen[i], 1, __ATOMIC_SEQ_CST);
                else if (rc != 1)
                    bad++;
                if (add(r, 200 + (uint32_t)p, i) != 0)
                    bad++;
            }
            _exit(bad ? 1 : 0);
        }
    }
    close(start[1]);
    CHECK_INT(wait_child(pids[0]), 0);
    CHECK_INT(wait_child(pids[1]), 0);
    for (int i = 0; i < SALTS; i++) {
        if (seen[i] != 1) {
            unit_fail(__FILE__, __LINE__, "salt %d reported new %d times", i, seen[i]);
            return;
        }
    }
    /* 300,000 salts were recorded, fewer than 2 * CAPACITY: all of them are still refused. */
    for (uint32_t i = 0; i < SALTS; i++) {
        CHECK_INT(add(r, 100, i), 1);
        CHECK_INT(add(r, 200, i), 1);
        CHECK_INT(add(r, 201, i), 1);
    }
    munmap(seen, SALTS * sizeof(int));
    replay_free(r);
}

/* A flood of datagram salts (2,010 with capacity 1,000: two full epochs) must not push a TCP
 * salt out: the regions are apart. The UDP region itself does forget its oldest. */
TEST(test_replay_udp_flood_keeps_tcp_salts)
{
    struct replay_store *r = replay_new_shared(1000);
    CHECK(r != NULL);
    CHECK_INT(add_kind(r, REPLAY_TCP, 1, 1), 0);
    for (uint32_t i = 0; i < 2010; i++)
        CHECK_INT(add_kind(r, REPLAY_UDP, 2, i), 0);
    CHECK_INT(add_kind(r, REPLAY_TCP, 1, 1), 1);
    CHECK_INT(add_kind(r, REPLAY_UDP, 2, 2009), 1);
    CHECK_INT(add_kind(r, REPLAY_UDP, 2, 0), 0); /* two epochs ago in its own region */
    /* The same bytes in the other region are a different salt. */
    CHECK_INT(add_kind(r, REPLAY_UDP, 1, 1), 0);
    CHECK_INT(add_kind(r, REPLAY_TCP, 2, 2009), 0);
    replay_free(r);
}

/* A binary upgrade: the new master maps the old one's store through its fd and keeps refusing
 * what it saw; a store made for another capacity, or anything else, is refused by name. */
TEST(test_replay_attach_hands_the_store_over)
{
    char err[256];
    struct replay_store *r = replay_new_shared(64);
    CHECK(r != NULL);
    CHECK(replay_fd(r) >= 0);
    CHECK_INT(add(r, 8, 1), 0);
    int fd = dup(replay_fd(r));
    CHECK(fd >= 0);
    CHECK(replay_attach(fd, 128, err, sizeof err) == NULL);
    CHECK(strstr(err, "made for capacity 64, this configuration asks for 128") != NULL);
    struct replay_store *a = replay_attach(fd, 64, err, sizeof err);
    CHECK(a != NULL);
    CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_INT(add(a, 8, 1), 1);
    CHECK_INT(add(a, 8, 2), 0);
    CHECK_INT(add(r, 8, 2), 1);
    replay_free(r); /* the old master leaves; the new one's view stays */
    CHECK_INT(add(a, 8, 1), 1);
    replay_free(a);

    int p[2];
    CHECK_INT(pipe(p), 0);
    CHECK(replay_attach(p[0], 64, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot read its header") != NULL);
    close(p[0]);
    close(p[1]);
    char text[512]; /* longer than a header, and not one */
    memset(text, '.', sizeof text - 1);
    text[sizeof text - 1] = 0;
    const char *path = unit_write_file("not-a-store", text);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(replay_attach(fd, 64, err, sizeof err) == NULL);
    CHECK(strstr(err, "not a version 1 replay store") != NULL);
    close(fd);
}

/* Forks a process that calls replay_check_and_add with a 1 s alarm: returns its wait_child()
 * status (0: it got through and saw `want`; 100 + SIGALRM: it was stuck). */
static int probe_in_child(struct replay_store *r, int want)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(1);
        _exit(add(r, 6, 'P') == want ? 0 : 1);
    }
    return pid < 0 ? -1 : wait_child(pid);
}

/* Forks a process that parks inside an insert of salt (6, 'P'), its slot claimed and not
 * confirmed, and waits there; returns its pid once it is parked, or -1. */
static pid_t park_in_child(struct replay_store *r)
{
    int ready[2];
    if (pipe(ready) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t salt[32];
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        make_salt(salt, 6, 'P');
        if (replay_test_park(r, REPLAY_TCP, salt, sizeof salt) != 0 || write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    int got = pid < 0 ? -1 : (int)read(ready[0], &c, 1);
    close(ready[0]);
    close(ready[1]);
    if (pid > 0 && got != 1) {
        kill(pid, SIGKILL);
        wait_child(pid);
        return -1;
    }
    return pid;
}

/* Issue 13 item 5: a process stopped (SIGSTOP) in the middle of an insert must not stall the
 * others: 1,000 checks complete within 100 ms, and its salt, claimed, is refused to them. */
TEST(test_replay_stopped_process_stalls_nobody)
{
    struct replay_store *r = replay_new_shared(4096);
    CHECK(r != NULL);
    pid_t parked = park_in_child(r);
    CHECK(parked > 0);
    CHECK_INT(kill(parked, SIGSTOP), 0);
    alarm(5); /* a stall fails the test instead of hanging it */
    double t0 = now_ms();
    int fresh = 0, refused = 0;
    for (uint32_t i = 0; i < 1000; i++)
        fresh += add(r, 10, i) == 0;
    refused = add(r, 6, 'P') == 1;
    double took = now_ms() - t0;
    alarm(0);
    kill(parked, SIGKILL);
    CHECK_INT(wait_child(parked), 100 + SIGKILL);
    CHECK_INT(fresh, 1000);
    CHECK_INT(refused, 1);
    if (took >= 100) {
        unit_fail(__FILE__, __LINE__, "1,000 checks took %.1f ms beside a stopped process", took);
        return;
    }
    replay_free(r);
}

/* The process that died mid-insert leaves its claim behind: other processes go on at once, and
 * the salt it was recording stays refused (a lost race resolves to refuse, never to accept). */
TEST(test_replay_survives_killed_parked_process)
{
    struct replay_store *r = replay_new_shared(16);
    CHECK(r != NULL);
    pid_t parked = park_in_child(r);
    CHECK(parked > 0);
    /* While it is parked another process gets through at once (refused: the salt is claimed). */
    int meanwhile = probe_in_child(r, 1);
    kill(parked, SIGKILL);
    CHECK_INT(wait_child(parked), 100 + SIGKILL);
    CHECK_INT(meanwhile, 0);
    alarm(5); /* a deadlock fails the test instead of hanging it */
    CHECK_INT(add(r, 6, 'Q'), 0);
    CHECK_INT(add(r, 6, 'Q'), 1);
    CHECK_INT(probe_in_child(r, 1), 0); /* other processes go on too */
    CHECK_INT(add(r, 6, 'P'), 1);
    alarm(0);
    replay_free(r);
}
