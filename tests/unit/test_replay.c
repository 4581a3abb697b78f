/* test_replay.c: the shared salt store: replays refused, generations rotating, shared across
 * fork(), exact under concurrent inserts, and alive after a lock holder is killed. */
#include "autoconfig.h"

#include "replay.h"
#include "unit.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A 32-byte salt that names (tag, i). */
static void make_salt(uint8_t salt[32], uint32_t tag, uint32_t i)
{
    memset(salt, 0xA5, 32);
    memcpy(salt, &tag, 4);
    memcpy(salt + 28, &i, 4);
}

static int add(struct replay_store *r, uint32_t tag, uint32_t i)
{
    uint8_t salt[32];
    make_salt(salt, tag, i);
    return replay_check_and_add(r, salt, sizeof salt);
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
    CHECK_INT(replay_memory(r), 4096 + 32 * (16 + 8 + 1));
    replay_free(r);
    r = replay_new_shared(1048576);
    CHECK(r != NULL);
    CHECK_INT(replay_memory(r), 50335776);
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
    CHECK_INT(replay_check_and_add(r, salt, 32), 0);
    CHECK_INT(replay_check_and_add(r, salt, 16), 0);
    CHECK_INT(replay_check_and_add(r, salt, 24), 0);
    CHECK_INT(replay_check_and_add(r, salt, 16), 1);
    CHECK_INT(replay_check_and_add(r, salt, 0), 0);
    CHECK_INT(replay_check_and_add(r, salt, 0), 1);
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

/* Each of two processes offers the same 10000 salts (racing on every one) and 10000 of its
 * own; seen[] counts, per shared salt, how many processes were told it was new. */
TEST(test_replay_concurrent_inserts_exact)
{
    enum { SALTS = 10000 };
    struct replay_store *r = replay_new_shared(65536);
    CHECK(r != NULL);
    int *seen = mmap(NULL, SALTS * sizeof(int), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
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
    for (uint32_t i = 0; i < SALTS; i++) {
        CHECK_INT(add(r, 100, i), 1);
        CHECK_INT(add(r, 200, i), 1);
        CHECK_INT(add(r, 201, i), 1);
    }
    munmap(seen, SALTS * sizeof(int));
    replay_free(r);
}

/* Forks a process that calls replay_check_and_add with a 1 s alarm: returns its wait_child()
 * status (0: it got through and saw `want`; 100 + SIGALRM: it was stuck on the lock). */
static int probe_in_child(struct replay_store *r, int want)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(1);
        _exit(add(r, 6, 'P') == want ? 0 : 1);
    }
    return pid < 0 ? -1 : wait_child(pid);
}

TEST(test_replay_survives_killed_lock_holder)
{
    struct replay_store *r = replay_new_shared(16);
    CHECK(r != NULL);
    int ready[2];
    CHECK_INT(pipe(ready), 0);
    pid_t holder = fork();
    CHECK(holder >= 0);
    if (holder == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (replay_test_hold_lock(r) < 0 || write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    int got = (int)read(ready[0], &c, 1);
    /* The lock is really held: another process cannot get through. */
    int blocked = got == 1 ? probe_in_child(r, 0) : -1;
    kill(holder, SIGKILL);
    CHECK_INT(wait_child(holder), 100 + SIGKILL);
    CHECK_INT(got, 1);
    CHECK_INT(blocked, 100 + SIGALRM);
    alarm(5); /* a deadlock fails the test instead of hanging it */
    CHECK_INT(add(r, 6, 'Q'), 0);
    CHECK_INT(add(r, 6, 'Q'), 1);
    CHECK_INT(probe_in_child(r, 0), 0); /* other processes go on too */
    CHECK_INT(add(r, 6, 'P'), 1);
    alarm(0);
    replay_free(r);
}
