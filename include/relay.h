/* relay.h: the one TCP session every role uses. A session learns its target (server: the
 * shadowsocks first chunk; local: SOCKS5; tunnel: the configured address), connects, and then
 * runs two pipes, client->remote and remote->client, one of which seals and the other opens
 * shadowsocks chunks. Backpressure, half-close, idle timeout and the silent treatment of failed
 * handshakes live here, once, for every role. */
#ifndef RP_RELAY_H
#define RP_RELAY_H

#include <sys/socket.h>

#include "proto.h"

struct worker;

/* Capacity of a relay buffer: four full chunks, a salt and some room. Reads are this large.
 * A direction whose reads fill the whole buffer is a bulk transfer: it moves on to a buffer of
 * RELAY_BULK_CHUNKS chunks (1 MiB), so each system call, wake-up and TCP send carries sixteen
 * times as much. Measured on loopback, one chacha20 stream through reuseproxy's tunnel and
 * server: 5.5 Gbit/s with 64 KiB, 7.8 with 16 chunks, 8.0 with 32, 8.4 with 64. Only directions
 * with bytes in flight hold a buffer, so idle and interactive connections never pay for them. */
#define RELAY_BUF_CAP (66 * 1024)
#define RELAY_BULK_CHUNKS 64
#define RELAY_BULK_CAP (RELAY_BULK_CHUNKS * PROTO_SLOT + 64)
/* A direction whose destination stopped taking bytes (a client that stops reading while its
 * target keeps sending) keeps what is left in a buffer of this size while it waits: a chunk's
 * worth, with room for a first flight's head. Its reads are cut to what the destination's
 * kernel accepts (at least one chunk), so that is all it holds: with the session, about 20 KiB
 * of user space per stalled connection, where a bulk buffer would pin 1 MiB (issue 13 item 4).
 * The kernel's socket buffers hold the rest of what is in flight. */
#define RELAY_STALL_CAP (PROTO_CHUNK_WIRE_MAX + 1024)

/* Starts a session on an accepted, non-blocking client socket of port (its index in w->ports,
 * whose protocol context the session uses); takes ownership of fd. Returns 0, or -1 (fd
 * closed) when memory is exhausted. */
int relay_accept(struct worker *w, int port, int fd, const struct sockaddr *peer,
                 socklen_t peerlen);
/* Closes every session at once (worker exit). */
void relay_close_all(struct worker *w);
/* From a periodic timer (once a second): frees the pool buffers that were idle since the last
 * call and, after a burst released enough, returns the free heap to the system. */
void relay_release_idle(struct worker *w);
/* Drain: sessions whose handshake failed will never become useful; close them now. (Sessions
 * still in their handshake stay: their first bytes may be on the way, and a reload must not
 * lose a connection the kernel already handed to this worker.) */
void relay_close_probes(struct worker *w);
/* Live user changes (worker_users.c): sessions opened under a retired key (their port's
 * key_retired)
 * stop counting as their user, and those retired at or before close_before close; so do the
 * sessions of a port removed (worker_port.removed_at) at or before close_before. */
void relay_users_retired(struct worker *w, double close_before);
/* Port p was removed live: its sessions stop writing its counters (they close later). */
struct worker_port;
void relay_port_removed(struct worker *w, const struct worker_port *p);

#endif
