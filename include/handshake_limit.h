/* handshake_limit.h: the optional per-source limit on TCP connections still in the handshake
 * (max_handshakes_per_source, issue 20 item 4). One table per worker: source host -> number of
 * its sessions that have not finished the handshake (or failed it and are held until their
 * deadline). relay.c enters a session at accept and leaves it when the session moves past the
 * handshake or closes; an accept beyond the limit is refused.
 *
 * Why off by default: a prober that opens connections and watches which ones are closed at once
 * learns the limit, so the server's answer to probes is no longer the same whatever they do. */
#ifndef RP_HANDSHAKE_LIMIT_H
#define RP_HANDSHAKE_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lru.h"

struct handshake_limit {
    struct lru table; /* of struct handshake_limit_entry, by source */
    uint8_t seed[16]; /* random: a client cannot aim its addresses at one hash chain */
    unsigned max;     /* sessions in the handshake allowed per source */
};

/* max >= 1. Returns 0, or -1 when out of memory or without randomness. */
int handshake_limit_init(struct handshake_limit *h, unsigned max);
void handshake_limit_destroy(struct handshake_limit *h);

/* Counts one more session from source in the handshake, and returns true; or returns false
 * (nothing counted) when source already has max, or the entry cannot be allocated. A source of
 * another family than IPv4/IPv6 is always admitted and counted apart (as one source). */
bool handshake_limit_enter(struct handshake_limit *h, const struct sockaddr *source);
/* One session from source, counted by a successful enter, left the handshake. */
void handshake_limit_leave(struct handshake_limit *h, const struct sockaddr *source);
/* Sessions from source now in the handshake. */
unsigned handshake_limit_count(const struct handshake_limit *h, const struct sockaddr *source);
/* Sources with at least one session counted. */
size_t handshake_limit_sources(const struct handshake_limit *h);

#endif
