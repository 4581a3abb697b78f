/* replay.c: the salt store that refuses replayed shadowsocks sessions (the AEAD spec and SIP022
 * ask servers to reject a salt seen before). One MAP_SHARED|MAP_ANONYMOUS mapping, made by the
 * master before fork, holds everything: a process-shared robust mutex, a random key, and two
 * generations of an open-addressing hash table.
 *
 * Entries are 16-byte keyed fingerprints (SipHash-2-4 with 128-bit output) of the salt, not the
 * salt itself: half the memory of 32-byte salts, and a false "replay" needs two of the remembered
 * salts to collide in 128 bits of a function keyed with a secret the attacker never sees.
 *
 * Generations (ping-pong): insert into the current table; when it holds `capacity` entries,
 * clear the other one and make it current. Lookups check both, so the `capacity` most recent
 * salts are always remembered (and at most 2 * capacity). Each table has 1.5 * capacity + 1
 * slots, so linear probing stays short (load <= 2/3) and a table always has an empty slot.
 * Memory: 2 * 16 * (1.5 * capacity + 1) bytes plus a page: 48 MiB for the default 1M.
 *
 * One lock per new session: the fingerprint is computed before taking it, and inside are only a
 * few cache-line probes. If a worker dies holding the lock, the next locker gets EOWNERDEAD;
 * every step inside is ordered so a half-done one leaves the tables usable (see replay_insert),
 * so it marks the mutex consistent and goes on. */
#include "autoconfig.h"

#include "replay.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#define REPLAY_FP_LEN 16
#define REPLAY_TABLES_OFFSET 4096 /* the header fits in one page; tables start page-aligned */

struct replay_store {
    pthread_mutex_t lock;
    uint8_t key[16];
    size_t capacity;   /* entries per generation before rotating */
    size_t slots;      /* slots per generation, > capacity */
    size_t count[2];   /* entries in each generation */
    unsigned current;  /* the generation inserted into */
    size_t mapping;    /* bytes mapped */
};

_Static_assert(sizeof(struct replay_store) <= REPLAY_TABLES_OFFSET, "header fits in a page");

/* ---- SipHash-2-4, 128-bit output (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012; the 128-bit variant xors 0xee into v1 at the start and v2 at finalization, and 0xdd into
 * v1 before the second half of the output). -------------------------------------------------- */

static uint64_t replay_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t replay_load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void replay_store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void replay_sipround(uint64_t v[4], int rounds)
{
    while (rounds--) {
        v[0] += v[1];
        v[1] = replay_rotl(v[1], 13) ^ v[0];
        v[0] = replay_rotl(v[0], 32);
        v[2] += v[3];
        v[3] = replay_rotl(v[3], 16) ^ v[2];
        v[0] += v[3];
        v[3] = replay_rotl(v[3], 21) ^ v[0];
        v[2] += v[1];
        v[1] = replay_rotl(v[1], 17) ^ v[2];
        v[2] = replay_rotl(v[2], 32);
    }
}

void replay_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16])
{
    uint64_t k0 = replay_load_le64(key), k1 = replay_load_le64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL ^ 0xee,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t whole = len - len % 8;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = replay_load_le64(msg + i);
        v[3] ^= m;
        replay_sipround(v, 2);
        v[0] ^= m;
    }
    /* Last block: the remaining bytes, little-endian, with len mod 256 in the top byte. */
    uint64_t b = (uint64_t)(len & 0xff) << 56;
    for (size_t i = len % 8; i > 0; i--)
        b |= (uint64_t)msg[whole + i - 1] << (8 * (i - 1));
    v[3] ^= b;
    replay_sipround(v, 2);
    v[0] ^= b;
    v[2] ^= 0xee;
    replay_sipround(v, 4);
    replay_store_le64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
    v[1] ^= 0xdd;
    replay_sipround(v, 4);
    replay_store_le64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
}

/* ---- The store ---------------------------------------------------------------------------- */

static uint8_t *replay_table(struct replay_store *r, unsigned gen)
{
    return (uint8_t *)r + REPLAY_TABLES_OFFSET + (size_t)gen * r->slots * REPLAY_FP_LEN;
}

static int replay_random_key(uint8_t *key, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(key + got, len - got, 0);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            got += (size_t)n;
    }
    return 0;
}

static int replay_init_lock(pthread_mutex_t *lock)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        /* SHARED: the mutex lives in memory every worker maps. ROBUST: a worker killed while
         * holding it must not stall the others forever. */
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (rc == 0)
            rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        if (rc == 0)
            rc = pthread_mutex_init(lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0)
        errno = rc;
    return rc == 0 ? 0 : -1;
}

