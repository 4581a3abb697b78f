/* udp_batch.c: the UDP relay's recvmmsg / sendmmsg vectors (udp_private.h). One receive and one
 * send batch per relay, with their buffers allocated once: a wakeup reads up to UDP_BATCH
 * datagrams in one system call, and the answers leave in one sendmmsg per run of datagrams that
 * share a socket, the datagrams of a run that go to one peer as one UDP GSO send; so the
 * per-datagram cost is the crypto, not the syscalls. */
#include "autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>

#include "redir.h"
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

bool udp_local_enable(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int one = 1;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        return s4->sin_addr.s_addr == htonl(INADDR_ANY) &&
               setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) == 0;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        if (!IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0)
            return false;
        /* a dual-stack socket also receives IPv4, whose address comes as IP_PKTINFO */
        (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
        return true;
    }
    return false;
}

/* The destination address of a received datagram, from its IP_PKTINFO / IPV6_PKTINFO. */
static void udp_local_parse(struct msghdr *h, struct udp_local *out)
{
    memset(out, 0, sizeof *out);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            out->family = AF_INET;
            out->addr.v4 = pi.ipi_addr;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            out->family = AF_INET6;
            out->ifindex = pi.ipi6_ifindex;
            out->addr.v6 = pi.ipi6_addr;
        }
    }
}

/* Appends the cmsg that makes a datagram leave from `from` to the control data of h. */
static void udp_local_cmsg(struct msghdr *h, const struct udp_local *from)
{
    struct cmsghdr *c = (struct cmsghdr *)((char *)h->msg_control + h->msg_controllen);
    if (from->family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = from->addr.v4};
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        h->msg_controllen += CMSG_SPACE(sizeof pi);
    } else {
        struct in6_pktinfo pi = {.ipi6_addr = from->addr.v6, .ipi6_ifindex = from->ifindex};
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        h->msg_controllen += CMSG_SPACE(sizeof pi);
    }
}

int udp_rx_batch(struct udp_relay *u, int fd)
{
    struct udp_batch *b = &u->rx;
    bool redir = fd == u->fd && u->role == ROLE_REDIR; /* IP_ORIGDSTADDR (sockets.c) */
    bool pktinfo = fd == u->fd && u->pktinfo;
    int n;

    for (unsigned i = 0; i < UDP_BATCH; i++) {
        b->iov[i].iov_base = b->buf[i] + UDP_HEADROOM;
        b->iov[i].iov_len = UDP_DATAGRAM_MAX;
        b->msg[i].msg_hdr = (struct msghdr){.msg_name = &b->addr[i],
                                            .msg_namelen = sizeof b->addr[i],
                                            .msg_iov = &b->iov[i],
                                            .msg_iovlen = 1};
        if (pktinfo || redir) {
            b->msg[i].msg_hdr.msg_control = b->ctl[i].buf;
            b->msg[i].msg_hdr.msg_controllen = sizeof b->ctl[i].buf;
        }
    }
    do
        n = recvmmsg(fd, b->msg, UDP_BATCH, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) {
        if (pktinfo)
            udp_local_parse(&b->msg[i].msg_hdr, &b->local[i]);
        else
            b->local[i].family = 0;
        if (!redir || redir_udp_destination(&b->msg[i].msg_hdr, &b->origdst[i]) < 0)
            b->origdst[i].ss_family = 0;
    }
    return n < 0 ? 0 : n;
}

/* Whether datagram k may join a GSO send that starts at datagram first: same socket and
 * destination, and the size of the first (only the last segment of a send may be shorter, and
 * then nothing may follow it). */
static bool udp_gso_joins(const struct udp_batch *b, unsigned first, unsigned k)
{
    const struct msghdr *f = &b->msg[first].msg_hdr, *m = &b->msg[k].msg_hdr;
    size_t seg = b->iov[first].iov_len;

    return k - first < UDP_GSO_SEGMENTS && b->iov[k].iov_len <= seg &&
           b->iov[k - 1].iov_len == seg && (k - first + 1) * seg <= UDP_GSO_BYTES &&
           m->msg_namelen == f->msg_namelen &&
           memcmp(m->msg_name, f->msg_name, f->msg_namelen) == 0 &&
           memcmp(&b->local[k], &b->local[first], sizeof b->local[k]) == 0;
}

