/* steer.c: the master's stall watch and the SO_REUSEPORT steering program (see steer.h).
 *
 * Why classic BPF: SO_ATTACH_REUSEPORT_CBPF (Linux 4.5) needs no privilege, where an eBPF
 * program with a REUSEPORT_SOCKARRAY map needs CAP_BPF (unprivileged eBPF is off on most
 * distributions). A classic program cannot read a map, so the table of live slots is baked into
 * the program and the master attaches a new one at each change; attaching replaces the group's
 * program atomically (reuseport_attach_prog), so no packet sees a group without one.
 *
 * The kernel runs the program on the first packet of a TCP connection (the SYN) and on every UDP
 * datagram, and takes its result as an index into the group's sockets; these are in the order
 * they were bound, slot 0 first (sockets.c; a binary upgrade hands the very same sockets over),
 * and the master never closes one while it runs, so index i is slot i. An index out of range
 * falls back to the kernel's own hash (net/core/sock_reuseport.c, reuseport_select_sock).
 *
 * Why the program hashes the source itself: SKF_AD_RXHASH (skb->hash) is the connecting
 * socket's random hash for TCP over loopback, but 0 for UDP there (measured: every datagram
 * would go to one slot) and whatever the NIC computes elsewhere. Hashing the source address and
 * port in the program spreads both protocols the same way everywhere, and keeps a UDP flow on
 * its slot for as long as that slot is live. */
#include "autoconfig.h"

#include "steer.h"

#include <errno.h>
#include <ev.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

/* Fibonacci hashing (Knuth, TAOCP 6.4): the multiplier is 2^32 / golden ratio; the high half
 * of the product spreads even consecutive ports (Linux hands them out two apart) evenly. */
#define STEER_HASH_MUL 0x9E3779B1u
#define STEER_HASH_SHIFT 16
/* BPF_MAXINSNS: 4096; SOCKETS_MAX_SLOTS slots take about 6 per slot plus 20. */
#define STEER_PROG_MAX 2048

struct steer {
    struct ev_loop *loop;
    const struct socket_set *socks;
    struct metrics_shared *metrics;
    int timeout_ms; /* 0: no watch */
    bool affinity;
    bool attached; /* a program is on the groups */
    bool failed;   /* attaching failed once (an old kernel): said once, not retried */
    ev_timer watch;
    bool stalled[SOCKETS_MAX_SLOTS];
    int slot_cpu[SOCKETS_MAX_SLOTS];
    struct log_ratelimit rl_stall, rl_back;
};

double steer_heartbeat_interval(int stall_timeout_ms)
{
    double t = stall_timeout_ms / 5000.0;
    return t > 0.1 ? 0.1 : t < 0.005 ? 0.005 : t;
}

/* ---- CPUs ---- */

int steer_cpu_of_slot(int slot)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -1;
    int n = CPU_COUNT(&set);
    if (n <= 0)
        return -1;
    for (int cpu = 0, k = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && k++ == slot % n)
            return cpu;
    return -1;
}

int steer_pin(int slot)
{
    int cpu = steer_cpu_of_slot(slot);
    cpu_set_t set;
    if (cpu < 0) {
        errno = EINVAL;
        return -1;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* ---- the program ---- */

struct prog {
    struct sock_filter *f;
    int n, cap;
};

static void emit(struct prog *p, uint16_t code, uint32_t k)
{
    if (p->n < p->cap)
        p->f[p->n] = (struct sock_filter){.code = code, .k = k};
    p->n++;
}

/* "if A == from[i] return to[i]", for each i: a jump over the next instruction when unequal. */
static void emit_table(struct prog *p, const int *from, const int *to, int n)
{
    for (int i = 0; i < n; i++) {
        if (p->n < p->cap)
            p->f[p->n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, from[i], 0, 1);
        p->n++;
        emit(p, BPF_RET | BPF_K, (uint32_t)to[i]);
    }
}

/* M[0] = A = the hash of the packet's source address and port. The kernel has pulled the
 * transport header off (skb->data is the payload), so both are read from the network header
 * (SKF_NET_OFF). IPv6: the transport header right after the fixed header; a packet with
 * extension headers hashes other bytes, still the same for every packet of its flow. */
static void emit_source_hash(struct prog *p, bool ipv6)
{
    if (ipv6) {
        emit(p, BPF_LD | BPF_H | BPF_ABS, (uint32_t)(SKF_NET_OFF + 40)); /* source port */
        emit(p, BPF_MISC | BPF_TAX, 0);
        for (int off = 8; off < 24; off += 4) { /* the source address, word by word */
            emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_NET_OFF + off));
            emit(p, BPF_ALU | BPF_XOR | BPF_X, 0);
            emit(p, BPF_MISC | BPF_TAX, 0);
        }
        emit(p, BPF_MISC | BPF_TXA, 0);
    } else {
        emit(p, BPF_LDX | BPF_B | BPF_MSH, (uint32_t)SKF_NET_OFF); /* X = IHL * 4 */
        emit(p, BPF_LD | BPF_H | BPF_IND, (uint32_t)SKF_NET_OFF);  /* source port */
        emit(p, BPF_MISC | BPF_TAX, 0);
        emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_NET_OFF + 12)); /* source address */
        emit(p, BPF_ALU | BPF_XOR | BPF_X, 0);
    }
    emit(p, BPF_ALU | BPF_MUL | BPF_K, STEER_HASH_MUL);
    emit(p, BPF_ALU | BPF_RSH | BPF_K, STEER_HASH_SHIFT);
    emit(p, BPF_ST, 0);
}

