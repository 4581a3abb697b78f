/* test_steer.c: the SO_REUSEPORT steering program (steer.h), run by the kernel on real loopback
 * groups: classic BPF needs no privilege, so every case here runs anywhere Linux does. A group of
 * sockets bound in slot order; datagrams from many source sockets, or connections; which socket
 * each arrives on. */
#include "autoconfig.h"

#include "steer.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SLOTS 4
#define FLOWS 200

struct group {
    int fd[MAX_SLOTS];
    int n, type, family;
    struct sockaddr_storage addr;
    socklen_t len;
};

/* n sockets of one SO_REUSEPORT group on a free loopback port, slot 0 first. */
static int group_open(struct group *g, int n, int type, int family)
{
    memset(g, 0, sizeof *g);
    g->n = n;
    g->type = type;
    g->family = family;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&g->addr;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        g->len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&g->addr;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        g->len = sizeof *a;
    }
    for (int i = 0; i < n; i++) {
        int one = 1;
        g->fd[i] = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (g->fd[i] < 0 || setsockopt(g->fd[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
            bind(g->fd[i], (struct sockaddr *)&g->addr, g->len) < 0 ||
            (type == SOCK_STREAM && listen(g->fd[i], 256) < 0))
            return -1;
        if (i == 0) /* the port the first one got: the others join it */
            getsockname(g->fd[0], (struct sockaddr *)&g->addr, &g->len);
    }
    return 0;
}

static void group_close(struct group *g)
{
    for (int i = 0; i < g->n; i++)
        if (g->fd[i] > 0)
            close(g->fd[i]);
}

static int attach(struct group *g, const bool *live, const int *slot_cpu)
{
    struct sock_filter f[512];
    int n = steer_program(f, 512, g->n, live, slot_cpu, g->family == AF_INET6);
    if (n < 0)
        return -1;
    struct sock_fprog p = {.len = (unsigned short)n, .filter = f};
    return setsockopt(g->fd[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &p, sizeof p);
}

/* Which slot received what was just sent or connected, or -1 (nothing within ~1 s). */
static int which_slot(struct group *g)
{
    for (int tries = 0; tries < 1000; tries++) {
        for (int i = 0; i < g->n; i++) {
            if (g->type == SOCK_DGRAM) {
                char b[16];
                if (recv(g->fd[i], b, sizeof b, 0) >= 0)
                    return i;
            } else {
                int c = accept(g->fd[i], NULL, NULL);
                if (c >= 0) {
                    close(c);
                    return i;
                }
            }
        }
        usleep(1000);
    }
    return -1;
}

/* One datagram from each of FLOWS sources (kept open in src[], so a flow can send again), or
 * one connection each: the slot each reached in slot[]. */
static void send_flows(struct group *g, int *src, int *slot, bool reuse)
{
    for (int k = 0; k < FLOWS; k++) {
        if (!reuse)
            src[k] = socket(g->family, g->type | SOCK_CLOEXEC, 0);
        if (g->type == SOCK_DGRAM)
            sendto(src[k], "x", 1, 0, (struct sockaddr *)&g->addr, g->len);
        else
            connect(src[k], (struct sockaddr *)&g->addr, g->len);
        slot[k] = which_slot(g);
    }
}

static void close_flows(int *src)
{
    for (int k = 0; k < FLOWS; k++)
        close(src[k]);
}

static int count(const int *slot, int want)
{
    int n = 0;
    for (int k = 0; k < FLOWS; k++)
        n += slot[k] == want;
    return n;
}

static void check_spread(int family)
{
    struct group g;
    bool live[2] = {true, true};
    int src[FLOWS], slot[FLOWS];
    CHECK(group_open(&g, 2, SOCK_DGRAM, family) == 0);
    CHECK(attach(&g, live, NULL) == 0);
    send_flows(&g, src, slot, false);
    CHECK(count(slot, -1) == 0);
    /* The kernel picks the source ports (at random for UDP), so the share of slot 0 is a
     * binomial draw: 200 flows give a standard deviation of 7 (3.5%). 30-70% is over 4 of them
     * from even, so a fair program never fails here, while one that sends everything (or
     * nothing) to a slot always does. */
    CHECK(count(slot, 0) >= FLOWS * 3 / 10 && count(slot, 0) <= FLOWS * 7 / 10);
    close_flows(src);
    group_close(&g);
}

TEST(test_steer_udp_spreads_evenly_ipv4)
{
    check_spread(AF_INET);
}

TEST(test_steer_udp_spreads_evenly_ipv6)
{
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    if (have) /* no ::1 (IPv6 disabled): nothing to test */
        check_spread(AF_INET6);
}

/* Slot 1 of 3 stalls: it gets nothing; the flows of slots 0 and 2 stay where they were; when
 * it is live again, every flow is back where it started. */
TEST(test_steer_stalled_slot_skipped_live_flows_stay)
{
    struct group g;
    bool live[3] = {true, true, true};
    int src[FLOWS], before[FLOWS], during[FLOWS], after[FLOWS];
    CHECK(group_open(&g, 3, SOCK_DGRAM, AF_INET) == 0);
    CHECK(attach(&g, live, NULL) == 0);
    send_flows(&g, src, before, false);
    CHECK(count(before, 1) > 0);
    live[1] = false;
    CHECK(attach(&g, live, NULL) == 0);
    send_flows(&g, src, during, true);
    CHECK(count(during, 1) == 0 && count(during, -1) == 0);
    for (int k = 0; k < FLOWS; k++)
        CHECK(before[k] == 1 || during[k] == before[k]);
    live[1] = true;
    CHECK(attach(&g, live, NULL) == 0);
    send_flows(&g, src, after, true);
    CHECK(memcmp(before, after, sizeof before) == 0);
    close_flows(src);
    group_close(&g);
}

/* TCP: the SYN is steered; a stalled listener gets no connection. */
TEST(test_steer_tcp_stalled_listener_gets_no_connection)
{
    struct group g;
    bool live[2] = {false, true};
    int src[FLOWS], slot[FLOWS];
    CHECK(group_open(&g, 2, SOCK_STREAM, AF_INET) == 0);
    CHECK(attach(&g, live, NULL) == 0);
    send_flows(&g, src, slot, false);
    CHECK(count(slot, 1) == FLOWS);
    close_flows(src);
    group_close(&g);
}

/* cpu_affinity: a datagram sent over loopback is received on the sender's CPU; it goes to the
 * slot pinned there, or by the hash when that slot is stalled. */
TEST(test_steer_cpu_affinity_receiving_cpu_slot)
{
    cpu_set_t old, one;
    struct group g;
    bool live[2] = {true, true};
    int slot_cpu[2] = {-1, -1}, src[FLOWS], slot[FLOWS];

    CHECK(sched_getaffinity(0, sizeof old, &old) == 0);
    if (CPU_COUNT(&old) < 2)
        return; /* one CPU: nothing to tell apart */
    for (int i = 0; i < 2; i++)
        slot_cpu[i] = steer_cpu_of_slot(i);
    CHECK(slot_cpu[0] >= 0 && slot_cpu[1] >= 0 && slot_cpu[0] != slot_cpu[1]);
    CHECK(group_open(&g, 2, SOCK_DGRAM, AF_INET) == 0);
    CHECK(attach(&g, live, slot_cpu) == 0);
    for (int i = 0; i < 2; i++) {
        CPU_ZERO(&one);
        CPU_SET(slot_cpu[i], &one);
        CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
        send_flows(&g, src, slot, false);
        close_flows(src);
        CHECK(count(slot, i) == FLOWS);
    }
    live[1] = false; /* slot 1 stalled: its CPU's packets go to slot 0 */
    CHECK(attach(&g, live, slot_cpu) == 0);
    send_flows(&g, src, slot, false);
    close_flows(src);
    CHECK(count(slot, 0) == FLOWS);
    CHECK(sched_setaffinity(0, sizeof old, &old) == 0);
    group_close(&g);
}

/* The largest group fits the kernel's limit (BPF_MAXINSNS); a short buffer is refused. */
TEST(test_steer_program_sizes)
{
    static struct sock_filter f[4096];
    bool live[SOCKETS_MAX_SLOTS];
    int cpu[SOCKETS_MAX_SLOTS];
    for (int i = 0; i < SOCKETS_MAX_SLOTS; i++) {
        live[i] = i != 7;
        cpu[i] = i;
    }
    int n = steer_program(f, 4096, SOCKETS_MAX_SLOTS, live, cpu, true);
    CHECK(n > 0 && n <= 4096);
    CHECK(steer_program(f, n - 1, SOCKETS_MAX_SLOTS, live, cpu, true) == -1);
    CHECK(steer_program(f, 4096, 0, live, NULL, false) == -1);
    CHECK(steer_heartbeat_interval(500) == 0.1);
    CHECK(steer_heartbeat_interval(100) == 0.02);
}