/* Cuts the run of datagrams [i, i + run), which share a socket, into sendmmsg entries: each
 * series for one destination becomes one GSO send. The kernel builds one buffer and routes once
 * for the whole series and splits it into datagrams only on delivery, so a burst to one peer
 * costs little more than one datagram. Returns the number of entries. */
static unsigned udp_gso_units(struct udp_batch *b, unsigned i, unsigned run)
{
    unsigned n = 0;

    for (unsigned k = i; k < i + run; n++) {
        struct udp_gso_unit *g = &b->unit[n];
        struct msghdr *h = &b->unit_msg[n].msg_hdr;
        g->first = k;
        g->count = 1;
        while (!b->gso_off && k + g->count < i + run && udp_gso_joins(b, k, k + g->count))
            g->count++;
        *h = b->msg[k].msg_hdr;
        h->msg_iovlen = g->count;
        if (g->count > 1) {
            /* the entry's own control data (its source address), then the segment size */
            h->msg_control = g->ctl.buf;
            memset(g->ctl.buf, 0, sizeof g->ctl.buf);
            if (b->msg[k].msg_hdr.msg_controllen)
                memcpy(g->ctl.buf, b->msg[k].msg_hdr.msg_control,
                       b->msg[k].msg_hdr.msg_controllen);
            struct cmsghdr *c = (struct cmsghdr *)(g->ctl.buf + h->msg_controllen);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)b->iov[k].iov_len;
            memcpy(CMSG_DATA(c), &seg, sizeof seg);
            h->msg_controllen += CMSG_SPACE(sizeof seg);
        }
        k += g->count;
    }
    return n;
}

/* A datagram the kernel refuses (full buffer, EMSGSIZE, unreachable) is dropped, as the network
 * itself would: UDP senders expect loss, and retrying would stall every other flow. A GSO send
 * the kernel or the route cannot take (no UDP_SEGMENT, a segment above the path MTU) is sent
 * again one datagram at a time. */
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
        unsigned units = udp_gso_units(b, i, run), done = 0;
        uint64_t out = 0;
        while (done < units) {
            int sent = sendmmsg(fd, &b->unit_msg[done], units - done, MSG_DONTWAIT);
            for (int k = 0; k < sent; k++)
                out += b->unit[done + k].count;
            if (sent > 0) {
                done += (unsigned)sent;
                continue;
            }
            const struct udp_gso_unit *g = &b->unit[done];
            if (g->count > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
                if (errno == ENOPROTOOPT)
                    b->gso_off = true;
                int one = sendmmsg(fd, &b->msg[g->first], g->count, MSG_DONTWAIT);
                out += one > 0 ? (uint64_t)one : 0;
                if (one < (int)g->count)
                    udp_drop(u, (struct sockaddr *)&b->addr[g->first], "send failed");
            } else {
                udp_drop(u, (struct sockaddr *)&b->addr[g->first],
                         errno == EMSGSIZE ? "datagram too large to send" : "send failed");
            }
            done++;
        }
        if (b->to_client[i])
            metrics_add(&u->stats->udp_packets_out, out);
        i += run;
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
                size_t len, const struct udp_local *from)
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
    b->to_client[k] = from != NULL;
    memset(&b->local[k], 0, sizeof b->local[k]);
    if (from && from->family) {
        b->local[k] = *from;
        b->msg[k].msg_hdr.msg_control = b->ctl[k].buf;
        udp_local_cmsg(&b->msg[k].msg_hdr, from);
    }
}

/* The fd number of a closed socket may be handed to the next socket() before the flush, and the
 * datagram would then leave by someone else's port. */
void udp_tx_forget(struct udp_relay *u, int fd)
{
    for (unsigned k = 0; k < u->tx.n; k++)
        if (u->tx.fd[k] == fd)
            u->tx.fd[k] = -1;
}
