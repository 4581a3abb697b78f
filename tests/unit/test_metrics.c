/* test_metrics.c: the shared counters, their exact Prometheus text, and the HTTP server (run in a
 * child process on its own loop while the test talks to it as a plain blocking client). */
#include "autoconfig.h"

#include "metrics.h"
#include "unit.h"

#include "config.h"
#include "metrics_http.h"
#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_worker(struct metrics_worker *w, uint64_t base)
{
    w->accepted = base + 5;
    w->active = base + 2;
    w->bytes_in = base + 1000;
    w->bytes_out = base + 2000;
    w->udp_associations = base + 3;
    w->udp_packets_in = base + 7;
    w->udp_packets_out = base + 8;
    w->udp_evicted = base + 1;
    w->failed_handshakes = base + 4;
    w->replays = base + 2;
    w->handshake_limited = base + 6;
    w->loops_refused = base + 6;
    w->local_refused = base + 3;
    w->proxy_refused = base + 3;
    w->shared_failures = base + 1;
    w->udp_dropped = base + 9;
    w->restarts = base;
    w->reloads = base + 5;
    w->fork_failures = base + 6;
    w->pid = base + 4242;
    w->stalls = base + 2;
    w->stalled = 1;
    w->heartbeat_ms = base + 123456; /* not rendered */
}

static const char expected_one_worker[] =
    "# HELP reuseproxy_accepted_total TCP connections accepted.\n"
    "# TYPE reuseproxy_accepted_total counter\n"
    "reuseproxy_accepted_total{worker=\"0\"} 5\n"
    "# HELP reuseproxy_active_connections TCP connections open now.\n"
    "# TYPE reuseproxy_active_connections gauge\n"
    "reuseproxy_active_connections{worker=\"0\"} 2\n"
    "# HELP reuseproxy_bytes_in_total Bytes read from clients.\n"
    "# TYPE reuseproxy_bytes_in_total counter\n"
    "reuseproxy_bytes_in_total{worker=\"0\"} 1000\n"
    "# HELP reuseproxy_bytes_out_total Bytes written to clients.\n"
    "# TYPE reuseproxy_bytes_out_total counter\n"
    "reuseproxy_bytes_out_total{worker=\"0\"} 2000\n"
    "# HELP reuseproxy_udp_associations UDP associations open now.\n"
    "# TYPE reuseproxy_udp_associations gauge\n"
    "reuseproxy_udp_associations{worker=\"0\"} 3\n"
    "# HELP reuseproxy_udp_packets_in_total UDP datagrams received from clients.\n"
    "# TYPE reuseproxy_udp_packets_in_total counter\n"
    "reuseproxy_udp_packets_in_total{worker=\"0\"} 7\n"
    "# HELP reuseproxy_udp_packets_out_total UDP datagrams sent to clients.\n"
    "# TYPE reuseproxy_udp_packets_out_total counter\n"
    "reuseproxy_udp_packets_out_total{worker=\"0\"} 8\n"
    "# HELP reuseproxy_udp_evicted_total UDP associations evicted because the table was full.\n"
    "# TYPE reuseproxy_udp_evicted_total counter\n"
    "reuseproxy_udp_evicted_total{worker=\"0\"} 1\n"
    "# HELP reuseproxy_failed_handshakes_total TCP handshakes failed: bad tag, malformed header "
    "or refused target.\n"
    "# TYPE reuseproxy_failed_handshakes_total counter\n"
    "reuseproxy_failed_handshakes_total{worker=\"0\"} 4\n"
    "# HELP reuseproxy_replays_total Salts refused as replays (also counted as failed "
    "handshakes).\n"
    "# TYPE reuseproxy_replays_total counter\n"
    "reuseproxy_replays_total{worker=\"0\"} 2\n"
    "# HELP reuseproxy_handshake_limited_total TCP connections closed at accept: their source "
    "had max_handshakes_per_source connections in the handshake.\n"
    "# TYPE reuseproxy_handshake_limited_total counter\n"
    "reuseproxy_handshake_limited_total{worker=\"0\"} 6\n"
    "# HELP reuseproxy_loops_refused_total Targets refused as this server's own listening address "
    "and port (a proxy loop; also counted as failed handshakes).\n"
    "# TYPE reuseproxy_loops_refused_total counter\n"
    "reuseproxy_loops_refused_total{worker=\"0\"} 6\n"
    "# HELP reuseproxy_local_refused_total Requests the local port refused with an answer: "
    "malformed or oversized SOCKS or HTTP requests, wrong or missing credentials, targets its ACL "
    "blocks.\n"
    "# TYPE reuseproxy_local_refused_total counter\n"
    "reuseproxy_local_refused_total{worker=\"0\"} 3\n"
    "# HELP reuseproxy_proxy_protocol_refused_total Connections refused for their PROXY protocol "
    "header: from outside proxy_protocol_from, or malformed (also counted as failed handshakes).\n"
    "# TYPE reuseproxy_proxy_protocol_refused_total counter\n"
    "reuseproxy_proxy_protocol_refused_total{worker=\"0\"} 3\n"
    "# HELP reuseproxy_shared_store_failures_total First flights the shared store (Redis) could not "
    "judge in time: down, late or an error; shared_store_failure said what happened to them.\n"
    "# TYPE reuseproxy_shared_store_failures_total counter\n"
    "reuseproxy_shared_store_failures_total{worker=\"0\"} 1\n"
    "# HELP reuseproxy_udp_dropped_total UDP datagrams dropped: bad tag, malformed or refused.\n"
    "# TYPE reuseproxy_udp_dropped_total counter\n"
    "reuseproxy_udp_dropped_total{worker=\"0\"} 9\n"
    "# HELP reuseproxy_worker_restarts_total Times this slot's worker was replaced after it died "
    "(reloads not counted).\n"
    "# TYPE reuseproxy_worker_restarts_total counter\n"
    "reuseproxy_worker_restarts_total{worker=\"0\"} 0\n"
    "# HELP reuseproxy_reloads_total Reloads that replaced this slot's worker.\n"
    "# TYPE reuseproxy_reloads_total counter\n"
    "reuseproxy_reloads_total{worker=\"0\"} 5\n"
    "# HELP reuseproxy_fork_failures_total Forks of this slot's worker that failed (each is "
    "retried with a backoff).\n"
    "# TYPE reuseproxy_fork_failures_total counter\n"
    "reuseproxy_fork_failures_total{worker=\"0\"} 6\n"
    "# HELP reuseproxy_worker_pid Process id of the worker in this slot.\n"
    "# TYPE reuseproxy_worker_pid gauge\n"
    "reuseproxy_worker_pid{worker=\"0\"} 4242\n"
    "# HELP reuseproxy_worker_stalls_total Times this slot's worker missed its heartbeat for "
    "stall_timeout_ms and new connections were steered to the others.\n"
    "# TYPE reuseproxy_worker_stalls_total counter\n"
    "reuseproxy_worker_stalls_total{worker=\"0\"} 2\n"
    "# HELP reuseproxy_worker_stalled 1 while this slot's worker is stalled and steered around, "
    "else 0.\n"
    "# TYPE reuseproxy_worker_stalled gauge\n"
    "reuseproxy_worker_stalled{worker=\"0\"} 1\n";

