/* replay.c: the salt store that refuses replayed shadowsocks sessions (the AEAD spec and SIP022
 * ask servers to reject a salt seen before). One shared mapping, backed by a memfd so a binary
 * upgrade can hand it over, holds a header (magic, version, layout, a random key) and two
 * regions (TCP, UDP), each a table of buckets of 64-bit slots. There is no lock: every change is
 * one compare-and-swap on one slot, so a process stopped anywhere inside never blocks another.
 *
 * Fingerprints. A salt is hashed with SipHash-2-4 (128-bit output) under the store's key: 64
 * bits choose its two buckets, 46 bits are kept in the slot. A false "replay" needs one of the
 * 16 slots looked at to hold the same 46 bits: about 2^-42 per check, and the key (never seen by
 * a client) keeps anyone from aiming salts at a bucket.
 *
 * Slot (64 bits): epoch (16) | state (2) | fingerprint (46); all zero: never used. States:
 * PENDING (claimed, its owner deciding), CONFIRMED (recorded), KILLED (a duplicate that lost).
 *
 * Epochs instead of rotation. Each region counts the salts it has recorded; epoch = count /
 * capacity + 1. A PENDING or CONFIRMED slot is live while its epoch is at most one behind the
 * current one (so for at least `capacity` recordings after it); any other slot is free to take.
 * Nothing is ever cleared: old entries simply stop counting.
 *
 * Exactly one winner. Each check looks at 16 slots in a fixed order (bucket 1, then 2). It takes
 * the first free slot with a PENDING copy of its fingerprint, then looks again: a CONFIRMED copy
 * or a PENDING copy earlier in the order means it lost; a PENDING copy later in the order is
 * KILLED by CAS (if that fails the copy got CONFIRMED first, and it lost). Finally it CASes its
 * own copy to CONFIRMED; failing means it was killed. Of two racers the later writer sees the
 * earlier one's copy, so at most one confirms, and the earliest copy's owner loses to nobody, so
 * one does. Readers count a PENDING copy as seen: its owner or its killer will accept.
 *
 * Sizing: 4 slots per salt of capacity (live entries <= 2 * capacity, so at most half full) in
 * buckets of 8 slots, one cache line each. A salt whose 16 slots are all live is refused (-1). */
#include "autoconfig.h"

#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_assert.h"

#define REPLAY_MAGIC 0x31594c5045525052ULL /* "RPREPLY1" little-endian */
#define REPLAY_VERSION 1u
#define REPLAY_HEADER_SIZE 4096u /* the header fits in one page; tables start page-aligned */
#define REPLAY_BUCKET_SLOTS 8u   /* 8 * 8 bytes: one cache line */
#define REPLAY_MIN_BUCKETS 64u
#define REPLAY_PROBES ((int)(2 * REPLAY_BUCKET_SLOTS))
#define REPLAY_MAX_CLAIMS 64 /* lost claim races before giving up (refusing) */
#define REPLAY_EPOCH_LAG 1024

#define SLOT_FP_BITS 46
#define SLOT_FP_MASK ((UINT64_C(1) << SLOT_FP_BITS) - 1)
#define SLOT_STATE(w) (((w) >> SLOT_FP_BITS) & 3u)
#define SLOT_EPOCH(w) ((uint16_t)((w) >> 48))
#define SLOT_MAKE(epoch, state, fp)                                                                \
    (((uint64_t)(uint16_t)(epoch) << 48) | ((uint64_t)(state) << SLOT_FP_BITS) | (fp))

enum { SLOT_PENDING = 1, SLOT_CONFIRMED = 2, SLOT_KILLED = 3 };

/* The shared part of a region: written at creation, except `recorded`. */
struct replay_region_header {
    uint64_t capacity;
    uint64_t buckets;
    uint64_t offset;   /* of the table, from the start of the mapping */
    uint64_t recorded; /* salts confirmed so far (atomic); the epoch derives from it */
};

struct replay_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t mapping; /* bytes */
    uint8_t key[16];
    struct replay_region_header region[2];
};

_Static_assert(sizeof(struct replay_header) <= REPLAY_HEADER_SIZE, "header fits in a page");

/* This process's view: the layout copied out of the header once it was checked. */
struct replay_store {
    struct replay_header *h;
    size_t mapping;
    int fd;
    struct {
        uint64_t *table;
        uint64_t capacity, buckets;
        uint64_t *recorded;
    } region[2];
};

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

/* ---- Layout, creation, hand-over ---------------------------------------------------------- */

