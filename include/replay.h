/* replay.h: the salt store that refuses replays. It lives in one shared mapping (a memfd) made by
 * the master before fork, so a salt seen by any worker is refused by every worker; it survives
 * worker restarts, and a binary upgrade hands the memfd to the new master (replay_fd,
 * replay_attach), so it survives that too.
 *
 * Two regions, each with its own capacity: TCP salts (clients' and the server's own) and UDP
 * salts (clients' datagrams and the server's own replies), so a flood of datagrams can never
 * push a recorded TCP handshake out of memory.
 *
 * The guarantee, per region: once replay_check_and_add has returned 0 for a salt, the same salt
 * is refused until at least `capacity` further salts have been recorded in that region (it is
 * forgotten after at most 2 * capacity). With the default replay_capacity of 1,048,576 that is
 * at least 60 s at up to 8,700 TCP sessions/s (two salts each: the client's and ours) and at
 * least 60 s at up to 17,400 datagrams/s, counting both ways (a request and our reply). A
 * process stopped at any instruction inside the store (SIGSTOP, a debugger, a page fault) never
 * makes another one wait: there is no lock. */
#ifndef RP_REPLAY_H
#define RP_REPLAY_H

#include <stddef.h>
#include <stdint.h>

struct replay_store;

enum replay_kind {
    REPLAY_TCP, /* stream salts: the client's first flight and our own reply salts */
    REPLAY_UDP, /* datagram salts, both directions */
};

/* capacity: salts each region remembers at least (see above). Returns NULL with errno set. */
struct replay_store *replay_new_shared(size_t capacity);
/* Maps the store another process created and handed over as fd (a binary upgrade), after
 * checking its header: magic, version, and the layout `capacity` implies. On success the store
 * owns fd (made close-on-exec again); on failure returns NULL with a message in err and leaves fd
 * to the caller, who then creates a fresh store. */
struct replay_store *replay_attach(int fd, size_t capacity, char *err, size_t errlen);
/* The memfd behind the store, to hand to a new master; -1 if the system has no memfd. */
int replay_fd(const struct replay_store *r);
/* Unmaps this process's view and closes its fd; other processes keep theirs. */
void replay_free(struct replay_store *r);
/* Atomically across processes: 1 if the salt was seen before in the kind's region (a replay),
 * else records it and returns 0. Two processes offering the same salt at once: exactly one gets
 * 0. Returns -1 if the salt cannot be recorded (its slots are all taken by salts still inside
 * the guarantee; vanishingly rare at the sizes used); treat that as a replay (refuse). */
int replay_check_and_add(struct replay_store *r, enum replay_kind kind, const uint8_t *salt,
                         size_t len);
/* Bytes of shared memory the store uses: 4096 + 2 * 64 * max(64, ceil(capacity / 2)), e.g.
 * 67,112,960 (64 MiB) for capacity 1,048,576: 32 bytes per salt per region. */
size_t replay_memory(const struct replay_store *r);
/* Maps the whole store into this process's page tables now (each worker at start), allocating
 * the pages the first time. Best effort: kernels before 5.14 fault them in as salts land. */
void replay_prefault(struct replay_store *r);

/* SipHash-2-4 with 128-bit output, the keyed fingerprint the store keeps instead of salts.
 * Exposed so the unit test can check it against the reference vectors. */
void replay_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16]);
/* For tests only: does the first half of replay_check_and_add for salt (its slot claimed, not
 * yet confirmed) and returns, so a test can stop or kill the process at the one point where it
 * holds something the others see. Returns 0, 1 if the salt is already there, or -1. */
int replay_test_park(struct replay_store *r, enum replay_kind kind, const uint8_t *salt,
                     size_t len);

#endif