TEST(test_metrics_render_exact_text)
{
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    char out[8192];
    CHECK(m != NULL);
    fill_worker(&m->worker[0], 0);
    int n = metrics_render(m, out, sizeof out);
    CHECK_INT(n, strlen(expected_one_worker));
    CHECK_STR(out, expected_one_worker);
    metrics_free_shared(m);
}

/* The local roles' servers: one series each with a server label (escaped), after the workers'. */
TEST(test_metrics_render_server_series)
{
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    const char *names[] = {"127.0.0.1:8388", "[::1]:8389", "odd\"name"};
    char out[16384];
    CHECK(m != NULL);
    metrics_set_upstreams(m, names, 3);
    m->upstream[0].up = 1;
    m->upstream[0].latency_us = 1500;
    m->upstream[0].connections = 7;
    m->upstream[1].connect_failures = 2;
    m->upstream[0].udp_sent = 11;
    m->upstream[0].udp_received = 10;
    m->upstream[1].udp_associations = 3;
    m->upstream[1].udp_failovers = 1;
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "# TYPE reuseproxy_server_up gauge\n"
                      "reuseproxy_server_up{server=\"127.0.0.1:8388\"} 1\n"
                      "reuseproxy_server_up{server=\"[::1]:8389\"} 0\n"
                      "reuseproxy_server_up{server=\"odd\\\"name\"} 0\n") != NULL);
    CHECK(strstr(out, "reuseproxy_server_latency_seconds{server=\"127.0.0.1:8388\"} 0.001500\n"));
    CHECK(strstr(out, "# TYPE reuseproxy_server_connections_total counter\n"
                      "reuseproxy_server_connections_total{server=\"127.0.0.1:8388\"} 7\n"));
    CHECK(strstr(out, "reuseproxy_server_connect_failures_total{server=\"[::1]:8389\"} 2\n"));
    /* UDP per server (issue 16): datagrams each way, associations, failovers */
    CHECK(strstr(out,
                 "# TYPE reuseproxy_server_udp_datagrams_sent_total counter\n"
                 "reuseproxy_server_udp_datagrams_sent_total{server=\"127.0.0.1:8388\"} 11\n"));
    CHECK(strstr(out,
                 "reuseproxy_server_udp_datagrams_received_total{server=\"127.0.0.1:8388\"} 10\n"));
    CHECK(strstr(out, "reuseproxy_server_udp_associations_total{server=\"[::1]:8389\"} 3\n"));
    CHECK(strstr(out, "reuseproxy_server_udp_failovers_total{server=\"[::1]:8389\"} 1\n"));
    /* a new list zeroes the values; none: no server series at all */
    metrics_set_upstreams(m, names, 0);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "reuseproxy_server_") == NULL);
    metrics_free_shared(m);
}

/* Per-user series: one per worker and user, labelled worker, port and user (escaped); a user
 * kept by a sync keeps its slot and counters, a removed one's series disappear, a new one takes
 * a free slot, and names beyond the slots are left uncounted. */