struct replay_store *replay_new_shared(size_t capacity)
{
    if (capacity == 0 || capacity > SIZE_MAX / 4 / REPLAY_FP_LEN / 2) {
        errno = EINVAL;
        return NULL;
    }
    size_t slots = capacity + capacity / 2 + 1;
    size_t size = REPLAY_TABLES_OFFSET + 2 * slots * REPLAY_FP_LEN;
    /* MAP_ANONYMOUS memory is zero-filled: every slot starts empty (an all-zero fingerprint). */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct replay_store *r = p;
    r->capacity = capacity;
    r->slots = slots;
    r->mapping = size;
    /* A fresh random key per store: which slot a salt lands in cannot be predicted, so clients
     * cannot aim salts at one probe chain to slow every lookup down. */
    if (replay_random_key(r->key, sizeof r->key) < 0 || replay_init_lock(&r->lock) < 0) {
        int saved = errno;
        munmap(p, size);
        errno = saved;
        return NULL;
    }
    return r;
}

void replay_free(struct replay_store *r)
{
    /* No pthread_mutex_destroy: other processes may still hold the mapping and use the mutex;
     * the last munmap releases it. */
    if (r)
        munmap(r, r->mapping);
}

size_t replay_memory(const struct replay_store *r)
{
    return r->mapping;
}

static int replay_lock(struct replay_store *r)
{
    int rc = pthread_mutex_lock(&r->lock);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&r->lock);
    return rc == 0 ? 0 : -1;
}

int replay_test_hold_lock(struct replay_store *r)
{
    return replay_lock(r);
}

/* Looks fp up in one generation. Returns 1 if present; else 0 with *empty at the slot where
 * probing stopped, or SIZE_MAX if the table has no empty slot (possible only after workers died
 * mid-insert and left the count short). */
static int replay_probe(struct replay_store *r, unsigned gen, const uint8_t *fp, uint64_t hash,
                        size_t *empty)
{
    static const uint8_t zero[REPLAY_FP_LEN];
    const uint8_t *table = replay_table(r, gen);
    /* hash * slots / 2^64 maps the hash onto [0, slots) without a division. */
    size_t i = (size_t)(((unsigned __int128)hash * r->slots) >> 64);

    for (size_t n = 0; n < r->slots; n++) {
        const uint8_t *slot = table + i * REPLAY_FP_LEN;
        if (memcmp(slot, fp, REPLAY_FP_LEN) == 0)
            return 1;
        if (memcmp(slot, zero, REPLAY_FP_LEN) == 0) {
            *empty = i;
            return 0;
        }
        if (++i == r->slots)
            i = 0;
    }
    *empty = SIZE_MAX;
    return 0;
}

/* Makes the other generation current, emptied. The order matters if the process dies here: the
 * table is cleared before its count, and the count before the switch, so an interrupted rotation
 * leaves the current generation full and the next insert simply rotates again. The signal fences
 * keep the compiler from reordering those stores. */
static void replay_rotate(struct replay_store *r)
{
    unsigned other = r->current ^ 1;
    memset(replay_table(r, other), 0, r->slots * REPLAY_FP_LEN);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    r->count[other] = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    r->current = other;
}

/* Records fp in the current generation (the lock held, fp known absent from both). The slot is
 * written before the count: a death in between leaves one entry uncounted, which the spare slots
 * absorb. */
static void replay_insert(struct replay_store *r, const uint8_t *fp, size_t empty)
{
    if (empty == SIZE_MAX) {
        replay_rotate(r);
        replay_probe(r, r->current, fp, replay_load_le64(fp), &empty);
    }
    memcpy(replay_table(r, r->current) + empty * REPLAY_FP_LEN, fp, REPLAY_FP_LEN);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (++r->count[r->current] >= r->capacity)
        replay_rotate(r);
}

int replay_check_and_add(struct replay_store *r, const uint8_t *salt, size_t len)
{
    uint8_t fp[REPLAY_FP_LEN];
    size_t empty;

    replay_siphash128(r->key, salt, len, fp);
    /* All zeros marks an empty slot; give that one fingerprint (chance 2^-128) another value. */
    static const uint8_t zero[REPLAY_FP_LEN];
    if (memcmp(fp, zero, REPLAY_FP_LEN) == 0)
        fp[0] = 1;
    uint64_t hash = replay_load_le64(fp);

    if (replay_lock(r) < 0)
        return -1;
    /* An empty older generation (until the first rotation) is not looked at: in a shared
     * mapping even reading a page makes it resident, and it could hold nothing. */
    int seen = (r->count[r->current ^ 1] > 0 && replay_probe(r, r->current ^ 1, fp, hash, &empty)) ||
               replay_probe(r, r->current, fp, hash, &empty);
    if (!seen)
        replay_insert(r, fp, empty);
    pthread_mutex_unlock(&r->lock);
    return seen;
}
