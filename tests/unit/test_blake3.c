/* test_blake3.c: BLAKE3 derive_key and hash against the official test vectors (every case, 0 to
 * 102400 input bytes, the full 131-byte extended output and its prefixes), and derive_key
 * against Debian's b3sum, an independent implementation, when it is installed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "blake3.h"
#include "unit.h"

#include "blake3_vectors.h"

#define VECTOR_COUNT (sizeof blake3_vectors / sizeof blake3_vectors[0])
#define VECTOR_OUT 131
#define VECTOR_MAX_INPUT 102400

/* The vectors' input: 0, 1, ..., 250, 0, 1, ... */
static uint8_t *vector_input(size_t len)
{
    uint8_t *in = malloc(len ? len : 1);
    for (size_t i = 0; in && i < len; i++)
        in[i] = (uint8_t)(i % 251);
    return in;
}

TEST(test_blake3_derive_key_official_vectors)
{
    uint8_t *in = vector_input(VECTOR_MAX_INPUT);
    uint8_t want[VECTOR_OUT], got[VECTOR_OUT];

    CHECK(in != NULL);
    CHECK_INT(VECTOR_COUNT, 35);
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        const struct blake3_vector *v = &blake3_vectors[i];
        CHECK(v->input_len <= VECTOR_MAX_INPUT);
        CHECK_INT(unit_hex(v->derive_key, want, sizeof want), VECTOR_OUT);
        blake3_derive_key(BLAKE3_VECTOR_CONTEXT, in, v->input_len, got, sizeof got);
        if (memcmp(got, want, sizeof want) != 0)
            unit_fail(__FILE__, __LINE__, "derive_key differs for input_len %zu", v->input_len);
        /* The default length, and a short output, are prefixes of the extended one. */
        memset(got, 0, sizeof got);
        blake3_derive_key(BLAKE3_VECTOR_CONTEXT, in, v->input_len, got, BLAKE3_OUT_LEN);
        CHECK_MEM(got, want, BLAKE3_OUT_LEN);
        CHECK_INT(got[BLAKE3_OUT_LEN], 0);
    }
    free(in);
}

TEST(test_blake3_hash_official_vectors)
{
    uint8_t *in = vector_input(VECTOR_MAX_INPUT);
    uint8_t want[VECTOR_OUT], got[VECTOR_OUT];

    CHECK(in != NULL);
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        const struct blake3_vector *v = &blake3_vectors[i];
        CHECK_INT(unit_hex(v->hash, want, sizeof want), VECTOR_OUT);
        blake3_hash(in, v->input_len, got, sizeof got);
        if (memcmp(got, want, sizeof want) != 0)
            unit_fail(__FILE__, __LINE__, "hash differs for input_len %zu", v->input_len);
        blake3_hash(in, v->input_len, got, 16);
        CHECK_MEM(got, want, 16);
    }
    free(in);
}

/* The output depends on every input byte and on the context: one flipped bit anywhere, in any
 * chunk of a multi-chunk tree, changes it. */
TEST(test_blake3_derive_key_depends_on_every_byte)
{
    uint8_t *in = vector_input(3000);
    uint8_t base[32], got[32];

    CHECK(in != NULL);
    blake3_derive_key("ctx", in, 3000, base, sizeof base);
    for (size_t pos = 0; pos < 3000; pos += 97) {
        in[pos] ^= 0x01;
        blake3_derive_key("ctx", in, 3000, got, sizeof got);
        in[pos] ^= 0x01;
        CHECK(memcmp(got, base, sizeof got) != 0);
    }
    blake3_derive_key("ctx2", in, 3000, got, sizeof got);
    CHECK(memcmp(got, base, sizeof got) != 0);
    blake3_derive_key("ctx", in, 3000, got, sizeof got);
    CHECK_MEM(got, base, sizeof got);
    free(in);
}

/* Runs `b3sum --derive-key CONTEXT --no-names -l OUTLEN FILE`; returns 0 with its hex output in
 * hex, or -1. */
static int b3sum_derive(const char *context, const char *file, size_t outlen, char *hex, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "b3sum --derive-key '%s' --no-names -l %zu '%s' 2>/dev/null", context,
             outlen, file);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int ok = fgets(hex, (int)cap, p) != NULL;
    int status = pclose(p);
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    hex[strcspn(hex, "\n")] = '\0';
    return 0;
}

static int have_b3sum(void)
{
    int status = system("b3sum --version >/dev/null 2>&1");
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Lengths around every boundary: block (64), chunk (1024), a two-level tree; and the SIP022
 * shapes: 32 + 32 (AES-256 key || salt) and 16 + 16, 32 + 8 (UDP session id). */
TEST(test_blake3_derive_key_matches_b3sum)
{
    static const size_t lens[] = {0, 1, 32, 40, 63, 64, 65, 1023, 1024, 1025, 2048, 5121, 31744};
    static const char *const contexts[] = {"shadowsocks 2022 session subkey",
                                           "shadowsocks 2022 identity subkey"};
    uint8_t *in = vector_input(31744);
    char hex[2 * 64 + 2], path[256];
    uint8_t want[64], got[64];

    if (!have_b3sum())
        SKIP("b3sum not installed (Debian package b3sum)");
    CHECK(in != NULL);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        snprintf(path, sizeof path, "%s/b3in", unit_tmpdir());
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        CHECK_INT(fwrite(in, 1, lens[i], f), lens[i]);
        CHECK_INT(fclose(f), 0);
        for (size_t c = 0; c < 2; c++) {
            CHECK_INT(b3sum_derive(contexts[c], path, sizeof want, hex, sizeof hex), 0);
            CHECK_INT(unit_hex(hex, want, sizeof want), sizeof want);
            blake3_derive_key(contexts[c], in, lens[i], got, sizeof got);
            if (memcmp(got, want, sizeof want) != 0)
                unit_fail(__FILE__, __LINE__, "differs from b3sum for %zu bytes", lens[i]);
        }
    }
    free(in);
}
