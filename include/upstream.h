/* upstream.h: the local and tunnel roles' servers when there are several ("server" as a list,
 * "servers"): which one a connection goes to (upstream_pick, pure), and the prober that tells
 * which are alive and how fast they answer (struct upstream_prober).
 *
 * Where the probes run: in the master, one prober for the whole instance, writing its results
 * into the shared metrics block (struct metrics_upstream) that every worker reads. Probing in
 * each worker would be simpler, but N workers would each probe every server, and each worker
 * would have its own, differently stale, idea of which servers are alive; one prober costs the
 * same whatever the number of workers, and its results are the metrics. A worker adds what it
 * sees itself: a server whose connect failed is skipped by that worker until the next probe
 * result. With workers: 0 the single process runs the prober in its own loop. */
#ifndef RP_UPSTREAM_H
#define RP_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

struct ev_loop;
struct upstream_prober;

/* Latencies this close to the best (a quarter of it, plus UPSTREAM_LATENCY_SLACK_US) count as
 * equal, and connections take turns among them: probe latencies jitter by more than that on a
 * loaded host, and sending everything to the one that measured a few microseconds faster
 * would only follow the noise. */
#define UPSTREAM_LATENCY_SLACK_US 2000

/* Whether a server counts as alive (see upstream_pick): not probed yet or its last probe
 * answered, and not failed here since (down: its upstream_pick down[] entry). */
bool upstream_alive(const struct metrics_upstream *u, uint64_t down);

/* The server for the next connection among n (stats: the shared probe results), or -1 when
 * every one is in tried (a bit per index). A server is alive when it has not been probed yet
 * or its last probe answered, and the worker has not seen it fail since (down[i]: the checks
 * value plus one at which it failed here, 0: never). Latency: the alive server with the
 * lowest latency (round robin among those about as fast); round robin: the next alive one
 * after *rr. When none is alive, the first untried one: trying beats failing at once. */
int upstream_pick(const struct metrics_upstream *stats, int n, enum config_balance_servers policy,
                  unsigned *rr, uint32_t tried, const uint64_t *down);

/* Starts probing cfg's servers on loop every server_check_interval seconds (the first round at
 * once): a TCP connect, timed, then a first flight in the server's method (a request for
 * 0.0.0.0 port 0, which a server refuses or cannot connect to, so a probe leaves nothing
 * behind). Results go to m->upstream[]. NULL when out of memory (logged); nothing runs when
 * cfg has fewer than two servers. */
struct upstream_prober *upstream_prober_new(struct ev_loop *loop, const struct config *cfg,
                                            struct metrics_shared *m);
/* A reload: the new configuration's servers (the series restart when the list changed). */
void upstream_prober_reconfigure(struct upstream_prober *p, const struct config *cfg);
void upstream_prober_free(struct upstream_prober *p);

/* "host:port" or "[v6]:port" of a server, for logs and the metrics label. Returns buf. */
const char *upstream_name(const struct config_upstream *u, char *buf, size_t cap);

#endif