int steer_program(struct sock_filter *out, int cap, int nslots, const bool *live,
                  const int *slot_cpu, bool ipv6)
{
    struct prog p = {out, 0, cap};
    int live_idx[SOCKETS_MAX_SLOTS], seq[SOCKETS_MAX_SLOTS], nlive = 0;

    if (nslots < 1 || nslots > SOCKETS_MAX_SLOTS)
        return -1;
    for (int i = 0; i < nslots; i++)
        if (live[i]) {
            seq[nlive] = nlive;
            live_idx[nlive++] = i;
        }
    emit_source_hash(&p, ipv6);
    if (slot_cpu) { /* the receiving CPU's slot, the first live one pinned there */
        int cpus[SOCKETS_MAX_SLOTS], slots[SOCKETS_MAX_SLOTS], n = 0;
        for (int k = 0; k < nlive; k++) {
            int cpu = slot_cpu[live_idx[k]], seen = 0;
            for (int j = 0; j < n; j++)
                seen |= cpus[j] == cpu;
            if (cpu >= 0 && !seen) {
                cpus[n] = cpu;
                slots[n++] = live_idx[k];
            }
        }
        emit(&p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
        emit_table(&p, cpus, slots, n);
        emit(&p, BPF_LD | BPF_MEM, 0);
    }
    emit(&p, BPF_ALU | BPF_MOD | BPF_K, (uint32_t)nslots);
    if (nlive == nslots || nlive == 0) { /* nothing to steer around: the hash's slot */
        emit(&p, BPF_RET | BPF_A, 0);
        return p.n <= cap ? p.n : -1;
    }
    emit_table(&p, live_idx, live_idx, nlive); /* the hash's slot, when live */
    emit(&p, BPF_LD | BPF_MEM, 0);             /* else a live one by the same hash */
    emit(&p, BPF_ALU | BPF_MOD | BPF_K, (uint32_t)nlive);
    emit_table(&p, seq, live_idx, nlive);
    emit(&p, BPF_RET | BPF_K, (uint32_t)live_idx[0]);
    return p.n <= cap ? p.n : -1;
}

/* ---- attaching ---- */

/* The program for the group of fd (one socket of it: the program is the group's). */
static int attach_one(struct steer *s, int fd, const bool *live)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    struct sock_filter f[STEER_PROG_MAX];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    int n = steer_program(f, STEER_PROG_MAX, s->socks->nslots, live,
                          s->affinity ? s->slot_cpu : NULL, ss.ss_family == AF_INET6);
    if (n < 0) {
        errno = E2BIG;
        return -1;
    }
    struct sock_fprog fp = {.len = (unsigned short)n, .filter = f};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp, sizeof fp);
}

/* Every group of the slots: TCP in the reuseport mode, UDP in every mode. */
static void steer_attach(struct steer *s)
{
    const struct socket_set *k = s->socks;
    bool live[SOCKETS_MAX_SLOTS], want = k->nslots > 1 && (s->timeout_ms > 0 || s->affinity);
    int zero = 0; /* the kernel refuses any socket option shorter than an int, even this one */

    if (s->failed || (!want && !s->attached))
        return;
    for (int i = 0; i < k->nslots; i++)
        live[i] = !s->stalled[i];
    for (int e = 0; e < 2 * k->naddrs; e++) { /* the set is sparse (sockets.h) */
        int fd = e % 2 ? k->udp[0][e / 2] : k->tcp[0][e / 2];
        if (fd <= 0)
            continue;
        int r = want ? attach_one(s, fd, live)
                     : setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof zero);
        if (r < 0 && want) {
            log_warn("cannot attach the SO_REUSEPORT steering program (%s): a stalled worker "
                     "keeps its share of new connections",
                     strerror(errno));
            s->failed = true;
            return;
        }
        /* ENOENT: there was none; EINVAL: not a SO_REUSEPORT socket (one slot), so none either */
        if (r < 0 && errno != ENOENT && errno != EINVAL)
            log_warn("cannot detach the SO_REUSEPORT steering program: %s", strerror(errno));
    }
    s->attached = want;
}

