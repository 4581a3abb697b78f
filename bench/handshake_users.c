/* handshake_users.c: CPU time of a SIP004 server's handshake (opening a request's first flight,
 * proto_sip004's open_request) with 1, 100 and 1,000 users on one port (issue 15). Users are
 * found by trial decryption of the first chunk's length, the key the client address used last
 * first: a returning client costs one try, a new client (an address the table has not seen, a
 * key at the end of the list) one try per user, the worst case. Each figure is the median of
 * rounds of per-handshake process CPU time; every handshake opens a fresh first flight (its own
 * salt) on a fresh connection state, as a worker does. Prints a table; asserts nothing.
 * Built by `make bench` (which runs it first) or `make bench/handshake_users`.
 * Usage: handshake_users [handshakes per round, default 200] */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

#define BENCH_ROUNDS 7
#define BENCH_FLIGHT_MAX 256

static double bench_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A client's first flight under key, carrying a short request, into out. */
static long bench_flight(const struct crypto_key *key, uint8_t *out, size_t cap)
{
    static const uint8_t header[] = {1, 127, 0, 0, 1, 0, 80};
    struct proto_ctx ctx = {.ops = &proto_sip004, .keys = key, .nkeys = 1, .client = true};
    struct proto_conn conn = {.ctx = &ctx};
    struct proto_dir d;
    long n = -1;

    proto_dir_init(&d);
    if (proto_sip004.seal_begin(&conn, &d) == 0)
        n = proto_sip004.seal_request(&conn, &d, header, sizeof header,
                                      (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, out, cap);
    proto_dir_free(&d);
    return n;
}

/* Microseconds of CPU per handshake, the median of BENCH_ROUNDS rounds of count handshakes by
 * the last user; returning: from one address (its key is tried first), else from a new
 * address each time. -1 when a handshake failed. */
static double bench_case(struct proto_ctx *server, int count, bool returning)
{
    const struct crypto_key *key = &server->keys[server->nkeys - 1];
    uint8_t(*flights)[BENCH_FLIGHT_MAX] = malloc((size_t)count * BENCH_FLIGHT_MAX);
    long *lens = malloc((size_t)count * sizeof *lens);
    double rounds[BENCH_ROUNDS];
    uint32_t next_addr = 0x0A000001; /* 10.0.0.1, then on */

    if (!flights || !lens)
        return -1;
    for (int r = 0; r < BENCH_ROUNDS; r++) {
        for (int i = 0; i < count; i++)
            if ((lens[i] = bench_flight(key, flights[i], BENCH_FLIGHT_MAX)) <= 0)
                return -1;
        double t0 = bench_cpu();
        for (int i = 0; i < count; i++) {
            struct sockaddr_in peer = {.sin_family = AF_INET};
            peer.sin_addr.s_addr = htonl(returning ? 0xC0000201 : next_addr++);
            struct proto_conn conn = {.ctx = server, .peer = (const struct sockaddr *)&peer};
            struct proto_dir d;
            struct proto_request req;
            proto_dir_init(&d);
            int rc = proto_sip004.open_request(&conn, &d, flights[i], (size_t)lens[i], &req);
            proto_dir_free(&d);
            if (rc != PROTO_DONE || conn.key != server->nkeys - 1)
                return -1;
        }
        rounds[r] = (bench_cpu() - t0) / count * 1e6;
    }
    free(flights);
    free(lens);
    qsort(rounds, BENCH_ROUNDS, sizeof rounds[0], bench_cmp);
    return rounds[BENCH_ROUNDS / 2];
}

int main(int argc, char **argv)
{
    static const int sizes[] = {1, 100, 1000};
    static const enum crypto_method methods[] = {CRYPTO_AES_256_GCM, CRYPTO_CHACHA20_POLY1305};
    int count = argc > 1 ? atoi(argv[1]) : 200;

    if (count < 1)
        count = 200;
    printf("SIP004 handshake CPU per connection (us, median of %d rounds of %d), users on one "
           "port found by trial decryption\n",
           BENCH_ROUNDS, count);
    printf("%-24s %6s %12s %12s %12s\n", "method", "users", "returning", "new (worst)",
           "returning/1");
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        double single = 0;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int n = sizes[s];
            struct crypto_key *keys = calloc((size_t)n, sizeof *keys);
            char pw[32];
            if (!keys)
                return 1;
            for (int i = 0; i < n; i++) {
                snprintf(pw, sizeof pw, "bench-user-%d", i);
                if (crypto_key_from_password(&keys[i], methods[m], pw) != 0)
                    return 1;
            }
            struct proto_ctx server = {.ops = &proto_sip004, .keys = keys, .nkeys = (size_t)n};
            if (proto_ctx_init(&server) != 0)
                return 1;
            /* the first figures of a run come out slow (cold caches, clock ramping up): a
             * discarded round first, so the 1-user baseline is not inflated */
            if (n == 1 && bench_case(&server, count, true) < 0)
                return 1;
            double ret = bench_case(&server, count, true);
            double worst = bench_case(&server, n >= 1000 ? count / 4 + 1 : count, false);
            if (ret < 0 || worst < 0) {
                fprintf(stderr, "handshake_users: a handshake failed\n");
                return 1;
            }
            if (n == 1)
                single = ret;
            printf("%-24s %6d %12.2f %12.2f %11.2fx\n", crypto_method_info(methods[m])->name, n,
                   ret, worst, ret / single);
            proto_ctx_free(&server);
            free(keys);
        }
    }
    return 0;
}
