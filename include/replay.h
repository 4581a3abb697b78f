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
/* Atomically: 1 if the salt was seen before (a replay), else records it and returns 0. */
int replay_check_and_add(struct replay_store *r, const uint8_t *salt, size_t len);
/* Bytes of shared memory the store uses. */
size_t replay_memory(const struct replay_store *r);

#endif
