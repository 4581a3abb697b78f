/* test_upstream.c: upstream.c, the choice among several servers: alive by probe and by the
 * worker's own failures, the lowest latency with turns among the about-as-fast, round robin,
 * and the fallback when none is alive. */
#include <string.h>

#include "upstream.h"
#include "unit.h"

static struct metrics_upstream stats[METRICS_MAX_SERVERS];
static uint64_t down[METRICS_MAX_SERVERS];

static void probed(int i, int up, uint64_t latency_us)
{
    stats[i].up = (uint64_t)up;
    stats[i].latency_us = latency_us;
    stats[i].checks++;
}

static void reset(void)
{
    memset(stats, 0, sizeof stats);
    memset(down, 0, sizeof down);
}

TEST(test_upstream_unprobed_servers_take_turns)
{
    unsigned rr = 0;
    reset();
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down), 1);
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down), 2);
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down), 0);
}

TEST(test_upstream_latency_picks_the_fastest)
{
    unsigned rr = 0;
    reset();
    probed(0, 1, 90000);
    probed(1, 1, 20000);
    probed(2, 1, 50000);
    for (int k = 0; k < 5; k++)
        CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down), 1);
    /* about as fast (within a quarter plus the slack): they take turns */
    probed(2, 1, 21000);
    int a = upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down);
    int b = upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down);
    CHECK(a != b && (a == 1 || a == 2) && (b == 1 || b == 2));
}

TEST(test_upstream_dead_servers_are_skipped)
{
    unsigned rr = 0;
    reset();
    probed(0, 0, 0);
    probed(1, 1, 100);
    probed(2, 0, 0);
    for (int k = 0; k < 4; k++) {
        CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0, down), 1);
        CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0, down), 1);
    }
    /* it answers again: back in the turns */
    probed(2, 1, 100);
    int seen2 = 0;
    for (int k = 0; k < 4; k++)
        seen2 += upstream_pick(stats, 3, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0, down) == 2;
    CHECK_INT(seen2, 2);
}

TEST(test_upstream_local_failure_lasts_until_the_next_probe)
{
    unsigned rr = 0;
    reset();
    probed(0, 1, 100);
    probed(1, 1, 100);
    down[0] = stats[0].checks + 1; /* a connect to 0 failed here */
    for (int k = 0; k < 4; k++)
        CHECK_INT(upstream_pick(stats, 2, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0, down), 1);
    probed(0, 1, 100); /* a new probe result says it answers */
    int seen0 = 0;
    for (int k = 0; k < 4; k++)
        seen0 += upstream_pick(stats, 2, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0, down) == 0;
    CHECK_INT(seen0, 2);
}

/* What a UDP association asks before each datagram (udp_upstream.c): is its server alive? */
TEST(test_upstream_alive_by_probe_and_local_failure)
{
    reset();
    CHECK(upstream_alive(&stats[0], down[0])); /* not probed yet */
    probed(0, 1, 100);
    CHECK(upstream_alive(&stats[0], down[0]));
    down[0] = stats[0].checks + 1;
    CHECK(!upstream_alive(&stats[0], down[0])); /* failed here since the last probe */
    probed(0, 0, 0);
    CHECK(!upstream_alive(&stats[0], down[0])); /* probed dead */
    probed(0, 1, 100);
    CHECK(upstream_alive(&stats[0], down[0])); /* answers again */
}

TEST(test_upstream_tried_and_none_alive)
{
    unsigned rr = 0;
    reset();
    probed(0, 1, 100);
    probed(1, 1, 100);
    probed(2, 1, 100);
    /* a session that tried 0 and 1 gets 2; one that tried all gets -1 */
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0x3, down), 2);
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_LATENCY, &rr, 0x7, down), -1);
    /* every one probed dead: the first untried is still tried rather than failing at once */
    probed(0, 0, 0);
    probed(1, 0, 0);
    probed(2, 0, 0);
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0, down), 0);
    CHECK_INT(upstream_pick(stats, 3, BALANCE_SERVERS_ROUND_ROBIN, &rr, 0x1, down), 1);
}

TEST(test_upstream_name)
{
    struct config_upstream u = {0};
    char buf[300];
    strcpy(u.addr.target.host, "2001:db8::1");
    u.addr.target.port = 8388;
    CHECK_STR(upstream_name(&u, buf, sizeof buf), "[2001:db8::1]:8388");
    strcpy(u.addr.target.host, "example.com");
    CHECK_STR(upstream_name(&u, buf, sizeof buf), "example.com:8388");
}
