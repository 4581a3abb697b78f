/* steer.h: steering new connections and datagrams around a stalled worker (issue 18), and to the
 * worker pinned to the CPU that received them ("cpu_affinity").
 *
 * Each worker stamps a heartbeat into its slot of the shared metrics memory (steer_heartbeat,
 * from a libev timer); the master reads the stamps. A slot whose stamp is older than
 * "stall_timeout_ms" is stalled (SIGSTOP, a debugger, a long page fault, a loop that never
 * returns): the master attaches a classic BPF program to every SO_REUSEPORT group of the slots
 * (SO_ATTACH_REUSEPORT_CBPF) that leaves the slot out of the kernel's choice, and in the dispatch
 * mode hands it no connection. When it stamps again it is put back. */
#ifndef RP_STEER_H
#define RP_STEER_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "metrics.h"
#include "sockets.h"

struct ev_loop;
struct steer;

/* CLOCK_MONOTONIC in milliseconds: the same clock in every process of the machine. */
static inline uint64_t steer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A worker's heartbeat: "this slot's worker ran its loop now". */
static inline void steer_heartbeat(struct metrics_worker *stats)
{
    __atomic_store_n(&stats->heartbeat_ms, steer_now_ms(), __ATOMIC_RELAXED);
}

/* Seconds between heartbeats (and between the master's checks) for stall_timeout_ms: a fifth
 * of it, at most 100 ms, so a stall is seen within stall_timeout_ms + 100 ms. */
double steer_heartbeat_interval(int stall_timeout_ms);

/* The CPU worker slot runs on with "cpu_affinity": the slot-th CPU this process may run on,
 * round robin. -1 when the allowed set cannot be read. */
int steer_cpu_of_slot(int slot);
/* Pins the calling process (a new worker) to steer_cpu_of_slot(slot). 0, or -1 (errno). */
int steer_pin(int slot);

/* The classic BPF program for a SO_REUSEPORT group of nslots sockets, socket i serving slot i
 * (the order sockets.c binds them in): returns the index of a live slot (live[i]). With
 * slot_cpu (cpu_affinity), a packet received on CPU c goes to the first live slot pinned to c;
 * otherwise, or when none is, the source address and port are hashed and, when the hash's slot
 * is live, go to it, else to a live slot by the same hash: a live worker's UDP flows never move.
 * ipv6: the group's family (where the source address and port sit). Writes at most cap
 * instructions; returns the count, or -1 when they do not fit. */
int steer_program(struct sock_filter *out, int cap, int nslots, const bool *live,
                  const int *slot_cpu, bool ipv6);

/* The master's stall watch over the slots of socks (kept, not owned) and metrics. */
struct steer *steer_new(struct ev_loop *loop, const struct socket_set *socks,
                        struct metrics_shared *metrics);
/* Applies stall_timeout_ms and cpu_affinity (at start and at each reload): starts or stops the
 * watch and attaches the program the slots need now (none at all when both are off). */
void steer_configure(struct steer *s, const struct config *c);
/* True while slot i is stalled (the dispatch mode skips it). */
bool steer_stalled(const struct steer *s, int i);
/* The master stops: no more checks. The program stays with the sockets (a binary upgrade's new
 * master attaches its own). */
void steer_stop(struct steer *s);
void steer_free(struct steer *s);

#endif