TEST(test_metrics_users_series_survive_sync_and_disappear_when_removed)
{
    struct metrics_shared *m = metrics_new_shared(2, 3, 0);
    const char *first[] = {"alice", "bob \"the\" \\builder"};
    const char *second[] = {"carol", "alice", "dave", "erin"};
    int slots[4];
    char out[16384];

    CHECK(m != NULL);
    m->port = 8388;
    metrics_users_sync(m, first, NULL, 2, slots);
    CHECK_INT(slots[0], 0);
    CHECK_INT(slots[1], 1);
    metrics_add(&metrics_user_counters(m, 1)[slots[0]].bytes_in, 1234);
    metrics_add(&metrics_user_counters(m, 0)[slots[1]].connections, 7);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out,
                   "# TYPE reuseproxy_user_bytes_in_total counter\n"
                   "reuseproxy_user_bytes_in_total{worker=\"0\",port=\"8388\",user=\"alice\"} 0\n"
                   "reuseproxy_user_bytes_in_total{worker=\"0\",port=\"8388\",user=\"bob "
                   "\\\"the\\\" \\\\builder\"} 0\n"
                   "reuseproxy_user_bytes_in_total{worker=\"1\",port=\"8388\",user=\"alice\"} "
                   "1234\n");
    CHECK_CONTAINS(out, "reuseproxy_user_connections_total{worker=\"0\",port=\"8388\",user=\"bob "
                        "\\\"the\\\" \\\\builder\"} 7\n");
    /* bob goes, carol, dave and erin come: alice keeps slot 0 and her bytes; bob's slot is
     * zeroed and reused last (carol takes the slot never used); one newcomer finds none left */
    metrics_users_sync(m, second, NULL, 4, slots);
    CHECK_INT(slots[1], 0);
    CHECK_INT(slots[0], 2);
    CHECK_INT(slots[2], 1);
    CHECK_INT(slots[3], -1);
    CHECK_INT(metrics_user_counters(m, 0)[1].connections, 0);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "bob") == NULL);
    CHECK(strstr(out, "erin") == NULL);
    CHECK_CONTAINS(out, "reuseproxy_user_bytes_in_total{worker=\"1\",port=\"8388\",user=\"alice\"} "
                        "1234\n");
    CHECK_CONTAINS(out, "user=\"carol\"");
    CHECK_CONTAINS(out, "user=\"dave\"");
    /* no user slots: no user series */
    metrics_free_shared(m);
    m = metrics_new_shared(1, 0, 0);
    CHECK(metrics_user_counters(m, 0) == NULL);
    metrics_users_sync(m, first, NULL, 2, slots);
    CHECK_INT(slots[0], -1);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "user_") == NULL);
    metrics_free_shared(m);
}

/* A host's total for a user (what shared_store.c pushes to Redis) is the sum over the workers. */
TEST(test_metrics_user_total_sums_the_workers)
{
    struct metrics_shared *m = metrics_new_shared(3, 4, 0);
    const char *names[] = {"alice", "bob"};
    int slots[2];
    struct metrics_user sum;

    CHECK(m != NULL);
    metrics_users_sync(m, names, NULL, 2, slots);
    CHECK_STR(metrics_user_name(m, slots[1]), "bob");
    CHECK_STR(metrics_user_name(m, 3), "");
    CHECK_STR(metrics_user_name(m, 4), "");
    CHECK_STR(metrics_user_name(m, -1), "");
    for (int w = 0; w < 3; w++) {
        metrics_add(&metrics_user_counters(m, w)[slots[1]].bytes_out, 100u << w);
        metrics_add(&metrics_user_counters(m, w)[slots[1]].connections, 1);
    }
    metrics_add(&metrics_user_counters(m, 2)[slots[0]].connections, 5);
    metrics_user_total(m, slots[1], &sum);
    CHECK_INT(sum.bytes_out, 700);
    CHECK_INT(sum.connections, 3);
    CHECK_INT(sum.bytes_in, 0);
    metrics_user_total(m, slots[0], &sum);
    CHECK_INT(sum.connections, 5);
    metrics_user_total(m, 9, &sum);
    CHECK_INT(sum.connections, 0);
    metrics_free_shared(m);
}

/* Per-port series: one per worker and port slot; a port kept by a sync keeps its slot and
 * counters, a removed one's series disappear, and the same user name on two ports is two users,
 * each labelled with its own port. */
