/* relay_shared.c: replay protection across hosts ("shared_store", shared_store.h) for a
 * session whose first flight the worker's own replay store has let pass: the salt is claimed
 * in Redis while the session waits in STAGE_SHARED (at most shared_store_timeout_ms, relay.c's
 * timer), and the verdict decides what the session does next. */
#include "autoconfig.h"

#include "metrics.h"
#include "session.h"
#include "shared_store.h"
#include "worker.h"

/* What Redis said of the request's salt (the local replay store has passed it already). A salt
 * another host (or worker) claimed first is a replay, refused as a probe; when Redis cannot
 * tell in time, "shared_store_failure" decides: serve (allow) or close (refuse). */
void session_salt_judged(struct session *s, enum shared_store_verdict v, const char *why)
{
    struct worker *w = s->w;

    if (v == SHARED_STORE_REPLAYED) {
        metrics_add(&w->stats->replays, 1);
        session_probe(s, "replayed salt (claimed before in the shared store)");
        return;
    }
    if (v == SHARED_STORE_FAILED) {
        metrics_add(&w->stats->shared_failures, 1);
        log_event(&w->rl_shared, "%s: %s", why ? why : "Redis unavailable",
                  w->cfg->shared.refuse ? "connection refused (shared_store_failure: refuse)"
                                        : "connection served (shared_store_failure: allow)");
        if (w->cfg->shared.refuse) {
            session_close(s);
            return;
        }
    }
    session_connect_target(s);
}

static void salt_claimed_cb(void *arg, enum shared_store_verdict v)
{
    struct session *s = arg;
    s->claim = NULL;
    session_salt_judged(s, v, "Redis answered with an error or went away");
}

void session_claim_salt(struct session *s)
{
    int r = shared_store_claim(s->w->shared, s->conn.req_salt, s->conn.req_salt_len,
                               salt_claimed_cb, s, &s->claim);
    if (r >= 0) {
        session_salt_judged(s, (enum shared_store_verdict)r, "Redis not connected");
        return;
    }
    session_set_stage(s, STAGE_SHARED);
}
