/* fuzz.h: what the fuzz targets share. Each tests/fuzz/fuzz_*.c defines the libFuzzer entry
 * point LLVMFuzzerTestOneInput() over one parser; the same object links either with libFuzzer
 * (tests/fuzz/run-fuzz, clang -fsanitize=fuzzer) or with replay.c, which `make check` uses to run
 * every file of the target's corpus through it without libFuzzer.
 *
 * A target checks more than "does not crash": each states what the parser promises (consumed
 * counts within the input, results that do not depend on how the bytes were split, round trips
 * through the matching writer) and aborts through FUZZ_CHECK when a promise is broken, so
 * libFuzzer and the replay driver both report it. */
#ifndef RP_FUZZ_H
#define RP_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): it must hold in every build, NDEBUG or not. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input read from the front, one field at a time; reads past the end give zeros, so a
 * short input is still a valid (if dull) one. */
struct fuzz_input {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline unsigned fuzz_u16(struct fuzz_input *in)
{
    unsigned hi = fuzz_u8(in);
    return hi << 8 | fuzz_u8(in);
}

/* A heap copy of exactly n bytes (at least one byte is allocated), so AddressSanitizer sees a
 * read one byte past the end of the input. Aborts when memory is exhausted. */
static inline uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    FUZZ_CHECK(q != NULL);
    for (size_t i = 0; i < n; i++)
        q[i] = p[i];
    return q;
}

#endif