/* ---- the watch ---- */

static void slot_set_stalled(struct steer *s, int i, bool stalled, uint64_t age_ms)
{
    struct metrics_worker *w = &s->metrics->worker[i];
    unsigned long pid = (unsigned long)metrics_read(&w->pid);

    s->stalled[i] = stalled;
    __atomic_store_n(&w->stalled, stalled ? 1 : 0, __ATOMIC_RELAXED);
    if (stalled) {
        metrics_add(&w->stalls, 1);
        log_event(&s->rl_stall,
                  "worker %d (pid %lu) silent for %llu ms: new connections go to "
                  "the others",
                  i, pid, (unsigned long long)age_ms);
    } else {
        log_event(&s->rl_back, "worker %d (pid %lu) answers again after %llu ms", i, pid,
                  (unsigned long long)age_ms);
    }
}

static void watch_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct steer *s = t->data;
    uint64_t now = steer_now_ms();
    bool changed = false;
    (void)loop, (void)revents;

    for (int i = 0; i < s->socks->nslots; i++) {
        uint64_t beat = metrics_read(&s->metrics->worker[i].heartbeat_ms);
        if (beat == 0) /* no worker has run in this slot yet */
            continue;
        uint64_t age = now > beat ? now - beat : 0;
        bool stalled = age > (uint64_t)s->timeout_ms;
        if (stalled != s->stalled[i]) {
            slot_set_stalled(s, i, stalled, age);
            changed = true;
        }
    }
    if (changed)
        steer_attach(s);
    log_event_poll(&s->rl_stall);
    log_event_poll(&s->rl_back);
}

struct steer *steer_new(struct ev_loop *loop, const struct socket_set *socks,
                        struct metrics_shared *metrics)
{
    struct steer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->socks = socks;
    s->metrics = metrics;
    /* a previous master's program may be on the sockets (binary upgrade): the first
     * steer_configure replaces it, or detaches it when none is wanted */
    s->attached = true;
    s->rl_stall = (struct log_ratelimit)LOG_RATELIMIT_INIT("stalled workers", LOG_LEVEL_WARN, 10.0);
    s->rl_back =
        (struct log_ratelimit)LOG_RATELIMIT_INIT("stalled workers back", LOG_LEVEL_INFO, 10.0);
    for (int i = 0; i < socks->nslots && i < SOCKETS_MAX_SLOTS; i++)
        s->slot_cpu[i] = steer_cpu_of_slot(i);
    ev_init(&s->watch, watch_cb);
    s->watch.data = s;
    return s;
}

void steer_configure(struct steer *s, const struct config *c)
{
    /* A reload that turns the watch on: stamps from before it was off are stale, and the
     * workers of the old configuration never stamp; the new ones stamp as they start. */
    if (s->timeout_ms == 0)
        for (int i = 0; i < s->socks->nslots; i++)
            __atomic_store_n(&s->metrics->worker[i].heartbeat_ms, 0, __ATOMIC_RELAXED);
    s->timeout_ms = c->stall_timeout_ms;
    s->affinity = c->cpu_affinity;
    ev_timer_stop(s->loop, &s->watch);
    if (s->timeout_ms > 0 && s->socks->nslots > 1) {
        double iv = steer_heartbeat_interval(s->timeout_ms);
        ev_timer_set(&s->watch, iv, iv);
        ev_timer_start(s->loop, &s->watch);
    } else { /* the watch is off: nobody is stalled */
        for (int i = 0; i < s->socks->nslots; i++)
            if (s->stalled[i])
                slot_set_stalled(s, i, false, 0);
    }
    steer_attach(s);
}

bool steer_stalled(const struct steer *s, int i)
{
    return s && i >= 0 && i < s->socks->nslots && s->stalled[i];
}

void steer_stop(struct steer *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->watch);
    log_event_flush(&s->rl_stall);
    log_event_flush(&s->rl_back);
}

void steer_free(struct steer *s)
{
    if (s)
        ev_timer_stop(s->loop, &s->watch);
    free(s);
}
