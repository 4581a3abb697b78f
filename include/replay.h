/* replay.h: the salt store that refuses replays. It lives in one MAP_SHARED mapping made by the
 * master before fork, so a salt seen by any worker is refused by every worker, and it survives
 * worker restarts. Bounded: two generations that rotate when the current one fills (a
 * ping-pong scheme), so memory is fixed and old salts age out. */
#ifndef RP_REPLAY_H
#define RP_REPLAY_H

#include <stddef.h>
#include <stdint.h>

struct replay_store;

/* capacity: salts remembered at least (per generation). Returns NULL on failure. */
struct replay_store *replay_new_shared(size_t capacity);
void replay_free(struct replay_store *r);
/* Atomically: 1 if the salt was seen before (a replay), else records it and returns 0. Returns
 * -1 only if the shared lock is unrecoverable; treat that as a replay (refuse). */
int replay_check_and_add(struct replay_store *r, const uint8_t *salt, size_t len);
/* Bytes of shared memory the store uses: 4096 + 32 * (capacity + capacity / 2 + 1), e.g.
 * 50,335,776 (48 MiB) for capacity 1,048,576. */
size_t replay_memory(const struct replay_store *r);

/* SipHash-2-4 with 128-bit output, the keyed fingerprint the store keeps instead of salts.
 * Exposed so the unit test can check it against the reference vectors. */
void replay_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16]);
/* For tests only: takes the store's lock and returns with it held (0, or -1), so a test can
 * kill the process and show a worker dying inside replay_check_and_add cannot stall the rest. */
int replay_test_hold_lock(struct replay_store *r);

#endif