TEST(test_metrics_port_series_and_users_of_several_ports)
{
    struct metrics_shared *m = metrics_new_shared(2, 4, 3);
    const uint16_t first[] = {8381, 8382}, second[] = {8383, 8382};
    const char *names[] = {"alice", "alice"};
    const unsigned ports[] = {8381, 8382};
    int slots[2];
    char out[32768];

    CHECK(m != NULL);
    metrics_ports_sync(m, first, 2, slots);
    CHECK_INT(slots[0], 0);
    CHECK_INT(slots[1], 1);
    metrics_add(&metrics_port_counters(m, 1)[slots[1]].bytes_out, 99);
    metrics_add(&metrics_port_counters(m, 0)[slots[0]].failed_handshakes, 3);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out, "# TYPE reuseproxy_port_bytes_out_total counter\n"
                        "reuseproxy_port_bytes_out_total{worker=\"0\",port=\"8381\"} 0\n"
                        "reuseproxy_port_bytes_out_total{worker=\"0\",port=\"8382\"} 0\n"
                        "reuseproxy_port_bytes_out_total{worker=\"1\",port=\"8381\"} 0\n"
                        "reuseproxy_port_bytes_out_total{worker=\"1\",port=\"8382\"} 99\n");
    CHECK_CONTAINS(out, "reuseproxy_port_failed_handshakes_total{worker=\"0\",port=\"8381\"} 3\n");
    metrics_ports_sync(m, second, 2, slots);
    CHECK_INT(slots[1], 1); /* kept, with its bytes */
    CHECK_INT(slots[0], 2); /* the free slot after the last given out: 8381's comes last */
    CHECK_INT(metrics_port_counters(m, 0)[0].failed_handshakes, 0); /* 8381's, zeroed */
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "port=\"8381\"") == NULL);
    CHECK_CONTAINS(out, "reuseproxy_port_bytes_out_total{worker=\"1\",port=\"8382\"} 99\n");
    metrics_users_sync(m, names, ports, 2, slots);
    CHECK(slots[0] >= 0 && slots[1] >= 0 && slots[0] != slots[1]);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out, "reuseproxy_user_connections_total{worker=\"0\",port=\"8381\",user=\"alice\"}");
    CHECK_CONTAINS(out, "reuseproxy_user_connections_total{worker=\"0\",port=\"8382\",user=\"alice\"}");
    metrics_free_shared(m);
    m = metrics_new_shared(1, 0, 0);
    CHECK(metrics_port_counters(m, 0) == NULL);
    metrics_ports_sync(m, first, 2, slots);
    CHECK_INT(slots[0], -1);
    metrics_free_shared(m);
}

/* A removed port's slot is freed at once but given out again last (a worker may still count
 * its last bytes into it), and every slot starts at zero when given out. */
TEST(test_metrics_port_slot_reused_last_and_given_out_zeroed)
{
    struct metrics_shared *m = metrics_new_shared(2, 0, 4);
    const uint16_t a[] = {8381}, b[] = {8382}, ba[] = {8382, 8381},
                   all[] = {8382, 8381, 8383, 8384};
    int slots[4];

    CHECK(m != NULL);
    metrics_ports_sync(m, a, 1, slots);
    CHECK_INT(slots[0], 0);
    metrics_ports_sync(m, NULL, 0, slots); /* 8381 removed */
    metrics_add(&metrics_port_counters(m, 1)[0].bytes_in, 5); /* a draining session's bytes */
    metrics_ports_sync(m, b, 1, slots);
    CHECK_INT(slots[0], 1); /* not the slot just freed */
    metrics_ports_sync(m, ba, 2, slots);
    CHECK_INT(slots[0], 1);
    CHECK_INT(slots[1], 2); /* 8381 again: a new slot, at zero */
    CHECK_INT(metrics_port_counters(m, 0)[2].bytes_in + metrics_port_counters(m, 1)[2].bytes_in, 0);
    metrics_ports_sync(m, all, 4, slots);
    CHECK_INT(slots[2], 3);
    CHECK_INT(slots[3], 0); /* the freed slot, last, zeroed as it is given out */
    CHECK_INT(metrics_port_counters(m, 1)[0].bytes_in, 0);
    metrics_free_shared(m);
}

/* As for ports: a removed user's slot is given out again last (a session of theirs may still
 * count into it), every slot starts at zero when given out, and the slots above the highest
 * given out are never scanned (their pages stay untouched). */
TEST(test_metrics_user_slot_reused_last_and_given_out_zeroed)
{
    struct metrics_shared *m = metrics_new_shared(2, 4, 0);
    const char *a[] = {"alice"}, *b[] = {"bob"}, *ba[] = {"bob", "alice"},
               *all[] = {"bob", "alice", "carol", "dave"};
    int slots[4];
    char out[16384];

    CHECK(m != NULL);
    CHECK_INT(metrics_user_slots_top(m), 0);
    metrics_users_sync(m, a, NULL, 1, slots);
    CHECK_INT(slots[0], 0);
    CHECK_INT(metrics_user_slots_top(m), 1);
    metrics_users_sync(m, NULL, NULL, 0, slots);              /* alice removed */
    metrics_add(&metrics_user_counters(m, 1)[0].bytes_in, 5); /* a draining session's bytes */
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK(strstr(out, "alice") == NULL);
    metrics_users_sync(m, b, NULL, 1, slots);
    CHECK_INT(slots[0], 1); /* not the slot just freed */
    metrics_users_sync(m, ba, NULL, 2, slots);
    CHECK_INT(slots[0], 1);
    CHECK_INT(slots[1], 2); /* alice again: a new slot, at zero */
    CHECK_INT(metrics_user_counters(m, 0)[2].bytes_in + metrics_user_counters(m, 1)[2].bytes_in, 0);
    CHECK_INT(metrics_user_slots_top(m), 3);
    metrics_users_sync(m, all, NULL, 4, slots);
    CHECK_INT(slots[2], 3);
    CHECK_INT(slots[3], 0); /* the freed slot, last, zeroed as it is given out */
    CHECK_INT(metrics_user_counters(m, 1)[0].bytes_in, 0);
    CHECK_INT(metrics_user_slots_top(m), 4);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out,
                   "reuseproxy_user_bytes_in_total{worker=\"1\",port=\"0\",user=\"dave\"} 0\n");
    metrics_free_shared(m);
}

