/* upstream.c: which of several servers a connection goes to (upstream.h). Pure: reads the
 * shared probe results and the worker's own view, returns an index. */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "upstream.h"

bool upstream_alive(const struct metrics_upstream *u, uint64_t down)
{
    uint64_t checks = metrics_read(&u->checks);
    bool probed_up = checks == 0 || metrics_read(&u->up) != 0;
    return probed_up && down != checks + 1;
}

int upstream_pick(const struct metrics_upstream *stats, int n, enum config_balance_servers policy,
                  unsigned *rr, uint32_t tried, const uint64_t *down)
{
    uint64_t best = UINT64_MAX;
    bool alive[METRICS_MAX_SERVERS];
    int first_untried = -1;

    if (n > METRICS_MAX_SERVERS)
        n = METRICS_MAX_SERVERS;
    for (int i = 0; i < n; i++) {
        bool untried = !(tried & (1u << i));
        alive[i] = untried && upstream_alive(&stats[i], down[i]);
        if (untried && first_untried < 0)
            first_untried = i;
        uint64_t lat = metrics_read(&stats[i].latency_us);
        if (alive[i] && lat < best)
            best = lat;
    }
    if (best == UINT64_MAX) /* none alive: the first untried, or -1 */
        return first_untried;
    uint64_t limit = best + best / 4 + UPSTREAM_LATENCY_SLACK_US;
    /* the next candidate after *rr in turn: every alive one (round robin), or those about as
     * fast as the best (latency) */
    for (int k = 1; k <= n; k++) {
        int i = (int)((*rr + (unsigned)k) % (unsigned)n);
        if (alive[i] && (policy == BALANCE_SERVERS_ROUND_ROBIN ||
                         metrics_read(&stats[i].latency_us) <= limit)) {
            *rr = (unsigned)i;
            return i;
        }
    }
    return first_untried; /* not reached: the best one is a candidate */
}

const char *upstream_name(const struct config_upstream *u, char *buf, size_t cap)
{
    const struct netaddr_target *t = &u->addr.target;
    bool v6 = strchr(t->host, ':') != NULL;

    snprintf(buf, cap, "%s%s%s:%u", v6 ? "[" : "", t->host, v6 ? "]" : "", (unsigned)t->port);
    return buf;
}
