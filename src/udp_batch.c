/* udp_batch.c: the UDP relay's recvmmsg / sendmmsg vectors (udp_private.h). One receive and one
 * send batch per relay, with their buffers allocated once: a wakeup reads up to UDP_BATCH
 * datagrams in one system call, and the answers leave in one sendmmsg per run of datagrams that
 * share a socket, so the per-datagram cost is the crypto, not the syscalls. */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "udp_private.h"

int udp_batch_init(struct udp_batch *b, size_t bufsize)
{
    b->n = 0;
    b->mem = malloc(bufsize * UDP_BATCH);
    if (!b->mem)
        return -1;
    for (unsigned i = 0; i < UDP_BATCH; i++) {
        b->buf[i] = b->mem + i * bufsize;
        b->fd[i] = -1;
    }
    return 0;
}

void udp_batch_free(struct udp_batch *b)
{
    free(b->mem);
    b->mem = NULL;
    b->n = 0;
}

int udp_rx_batch(struct udp_relay *u, int fd)
{
    struct udp_batch *b = &u->rx;
    int n;

    for (unsigned i = 0; i < UDP_BATCH; i++) {
        b->iov[i].iov_base = b->buf[i] + UDP_HEADROOM;
        b->iov[i].iov_len = UDP_DATAGRAM_MAX;
        b->msg[i].msg_hdr = (struct msghdr){.msg_name = &b->addr[i],
                                            .msg_namelen = sizeof b->addr[i],
                                            .msg_iov = &b->iov[i],
                                            .msg_iovlen = 1};
    }
    do
        n = recvmmsg(fd, b->msg, UDP_BATCH, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? 0 : n;
}

/* A datagram the kernel refuses (full buffer, EMSGSIZE, unreachable) is dropped, as the network
 * itself would: UDP senders expect loss, and retrying would stall every other flow. */
void udp_tx_flush(struct udp_relay *u)
{
    struct udp_batch *b = &u->tx;
    unsigned i = 0;

    while (i < b->n) {
        int fd = b->fd[i];
        unsigned run = 1;
        while (i + run < b->n && b->fd[i + run] == fd)
            run++;
        if (fd < 0) {
            for (unsigned k = 0; k < run; k++)
                udp_drop(u, (struct sockaddr *)&b->addr[i + k], "association gone");
            i += run;
            continue;
        }
        int sent = sendmmsg(fd, &b->msg[i], run, MSG_DONTWAIT);
        if (sent <= 0) {
            udp_drop(u, (struct sockaddr *)&b->addr[i],
                     errno == EMSGSIZE ? "datagram too large to send" : "send failed");
            sent = 1;
        } else if (fd == u->fd) {
            metrics_add(&u->stats->udp_packets_out, (uint64_t)sent);
        }
        i += (unsigned)sent;
    }
    b->n = 0;
}

uint8_t *udp_tx_buf(struct udp_relay *u)
{
    if (u->tx.n == UDP_BATCH)
        udp_tx_flush(u);
    return u->tx.buf[u->tx.n];
}

void udp_tx_add(struct udp_relay *u, int fd, const struct sockaddr *to, const void *data,
                size_t len)
{
    struct udp_batch *b = &u->tx;

    if (b->n == UDP_BATCH)
        udp_tx_flush(u);
    unsigned k = b->n++;
    socklen_t tolen = netaddr_len(to);
    memcpy(&b->addr[k], to, tolen);
    b->iov[k] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
    b->msg[k].msg_hdr = (struct msghdr){.msg_name = &b->addr[k],
                                        .msg_namelen = tolen,
                                        .msg_iov = &b->iov[k],
                                        .msg_iovlen = 1};
    b->fd[k] = fd;
}

/* The fd number of a closed socket may be handed to the next socket() before the flush, and the
 * datagram would then leave by someone else's port. */
void udp_tx_forget(struct udp_relay *u, int fd)
{
    for (unsigned k = 0; k < u->tx.n; k++)
        if (u->tx.fd[k] == fd)
            u->tx.fd[k] = -1;
}