TEST(test_metrics_render_one_line_per_worker)
{
    struct metrics_shared *m = metrics_new_shared(3, 0, 0);
    char out[16384];
    CHECK(m != NULL);
    fill_worker(&m->worker[0], 0);
    fill_worker(&m->worker[2], 100);
    metrics_add(&m->worker[1].bytes_in, 18446744073709551615u);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out, "# TYPE reuseproxy_bytes_in_total counter\n"
                        "reuseproxy_bytes_in_total{worker=\"0\"} 1000\n"
                        "reuseproxy_bytes_in_total{worker=\"1\"} 18446744073709551615\n"
                        "reuseproxy_bytes_in_total{worker=\"2\"} 1100\n"
                        "# HELP reuseproxy_bytes_out_total ");
    CHECK_CONTAINS(out, "reuseproxy_worker_pid{worker=\"2\"} 4342\n");
    /* 22 fields: 2 comment lines and 3 series each. */
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK_INT(lines, 22 * 5);
    metrics_free_shared(m);
}

TEST(test_metrics_gauge_below_zero_reads_negative)
{
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    char out[8192];
    CHECK(m != NULL);
    metrics_sub(&m->worker[0].active, 1);
    metrics_add(&m->worker[0].udp_associations, 2);
    metrics_sub(&m->worker[0].udp_associations, 1);
    CHECK(metrics_render(m, out, sizeof out) > 0);
    CHECK_CONTAINS(out, "reuseproxy_active_connections{worker=\"0\"} -1\n");
    CHECK_CONTAINS(out, "reuseproxy_udp_associations{worker=\"0\"} 1\n");
    metrics_free_shared(m);
}

TEST(test_metrics_render_truncates_and_terminates)
{
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    char out[40];
    CHECK(m != NULL);
    fill_worker(&m->worker[0], 0);
    memset(out, 'x', sizeof out);
    CHECK_INT(metrics_render(m, out, sizeof out), sizeof out - 1);
    CHECK_INT(out[sizeof out - 1], '\0');
    CHECK(strncmp(out, expected_one_worker, sizeof out - 1) == 0);
    CHECK_INT(metrics_render(m, out, 1), 0);
    CHECK_INT(out[0], '\0');
    CHECK_INT(metrics_render(m, out, 0), -1);
    CHECK_INT(metrics_render(NULL, out, sizeof out), -1);
    CHECK_INT(metrics_render(m, NULL, sizeof out), -1);
    metrics_free_shared(m);
}

TEST(test_metrics_shared_is_zeroed_and_clamped)
{
    struct metrics_shared *m = metrics_new_shared(0, 0, 0);
    CHECK(m != NULL);
    CHECK_INT(m->nworkers, 1);
    CHECK_INT(metrics_read(&m->worker[0].accepted), 0);
    CHECK_INT(metrics_read(&m->worker[0].pid), 0);
    metrics_free_shared(m);
    m = metrics_new_shared(8, 0, 0);
    CHECK(m != NULL);
    CHECK_INT(m->nworkers, 8);
    CHECK_INT(metrics_read(&m->worker[7].udp_dropped), 0);
    metrics_free_shared(m);
    CHECK(metrics_new_shared(100000, 0, 0) == NULL);
    metrics_free_shared(NULL);
}

TEST(test_metrics_shared_visible_across_fork)
{
    struct metrics_shared *m = metrics_new_shared(2, 0, 0);
    CHECK(m != NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 1000; i++)
            metrics_add(&m->worker[1].accepted, 1);
        metrics_add(&m->worker[1].bytes_out, 12345);
        metrics_add(&m->worker[1].pid, (uint64_t)getpid());
        _exit(0);
    }
    for (int i = 0; i < 1000; i++)
        metrics_add(&m->worker[1].accepted, 1); /* both processes on one counter */
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT(metrics_read(&m->worker[1].accepted), 2000);
    CHECK_INT(metrics_read(&m->worker[1].bytes_out), 12345);
    CHECK_INT(metrics_read(&m->worker[1].pid), pid);
    CHECK_INT(metrics_read(&m->worker[0].accepted), 0);
    metrics_free_shared(m);
}

/* ---- The server, started the way the master starts it. */

/* A port free right now on loopback (family AF_INET or AF_INET6), or -1. */
static int free_port(int family, int type)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int port = -1, fd = socket(family, type | SOCK_CLOEXEC, 0);
    ss.ss_family = (sa_family_t)family;
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    else
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sockaddr_in6 */
    if (fd >= 0)
        close(fd);
    return port;
}

