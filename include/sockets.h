/* sockets.h: the listening sockets, opened once before any worker exists. For every listen
 * address: in the reuseport mode one TCP socket per worker slot, all in one SO_REUSEPORT group,
 * so the kernel hashes each connection to a slot; in the shared and dispatch modes one TCP
 * socket. UDP always gets one SO_REUSEPORT socket per slot, so each client's flow hashes to one
 * worker and keeps it. Sockets can also be taken over from a previous master (binary upgrade,
 * $REUSEPROXY_FDS) or from systemd ($LISTEN_FDS). */
#ifndef RP_SOCKETS_H
#define RP_SOCKETS_H

#include <stdbool.h>

#include "config.h"

#define SOCKETS_MAX_SLOTS 256

/* Indexed by listen entry a (config.h: c->listen[a], a (port, address) pair; port[a] its index
 * in c->ports): every array is sparse, 0 where that entry has no such socket (a port's
 * "mode" leaves TCP or UDP out; a plugin takes the public TCP address). */
struct socket_set {
    int nslots;
    int naddrs;                                    /* listen entries */
    int port[WORKER_MAX_LISTEN];                   /* the port each entry serves */
    int tcp[SOCKETS_MAX_SLOTS][WORKER_MAX_LISTEN]; /* reuseport: per slot */
    int udp[SOCKETS_MAX_SLOTS][WORKER_MAX_LISTEN];
    int shared[WORKER_MAX_LISTEN];                 /* shared/dispatch: one per entry */
    int ntcp, nudp, nshared;                       /* sockets per slot / shared ones in all */
    int metrics;                                   /* metrics_address listener, or 0 */
};

/* Opens (or takes over) every socket the config needs for nslots slots. balance decides the
 * TCP layout. Returns 0, or -1 with a message in err. */
int sockets_open(struct socket_set *s, const struct config *c, int nslots,
                 enum config_balance balance, char *err, size_t errlen);
void sockets_close(struct socket_set *s);
/* A reload that changes the ports (port_password, servers, the ss-manager API): s becomes the
 * set c needs, with cur's sockets where c keeps their entries (the same descriptors, so nothing
 * is re-bound and no queued connection is lost) and new ones for new entries. cur is left as it
 * is: its workers still run. Returns 0, or -1 with the reason (s then holds nothing cur does
 * not). */
int sockets_reopen(struct socket_set *s, const struct socket_set *cur, const struct config *c,
                   enum config_balance balance, char *err, size_t errlen);
/* Closes s's sockets that keep does not hold (once a reload ends: the old set's removed entries
 * after the switch, or the new set's new ones after a roll-back). */
void sockets_close_unshared(struct socket_set *s, const struct socket_set *keep);
/* Formats the set for $REUSEPROXY_FDS (see upgrade.h) and clears FD_CLOEXEC on every
 * descriptor, for a new master about to be executed. Returns the text (malloc'd, sized to the
 * set) or NULL. */
char *sockets_export(const struct socket_set *s);
/* True if fd is one of the set's sockets. */
bool sockets_contains(const struct socket_set *s, int fd);

#endif
