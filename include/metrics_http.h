/* metrics_http.h: the Prometheus exposition: a tiny HTTP/1.0 server on the master's loop
 * answering GET /metrics (anything else: 404) with the text of metrics_render(). */
#ifndef RP_METRICS_HTTP_H
#define RP_METRICS_HTTP_H

struct ev_loop;
struct metrics_shared;
struct metrics_server;

/* Serves m on a listening socket opened elsewhere (the master's socket set, which hands it on
 * to a new master on a binary upgrade). Takes ownership of fd. NULL when out of memory or
 * given no loop, no socket or no counters. */
struct metrics_server *metrics_server_adopt(struct ev_loop *loop, int fd,
                                            const struct metrics_shared *m);
void metrics_server_stop(struct metrics_server *s);
/* The port the server listens on, or -1. */
int metrics_server_port(const struct metrics_server *s);
/* How long one client may take to send its request and read the answer (default 5 s); applies
 * to clients accepted afterwards. Ignored unless seconds > 0. */
void metrics_server_set_timeout(struct metrics_server *s, double seconds);

#endif