/* The master's path: a configuration naming metrics_address (loaded and validated as at
 * start-up), the socket set opening it before any worker exists, and the server adopting a
 * duplicate of it (the set keeps its own for binary upgrades). The server role is UDP only so
 * the set opens nothing else that could collide. NULL with the reason in err. */
static struct metrics_server *metrics_listen(struct ev_loop *loop, const char *address,
                                             const struct metrics_shared *m, char *err,
                                             size_t errlen)
{
    struct config c;
    struct socket_set socks;
    struct metrics_server *s = NULL;
    char json[512];

    snprintf(json, sizeof json,
             "{\"server\": \"127.0.0.1\", \"server_port\": %d, \"mode\": \"udp_only\", "
             "\"password\": \"unit-test-metrics\", \"method\": \"aes-256-gcm\", "
             "\"metrics_address\": \"%s\"}",
             free_port(AF_INET, SOCK_DGRAM), address);
    config_defaults(&c);
    if (config_load_string(&c, json, "test", err, errlen) == 0 &&
        config_validate(&c, err, errlen) == 0 &&
        sockets_open(&socks, &c, 1, BALANCE_REUSEPORT, err, errlen) == 0) {
        int fd = fcntl(socks.metrics, F_DUPFD_CLOEXEC, 3);
        s = metrics_server_adopt(loop, fd, m);
        if (!s && fd >= 0)
            close(fd);
        if (!s)
            snprintf(err, errlen, "metrics: cannot serve");
        sockets_close(&socks);
    }
    config_free(&c);
    return s;
}

struct served {
    struct ev_loop *loop;
    struct metrics_shared *m;
    struct metrics_server *s;
    int port;
    pid_t child;
    char err[256];
};

/* Starts the server and runs its loop in a child that dies with this test process. */
static int serve(struct served *sv, int nworkers, double timeout)
{
    memset(sv, 0, sizeof *sv);
    sv->loop = ev_loop_new(EVFLAG_AUTO);
    sv->m = metrics_new_shared(nworkers, 0, 0);
    if (!sv->loop || !sv->m)
        return -1;
    for (int i = 0; i < nworkers; i++)
        fill_worker(&sv->m->worker[i], (uint64_t)i * 10);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port(AF_INET, SOCK_STREAM));
    sv->s = metrics_listen(sv->loop, address, sv->m, sv->err, sizeof sv->err);
    if (!sv->s)
        return -1;
    if (timeout > 0)
        metrics_server_set_timeout(sv->s, timeout);
    sv->port = metrics_server_port(sv->s);
    sv->child = fork();
    if (sv->child < 0)
        return -1;
    if (sv->child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(20);
        ev_loop_fork(sv->loop);
        ev_run(sv->loop, 0);
        _exit(0);
    }
    return 0;
}

static void unserve(struct served *sv)
{
    kill(sv->child, SIGKILL);
    waitpid(sv->child, NULL, 0);
    metrics_server_stop(sv->s);
    metrics_free_shared(sv->m);
    ev_loop_destroy(sv->loop);
}

static int client_connect(int port)
{
    struct sockaddr_in sin;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until EOF. Returns the length (NUL-terminated in buf) or -1 on error or timeout. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0 || len + (size_t)n == cap - 1) {
            len += (size_t)n;
            buf[len] = '\0';
            return (ssize_t)len;
        }
        len += (size_t)n;
    }
}

static ssize_t http_exchange(int port, const char *req, char *resp, size_t cap)
{
    int fd = client_connect(port);
    if (fd < 0)
        return -1;
    size_t len = strlen(req);
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    ssize_t n = read_all(fd, resp, cap);
    close(fd);
    return n;
}

