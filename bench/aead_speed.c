/* aead_speed.c: throughput of the bulk AEAD backend, one method at a time. Seals (and opens)
 * 16383-byte buffers in place, the largest SIP004 chunk payload, for about a second each and
 * prints MB/s (10^6 bytes per second). Standalone; build it from the top of the tree with
 *
 *     gcc -O2 -Iinclude bench/aead_speed.c src/crypto*.c -lmbedcrypto -lcrypto
 *
 * adding -DRP_CRYPTO_OPENSSL to measure the OpenSSL backend (crypto.c picks the backend).
 * bench/run links it instead against each build's own librp.a (cc -Iinclude -IBUILD
 * bench/aead_speed.c BUILD/librp.a LIBS), so it measures exactly what that binary runs, and
 * reads its table for the ceilings of docs/BENCHMARKS.md.
 * Usage: aead_speed [seconds per method, default 1]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "crypto.h"

#define BENCH_CHUNK 16383

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs seal (open = 0) or open (open = 1) until `seconds` have passed; returns MB/s, or a
 * negative value on a crypto failure. Seal works in place on buf with a new nonce each time, as
 * a relay does. Open decrypts one sealed buffer into buf again and again: the ciphertext must
 * stay intact for its tag to verify every time. */
static double bench_run(struct crypto_aead *a, uint8_t *buf, double seconds, int open)
{
    static uint8_t sealed[BENCH_CHUNK], sealed_tag[CRYPTO_TAG_LEN];
    uint8_t nonce[CRYPTO_NONCE_LEN] = {0}, tag[CRYPTO_TAG_LEN];
    unsigned long long bytes = 0;
    double start = bench_now(), elapsed;

    if (open && crypto_aead_seal(a, nonce, buf, BENCH_CHUNK, sealed, sealed_tag) != 0)
        return -1;
    do {
        for (int i = 0; i < 64; i++) {
            int ret;
            if (open) {
                ret = crypto_aead_open(a, nonce, sealed, BENCH_CHUNK, buf, sealed_tag);
            } else {
                ret = crypto_aead_seal(a, nonce, buf, BENCH_CHUNK, buf, tag);
                crypto_nonce_increment(nonce);
            }
            if (ret != 0)
                return -1;
            bytes += BENCH_CHUNK;
        }
        elapsed = bench_now() - start;
    } while (elapsed < seconds);
    return (double)bytes / elapsed / 1e6;
}

int main(int argc, char **argv)
{
    static uint8_t buf[BENCH_CHUNK];
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    uint8_t key[CRYPTO_MAX_KEY];

    if (seconds <= 0) {
        fprintf(stderr, "usage: %s [seconds per method]\n", argv[0]);
        return 2;
    }
    if (crypto_random(key, sizeof key) != 0 || crypto_random(buf, sizeof buf) != 0) {
        fprintf(stderr, "getrandom failed\n");
        return 1;
    }
    printf("backend: %s (%s), chunk %d bytes\n", crypto_backend_name(), crypto_backend_version(),
           BENCH_CHUNK);
    printf("%-24s %12s %12s\n", "method", "seal MB/s", "open MB/s");
    for (int m = 0; m < CRYPTO_METHOD_COUNT; m++) {
        const struct crypto_method_info *info = crypto_method_info((enum crypto_method)m);
        struct crypto_aead *a = crypto_aead_new((enum crypto_method)m, key);
        if (!a) {
            fprintf(stderr, "%s: cannot create the AEAD context\n", info->name);
            return 1;
        }
        double seal = bench_run(a, buf, seconds, 0);
        double open = bench_run(a, buf, seconds, 1);
        crypto_aead_free(a);
        if (seal < 0 || open < 0) {
            fprintf(stderr, "%s: AEAD failure\n", info->name);
            return 1;
        }
        printf("%-24s %12.1f %12.1f\n", info->name, seal, open);
    }
    return 0;
}
