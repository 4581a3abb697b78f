/* plugin.h: the SIP003 plugin ("plugin", "plugin_opts", "plugin_args", "plugin_mode"), a child
 * of the master that the master supervises as it does a worker.
 *
 * SIP003 (shadowsocks.org, "SIP003 - Plugin"): the plugin is started with SS_REMOTE_HOST and
 * SS_REMOTE_PORT (the shadowsocks server's public side), SS_LOCAL_HOST and SS_LOCAL_PORT (the
 * plain shadowsocks side) and SS_PLUGIN_OPTIONS. On a server the plugin listens on the public
 * address and forwards to the workers, which listen on a loopback port the master chooses; on a
 * client the workers connect to the plugin's loopback port and the plugin to the server.
 *
 * Every function takes the struct from plugin_new(); without a "plugin" it does nothing, so the
 * master calls them all unconditionally. */
#ifndef RP_PLUGIN_H
#define RP_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct ev_loop;
struct plugin;

/* In the master before the sockets are opened and anything is forked: chooses the loopback
 * port between the plugin and the workers (free at this moment, for TCP and, with
 * "plugin_mode": "tcp_and_udp", UDP) into c->plugin.local. 0, or -1 with a message in err. */
int plugin_prepare(struct config *c, char *err, size_t errlen);

/* The supervisor for c's plugin (c->plugin.local set by plugin_prepare()). give_up(arg) is
 * called when the plugin died too often in a row, as for a worker: the master then stops.
 * NULL when out of memory. */
struct plugin *plugin_new(struct ev_loop *loop, const struct config *c, void (*give_up)(void *),
                          void *arg);
/* Starts the plugin, after the master has set up the sockets. */
void plugin_start(struct plugin *p);
/* From the master's SIGCHLD reaping: true if pid was the plugin (then restarted with a backoff
 * of 100 ms doubling to 5 s, unless stopping). */
bool plugin_reaped(struct plugin *p, pid_t pid, int status);
/* A reload to nc (validated): keeps the plugin when its settings are the same, restarts it with
 * nc's when they changed, and gives nc the same loopback address. -1 with a message in err when
 * nc adds or removes the plugin or changes plugin_mode: the sockets between the plugin and the
 * workers would change, which only a restart does. */
int plugin_reload(struct plugin *p, struct config *nc, char *err, size_t errlen);
/* SIGTERM now, SIGKILL if it has not exited after PLUGIN_KILL_AFTER seconds. */
void plugin_stop(struct plugin *p);
/* True while a plugin process of ours still runs (the master waits for it before exiting). */
bool plugin_running(const struct plugin *p);
/* The running plugin's pid, or 0. */
pid_t plugin_pid(const struct plugin *p);
void plugin_free(struct plugin *p);

#define PLUGIN_KILL_AFTER 5.0

#endif