/* The body after the header block, or NULL. */
static const char *http_body(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

TEST(test_metrics_server_answers_get_metrics)
{
    struct served sv;
    char resp[65536], head[256], body[32768];
    CHECK(serve(&sv, 2, 0) == 0);
    CHECK(sv.port > 0);
    int blen = metrics_render(sv.m, body, sizeof body);
    CHECK(blen > 0);
    ssize_t n = http_exchange(sv.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
                              resp, sizeof resp);
    CHECK(n > 0);
    snprintf(head, sizeof head,
             "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
             "Content-Length: %d\r\nConnection: close\r\n\r\n",
             blen);
    CHECK(strncmp(resp, head, strlen(head)) == 0);
    CHECK_STR(http_body(resp), body);
    CHECK_INT(n, strlen(head) + (size_t)blen);
    CHECK_CONTAINS(resp, "reuseproxy_bytes_out_total{worker=\"1\"} 2010\n");
    /* A query string is ignored; a bare LF ends the request as well. */
    n = http_exchange(sv.port, "GET /metrics?x=1 HTTP/1.0\n\n", resp, sizeof resp);
    CHECK(n > 0);
    CHECK(strncmp(resp, "HTTP/1.0 200 OK\r\n", 17) == 0);
    unserve(&sv);
}

TEST(test_metrics_server_404_for_anything_else)
{
    struct served sv;
    char resp[4096];
    const char *reqs[] = {"GET / HTTP/1.0\r\n\r\n", "GET /metricsx HTTP/1.0\r\n\r\n",
                          "GET /metrics/ HTTP/1.0\r\n\r\n", "POST /metrics HTTP/1.0\r\n\r\n",
                          "HEAD /metrics HTTP/1.1\r\n\r\n", "get /metrics HTTP/1.0\r\n\r\n"};
    CHECK(serve(&sv, 1, 0) == 0);
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        ssize_t n = http_exchange(sv.port, reqs[i], resp, sizeof resp);
        CHECK(n > 0);
        CHECK_STR(resp, "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n");
    }
    const char *bad[] = {"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n",
                         "GET /metrics FTP/1.0\r\n\r\n", " /metrics HTTP/1.0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssize_t n = http_exchange(sv.port, bad[i], resp, sizeof resp);
        CHECK(n > 0);
        CHECK_STR(resp, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n");
    }
    unserve(&sv);
}

TEST(test_metrics_server_request_in_pieces)
{
    struct served sv;
    char resp[65536];
    CHECK(serve(&sv, 1, 0) == 0);
    int fd = client_connect(sv.port);
    CHECK(fd >= 0);
    const char *parts[] = {"GET /met", "rics HTTP/1.0\r\n", "User-Agent: t\r\n", "\r\n"};
    for (size_t i = 0; i < 4; i++) {
        CHECK(send(fd, parts[i], strlen(parts[i]), MSG_NOSIGNAL) > 0);
        usleep(30000);
    }
    CHECK(read_all(fd, resp, sizeof resp) > 0);
    close(fd);
    CHECK(strncmp(resp, "HTTP/1.0 200 OK\r\n", 17) == 0);
    CHECK_CONTAINS(resp, "reuseproxy_worker_pid{worker=\"0\"} 4242\n");
    unserve(&sv);
}

TEST(test_metrics_server_drops_silent_client_after_timeout)
{
    struct served sv;
    char buf[64];
    CHECK(serve(&sv, 1, 0.3) == 0);
    int fd = client_connect(sv.port);
    CHECK(fd >= 0);
    double start = now_mono();
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    double took = now_mono() - start;
    close(fd);
    CHECK_INT(n, 0); /* closed without an answer */
    CHECK(took >= 0.25);
    CHECK(took < 2.0);
    unserve(&sv);
}

TEST(test_metrics_server_closes_oversized_request)
{
    struct served sv;
    char junk[5000], buf[64];
    CHECK(serve(&sv, 1, 0) == 0);
    int fd = client_connect(sv.port);
    CHECK(fd >= 0);
    memset(junk, 'a', sizeof junk); /* a request line that never ends */
    snprintf(junk, 6, "GET /");
    junk[5] = 'a';
    double start = now_mono();
    send(fd, junk, sizeof junk, MSG_NOSIGNAL);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    close(fd);
    CHECK(n <= 0); /* EOF, or a reset because bytes were left unread: never an answer */
    CHECK(now_mono() - start < 2.0);
    unserve(&sv);
}

TEST(test_metrics_server_idle_clients_do_not_block_others)
{
    struct served sv;
    int idle[40];
    char resp[65536];
    CHECK(serve(&sv, 1, 0) == 0);
    for (int i = 0; i < 40; i++) {
        idle[i] = client_connect(sv.port);
        CHECK(idle[i] >= 0);
        CHECK(send(idle[i], "GET /metr", 9, MSG_NOSIGNAL) == 9);
    }
    double start = now_mono();
    ssize_t n = http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp);
    CHECK(n > 0);
    CHECK(now_mono() - start < 1.0);
    CHECK(strncmp(resp, "HTTP/1.0 200 OK\r\n", 17) == 0);
    for (int i = 0; i < 40; i++)
        close(idle[i]);
    unserve(&sv);
}

/* The table full of idle clients (issue 20 item 4: 80 idle connections used to lock scrapers out
 * for the whole timeout): each new client evicts the oldest idle one of its source, so the
 * oldest are closed, the newest stay, and a scrape is answered at once. */