static uint64_t replay_buckets(size_t capacity)
{
    uint64_t b = ((uint64_t)capacity + 1) / 2; /* 4 slots per salt, 8 slots per bucket */
    return b < REPLAY_MIN_BUCKETS ? REPLAY_MIN_BUCKETS : b;
}

/* Fills h's layout for capacity; returns the mapping size, or 0 if capacity is out of range. */
static size_t replay_layout(struct replay_header *h, size_t capacity)
{
    if (capacity == 0 || capacity > ((size_t)1 << 32))
        return 0;
    uint64_t at = REPLAY_HEADER_SIZE;
    for (int k = 0; k < 2; k++) {
        h->region[k].capacity = capacity;
        h->region[k].buckets = replay_buckets(capacity);
        h->region[k].offset = at;
        at += h->region[k].buckets * REPLAY_BUCKET_SLOTS * sizeof(uint64_t);
    }
    h->magic = REPLAY_MAGIC;
    h->version = REPLAY_VERSION;
    h->header_size = REPLAY_HEADER_SIZE;
    h->mapping = at;
    return at > SIZE_MAX ? 0 : (size_t)at;
}

static struct replay_store *replay_view(void *p, size_t mapping, int fd)
{
    struct replay_store *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = p;
    r->mapping = mapping;
    r->fd = fd;
    for (int k = 0; k < 2; k++) {
        r->region[k].table = (uint64_t *)((uint8_t *)p + r->h->region[k].offset);
        r->region[k].capacity = r->h->region[k].capacity;
        r->region[k].buckets = r->h->region[k].buckets;
        r->region[k].recorded = &r->h->region[k].recorded;
    }
    return r;
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

/* A memfd sized for the store, or -1 with errno. Close-on-exec: only a binary upgrade clears it,
 * for the one exec that should inherit it. */
static int replay_memfd(size_t size)
{
#ifdef MFD_CLOEXEC
    int fd = memfd_create("reuseproxy-replay", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
#else
    (void)size;
    errno = ENOSYS;
    return -1;
#endif
}

struct replay_store *replay_new_shared(size_t capacity)
{
    struct replay_header want = {0};
    size_t size = replay_layout(&want, capacity);
    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Without memfd (not Linux) the store still works, it just cannot be handed over. */
    int fd = replay_memfd(size);
    if (fd < 0 && errno != ENOSYS)
        return NULL;
    /* Fresh memory is zero-filled: every slot starts never used. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, fd, 0);
    if (p != MAP_FAILED)
        *(struct replay_header *)p = want;
    struct replay_store *r = p == MAP_FAILED ? NULL : replay_view(p, size, fd);
    /* A fresh random key per store: which slots a salt lands in cannot be predicted, so clients
     * cannot aim salts at one bucket to fill it. */
    if (!r || replay_random_key(r->h->key, sizeof r->h->key) < 0) {
        int saved = errno;
        if (p != MAP_FAILED)
            munmap(p, size);
        if (fd >= 0)
            close(fd);
        free(r);
        errno = saved;
        return NULL;
    }
    return r;
}

struct replay_store *replay_attach(int fd, size_t capacity, char *err, size_t errlen)
{
    struct replay_header want = {0}, got;
    size_t size = replay_layout(&want, capacity);
    struct stat st;

    if (size == 0 || fstat(fd, &st) < 0 || pread(fd, &got, sizeof got, 0) != (ssize_t)sizeof got) {
        snprintf(err, errlen, "replay store fd %d: cannot read its header", fd);
        return NULL;
    }
    if (got.magic != REPLAY_MAGIC || got.version != REPLAY_VERSION) {
        snprintf(err, errlen, "replay store fd %d: not a version %u replay store", fd,
                 REPLAY_VERSION);
        return NULL;
    }
    /* The layout must be exactly the one this configuration asks for: a store made for another
     * capacity would keep the wrong window (or be read past its end). */
    bool same = got.header_size == want.header_size && got.mapping == want.mapping &&
                (uint64_t)st.st_size == want.mapping;
    for (int k = 0; k < 2; k++)
        same = same && got.region[k].capacity == want.region[k].capacity &&
               got.region[k].buckets == want.region[k].buckets &&
               got.region[k].offset == want.region[k].offset;
    if (!same) {
        snprintf(err, errlen,
                 "replay store fd %d: made for capacity %llu, this configuration asks for %zu", fd,
                 (unsigned long long)got.region[0].capacity, capacity);
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct replay_store *r = p == MAP_FAILED ? NULL : replay_view(p, size, fd);
    if (!r || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "replay store fd %d: %s", fd, strerror(errno));
        if (p != MAP_FAILED)
            munmap(p, size);
        free(r);
        return NULL;
    }
    return r;
}

int replay_fd(const struct replay_store *r)
{
    return r->fd;
}

void replay_free(struct replay_store *r)
{
    if (!r)
        return;
    munmap(r->h, r->mapping);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

size_t replay_memory(const struct replay_store *r)
{
    return r->mapping;
}

/* A salt lands on a random bucket, so until every page of the table has been touched nearly
 * every check takes a page fault in each process (fork does not copy a shared mapping's page
 * tables): about 6 us per check over a fresh store's first 100,000 salts on the machine of
 * docs/BENCHMARKS.md against 0.3-1 us once mapped. MADV_POPULATE_WRITE (Linux 5.14) takes the
 * faults in one call instead; the memory is the store's fixed size either way, which it reaches
 * after a few hundred thousand salts. */
void replay_prefault(struct replay_store *r)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    if (r)
        (void)madvise(r->h, r->mapping, MADV_POPULATE_WRITE);
}

/* ---- Check and add ------------------------------------------------------------------------ */

/* One salt's place in a region: its fingerprint, the 16 slots it may use, the epoch it saw. */
struct replay_probe {
    uint64_t *slot[REPLAY_PROBES];
    uint64_t fp;
    uint64_t capacity;
    uint64_t *recorded;
    uint16_t epoch;
};

static uint16_t replay_epoch(const struct replay_probe *q)
{
    return (uint16_t)(__atomic_load_n(q->recorded, __ATOMIC_SEQ_CST) / q->capacity + 1);
}

/* Live: PENDING or CONFIRMED, and at most one epoch old. An epoch a little ahead of ours is live
 * too: another process saw the count move after we read it. No entry is ever ahead of the true
 * epoch, and the epoch is read afresh before every claim, so "a little" (REPLAY_EPOCH_LAG) only
 * has to cover the few instructions between that read and the CAS; any further "ahead" is an
 * entry 2^16 epochs old whose epoch wrapped. */
static bool replay_live(uint64_t w, uint16_t epoch)
{
    unsigned st = SLOT_STATE(w);
    uint16_t age = (uint16_t)(epoch - SLOT_EPOCH(w));
    return (st == SLOT_PENDING || st == SLOT_CONFIRMED) &&
           (age <= 1 || age > UINT16_MAX - REPLAY_EPOCH_LAG);
}

static bool replay_same(uint64_t w, const struct replay_probe *q)
{
    return (w & SLOT_FP_MASK) == q->fp && replay_live(w, q->epoch);
}

static void replay_locate(struct replay_store *r, enum replay_kind kind, const uint8_t *salt,
                          size_t len, struct replay_probe *q)
{
    uint8_t h[16];
    RP_ASSERT(kind == REPLAY_TCP || kind == REPLAY_UDP);
    replay_siphash128(r->h->key, salt, len, h);
    uint64_t where = replay_load_le64(h + 8), buckets = r->region[kind].buckets;
    /* x * n / 2^64 maps x onto [0, n) without a division; the halves of `where` pick the two
     * buckets independently. */
    uint64_t b1 = (uint64_t)(((unsigned __int128)where * buckets) >> 64);
    uint64_t b2 = (uint64_t)(((unsigned __int128)replay_rotl(where, 32) * buckets) >> 64);
    if (b2 == b1)
        b2 = (b1 + 1) % buckets;
    for (unsigned i = 0; i < REPLAY_BUCKET_SLOTS; i++) {
        q->slot[i] = r->region[kind].table + b1 * REPLAY_BUCKET_SLOTS + i;
        q->slot[REPLAY_BUCKET_SLOTS + i] = r->region[kind].table + b2 * REPLAY_BUCKET_SLOTS + i;
    }
    q->fp = replay_load_le64(h) & SLOT_FP_MASK;
    q->capacity = r->region[kind].capacity;
    q->recorded = r->region[kind].recorded;
}

static bool replay_cas(uint64_t *slot, uint64_t *expect, uint64_t value)
{
    return __atomic_compare_exchange_n(slot, expect, value, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

/* Picks the slot to claim: the first free one of the bucket with fewer live entries. Choosing
 * the emptier of two buckets (not simply the first with room) keeps the fullest bucket close to
 * the average, so a bucket pair with no free slot is out of reach at half load. Returns the index,
 * -2 if the salt is there already (seen), or -1 if all 16 slots are live. */
static int replay_choose(const struct replay_probe *q, uint64_t *free_w)
{
    int live[2] = {0, 0}, free_at[2] = {-1, -1};
    uint64_t w[REPLAY_PROBES];
    for (int i = 0; i < REPLAY_PROBES; i++) {
        int b = i / (int)REPLAY_BUCKET_SLOTS;
        w[i] = __atomic_load_n(q->slot[i], __ATOMIC_SEQ_CST);
        if (replay_same(w[i], q))
            return -2;
        if (replay_live(w[i], q->epoch))
            live[b]++;
        else if (free_at[b] < 0)
            free_at[b] = i;
    }
    int pick = free_at[1] >= 0 && (free_at[0] < 0 || live[1] < live[0]) ? free_at[1] : free_at[0];
    if (pick >= 0)
        *free_w = w[pick];
    return pick;
}

/* Claims a slot for q with a PENDING copy. Returns its index, -2 if the salt is there already
 * (seen), or -1 if every slot is live or the claim kept losing races. */
static int replay_claim(struct replay_probe *q)
{
    for (int attempt = 0; attempt < REPLAY_MAX_CLAIMS; attempt++) {
        uint64_t free_w = 0;
        q->epoch = replay_epoch(q);
        int at = replay_choose(q, &free_w);
        if (at < 0)
            return at;
        if (replay_cas(q->slot[at], &free_w, SLOT_MAKE(q->epoch, SLOT_PENDING, q->fp)))
            return at;
        /* Someone took the slot between the look and the CAS: look again (it may be this very
         * salt, now seen). Each failure is another process's success, so this is lock-free. */
    }
    return -1;
}

/* Decides the race for the copy at mine (see the top of the file). Returns true if it won. */
static bool replay_settle(struct replay_probe *q, int mine)
{
    for (int i = 0; i < REPLAY_PROBES; i++) {
        uint64_t w = __atomic_load_n(q->slot[i], __ATOMIC_SEQ_CST);
        if (i == mine || !replay_same(w, q))
            continue;
        if (SLOT_STATE(w) == SLOT_CONFIRMED || i < mine)
            return false;
        uint64_t killed =
            (w & ~(UINT64_C(3) << SLOT_FP_BITS)) | ((uint64_t)SLOT_KILLED << SLOT_FP_BITS);
        /* w is a later PENDING copy. A failed CAS reloads w: confirmed meanwhile means it won;
         * killed or reused by someone else means it is out of the way. */
        if (!replay_cas(q->slot[i], &w, killed) && SLOT_STATE(w) == SLOT_CONFIRMED &&
            (w & SLOT_FP_MASK) == q->fp)
            return false;
    }
    uint64_t pending = SLOT_MAKE(q->epoch, SLOT_PENDING, q->fp);
    return replay_cas(q->slot[mine], &pending, SLOT_MAKE(q->epoch, SLOT_CONFIRMED, q->fp));
}

/* Counts the salt, and moves its entry to the epoch of its count if that moved since the claim
 * (a process paused in between must not record the salt in an epoch about to expire). */
static void replay_count(struct replay_probe *q, int mine)
{
    uint64_t n = __atomic_fetch_add(q->recorded, 1, __ATOMIC_SEQ_CST);
    uint16_t epoch = (uint16_t)(n / q->capacity + 1);
    uint64_t confirmed = SLOT_MAKE(q->epoch, SLOT_CONFIRMED, q->fp);
    if (epoch != q->epoch)
        replay_cas(q->slot[mine], &confirmed, SLOT_MAKE(epoch, SLOT_CONFIRMED, q->fp));
}

int replay_check_and_add(struct replay_store *r, enum replay_kind kind, const uint8_t *salt,
                         size_t len)
{
    struct replay_probe q;
    replay_locate(r, kind, salt, len, &q);
    int mine = replay_claim(&q);
    if (mine < 0)
        return mine == -2 ? 1 : -1;
    if (!replay_settle(&q, mine)) {
        /* Lost: a copy that won is there. Free the slot (unless already killed). */
        uint64_t pending = SLOT_MAKE(q.epoch, SLOT_PENDING, q.fp);
        replay_cas(q.slot[mine], &pending, SLOT_MAKE(q.epoch, SLOT_KILLED, q.fp));
        return 1;
    }
    replay_count(&q, mine);
    return 0;
}

int replay_test_park(struct replay_store *r, enum replay_kind kind, const uint8_t *salt, size_t len)
{
    struct replay_probe q;
    replay_locate(r, kind, salt, len, &q);
    int mine = replay_claim(&q);
    return mine >= 0 ? 0 : mine == -2 ? 1 : -1;
}
