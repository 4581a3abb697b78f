/* control.h: the master -> worker control channel (issue 15: live changes on SIGHUP).
 *
 * Every worker has one, a SOCK_SEQPACKET socketpair made before fork in every balance mode
 * (beside the dispatch mode's own socket, which carries only accepted connections). A message
 * is one record, struct control_msg, optionally with one descriptor passed by SCM_RIGHTS:
 *   CONTROL_USERS  master -> worker: the ports' users of configuration generation N, in a memfd
 *                  (control_users_pack's format), to apply live;
 *   CONTROL_PORT_FD master -> worker: one socket of a port that generation N adds (port, udp
 *                  say which), sent before that generation's CONTROL_USERS;
 *   CONTROL_ACK    worker -> master: generation N applied (status 0), or refused with why.
 * The payload lists every port with its settings: a port the worker does not have yet is added
 * with the descriptors that came before it, a port it has and the payload lacks is removed.
 *
 * The users' keys travel derived (the master validated the file and derived them once), with
 * the per-user counter slots the master gave them, so a worker needs neither the file nor the
 * command line: the manager API hands the master a configuration built in memory the same way. */
#ifndef RP_CONTROL_H
#define RP_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"

#define CONTROL_MAGIC 0x52504331u /* "RPC1" */

enum control_type { CONTROL_USERS = 1, CONTROL_ACK = 2, CONTROL_PORT_FD = 3 };

struct control_msg {
    uint32_t magic;
    uint16_t type;       /* enum control_type */
    uint16_t status;     /* CONTROL_ACK: 0 applied, 1 refused */
    uint16_t port;       /* CONTROL_PORT_FD: the port the descriptor serves */
    uint16_t udp;        /* CONTROL_PORT_FD: 1 a UDP socket, 0 a TCP listener */
    uint64_t generation; /* the master's configuration generation */
    char why[200];       /* CONTROL_ACK refused: the reason, NUL-terminated */
};

/* Sends msg on sock with fd (-1: none) attached. Returns 0, or -1 with errno. */
int control_send(int sock, const struct control_msg *msg, int fd);
/* Receives one message without blocking. Returns 1 with *fd the descriptor that came with it
 * (close-on-exec) or -1; 0 when the peer is gone; -1 with errno (EAGAIN: nothing yet). A
 * record of another size or magic is read and dropped, and counts as nothing yet (EAGAIN). */
int control_recv(int sock, struct control_msg *msg, int *fd);

/* ---- The users payload: what a worker applies live ---- */

struct control_user {
    const char *name; /* points into the parsed buffer: not NUL-terminated, name_len bytes */
    size_t name_len;
    struct crypto_key key;
    int metrics_slot; /* its counters' slot (metrics.h), or -1 */
};

struct control_port {
    uint16_t port;
    struct crypto_key key; /* the port's own key: a worker checks it did not change */
    enum config_mode mode; /* a port added live: what it serves, */
    bool has_key;          /* whether its key is tried (config_port), */
    int metrics_slot;      /* and its counters' slot, or -1 */
    int n_users;
    struct control_user *users;
};

struct control_users {
    int n_port;
    struct control_port ports[CONFIG_MAX_PORTS];
};

/* Writes c's ports and their users into out[0..cap). Returns the length the whole payload
 * takes (nothing written when it is more than cap: call with cap 0 to size the buffer). */
size_t control_users_pack(const struct config *c, uint8_t *out, size_t cap);
/* Parses a payload (pure: no I/O; any bytes are safe). Returns 0 with out filled (its users
 * point into buf: keep buf while out is used; control_users_free after), or -1. */
int control_users_parse(const uint8_t *buf, size_t len, struct control_users *out);
void control_users_free(struct control_users *u);
/* The payload of c in a new memfd, to pass with CONTROL_USERS. Returns it, or -1 with errno. */
int control_users_memfd(const struct config *c);

#endif