TEST(test_metrics_server_full_table_evicts_oldest_idle)
{
    struct served sv;
    int idle[80];
    char resp[65536], byte;
    CHECK(serve(&sv, 1, 0) == 0);
    for (int i = 0; i < 80; i++) {
        idle[i] = client_connect(sv.port);
        CHECK(idle[i] >= 0);
    }
    double start = now_mono();
    ssize_t n = http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp);
    CHECK(n > 0);
    CHECK(now_mono() - start < 1.0);
    CHECK(strncmp(resp, "HTTP/1.0 200 OK\r\n", 17) == 0);
    CHECK(recv(idle[0], &byte, 1, 0) <= 0); /* the oldest was evicted */
    struct timeval tv = {0, 200000};
    setsockopt(idle[79], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    errno = 0;
    CHECK(recv(idle[79], &byte, 1, 0) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    for (int i = 0; i < 80; i++)
        close(idle[i]);
    unserve(&sv);
}

/* A flood of scrapes renders a few times a second, not once per scrape; a scrape after the
 * short cache lifetime sees the counters as they are now. */
TEST(test_metrics_server_reuses_rendering_briefly)
{
    struct served sv;
    char resp[65536];
    CHECK(serve(&sv, 1, 0) == 0);
    CHECK(http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_CONTAINS(resp, "reuseproxy_accepted_total{worker=\"0\"} 5\n");
    metrics_add(&sv.m->worker[0].accepted, 1);
    CHECK(http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_CONTAINS(resp, "reuseproxy_accepted_total{worker=\"0\"} 5\n");
    usleep(400000);
    CHECK(http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_CONTAINS(resp, "reuseproxy_accepted_total{worker=\"0\"} 6\n");
    unserve(&sv);
}

/* A flood of connections is accepted at a bounded rate (256 a second after a burst of 64), so
 * it cannot take the master's core (issue 20 item 4: 0.7 of a core); the rest wait in the
 * kernel's queue and are served in turn. */
TEST(test_metrics_server_accepts_at_a_bounded_rate)
{
    struct served sv;
    char resp[65536];
    CHECK(serve(&sv, 1, 0) == 0);
    int answered = 0;
    double start = now_mono();
    for (int i = 0; i < 5000 && now_mono() - start < 1.0; i++) {
        CHECK(http_exchange(sv.port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
        answered++;
    }
    /* about 64 + 256 in the second; an unbounded server answers thousands */
    CHECK(answered >= 100);
    CHECK(answered <= 600);
    unserve(&sv);
}

/* Shrinks the send buffer of the listener on port (accepted sockets inherit it), so an answer
 * cannot leave in one write whatever the host's defaults are. Returns 0 when found. */
static int shrink_listener_sndbuf(int port)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in sin = {0};
        socklen_t len = sizeof sin;
        int listening = 0, size = 4096;
        socklen_t ilen = sizeof listening;
        if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0 || sin.sin_family != AF_INET ||
            ntohs(sin.sin_port) != port ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) < 0 || !listening)
            continue;
        return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    return -1;
}

TEST(test_metrics_server_large_answer_to_slow_reader)
{
    struct served sv;
    static char resp[4u << 20], body[4u << 20];
    size_t cap = sizeof resp;
    CHECK(serve(&sv, 1000, 0) == 0); /* a body of ~800 KB against a send buffer of a few KB */
    CHECK_INT(shrink_listener_sndbuf(sv.port), 0);
    int blen = metrics_render(sv.m, body, cap);
    CHECK(blen > 500000);
    int fd = client_connect(sv.port);
    CHECK(fd >= 0);
    CHECK(send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25, MSG_NOSIGNAL) == 25);
    usleep(300000); /* the server meets a full socket buffer and must wait for EV_WRITE */
    ssize_t n = read_all(fd, resp, cap);
    close(fd);
    CHECK(n > blen);
    CHECK_STR(http_body(resp), body);
    CHECK_CONTAINS(resp, "reuseproxy_worker_pid{worker=\"999\"} 14232\n");
    unserve(&sv);
}

TEST(test_metrics_server_rejects_bad_addresses)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    char err[256];
    const char *bad[] = {"", "nonsense", "1.2.3.4", "[::1]", "::1:80", "1.2.3.4:70000",
                         "localhost:9100", "1.2.3.4:", "1.2.3.4:9x", "[1.2.3.4]:80",
                         "[::1:80", ":9100"};
    CHECK(loop && m);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK(metrics_listen(loop, bad[i], m, err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "metrics_address");
    }
    /* No socket, no counters. */
    CHECK(metrics_server_adopt(loop, -1, m) == NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(metrics_server_adopt(loop, fd, NULL) == NULL);
    close(fd);
    /* A port in use. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port(AF_INET, SOCK_STREAM));
    struct metrics_server *s = metrics_listen(loop, addr, m, err, sizeof err);
    CHECK(s != NULL);
    CHECK(metrics_listen(loop, addr, m, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot listen on 127.0.0.1:");
    CHECK_CONTAINS(err, "Address already in use");
    metrics_server_stop(s);
    CHECK_INT(metrics_server_port(NULL), -1);
    metrics_server_stop(NULL);
    metrics_free_shared(m);
    ev_loop_destroy(loop);
}

TEST(test_metrics_server_listens_on_ipv6)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct metrics_shared *m = metrics_new_shared(1, 0, 0);
    struct sockaddr_in6 sin6;
    CHECK(loop && m);
    /* Only where the host has an IPv6 loopback at all. */
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (probe >= 0)
        close(probe);
    if (have_v6) {
        char err[256], addr[64];
        int port = free_port(AF_INET6, SOCK_STREAM);
        snprintf(addr, sizeof addr, "[::1]:%d", port);
        struct metrics_server *s = metrics_listen(loop, addr, m, err, sizeof err);
        CHECK(s != NULL);
        CHECK_INT(metrics_server_port(s), port);
        metrics_server_stop(s);
    }
    metrics_free_shared(m);
    ev_loop_destroy(loop);
}
