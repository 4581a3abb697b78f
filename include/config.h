/* config.h: the one validated configuration. config_load() reads a shadowsocks-libev compatible
 * JSON file (plus reuseproxy's own keys) into struct config; every error names file:line:column.
 * The struct is read-only once workers are forked. */
#ifndef RP_CONFIG_H
#define RP_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "netaddr.h"

enum config_role { ROLE_SERVER = 0, ROLE_LOCAL, ROLE_TUNNEL, ROLE_REDIR };
/* The redir role's TCP: how connections were sent to it (nftables REDIRECT or TPROXY). */
enum config_tcp_redir { TCP_REDIR_REDIRECT = 0, TCP_REDIR_TPROXY };
enum config_balance { BALANCE_REUSEPORT = 0, BALANCE_SHARED, BALANCE_DISPATCH };
enum config_mode { MODE_TCP_ONLY = 0, MODE_TCP_AND_UDP, MODE_UDP_ONLY };
/* What the local role's port speaks: both (told apart by the first byte), SOCKS only, HTTP only. */
enum config_protocol { PROTOCOL_MIXED = 0, PROTOCOL_SOCKS, PROTOCOL_HTTP };
/* How the local roles choose among several servers ("balance_servers"). */
enum config_balance_servers { BALANCE_SERVERS_LATENCY = 0, BALANCE_SERVERS_ROUND_ROBIN };

#define CONFIG_MAX_SERVERS 8
/* Networks in "proxy_protocol_from". */
#define CONFIG_MAX_PROXY_FROM 64
/* Server ports of one instance ("port_password", or the server role's "servers"): libev users
 * run hundreds of ports under ss-manager. Each costs the master 2 descriptors per worker slot
 * (TCP and UDP, SO_REUSEPORT), so 1024 ports and 4 workers already need 8192 of them. */
#define CONFIG_MAX_PORTS 1024
/* Listen sockets of one process: (port, address) pairs, every port on each of its "server"
 * addresses, or the local address. Sizes a worker's listener arrays and the master's socket
 * set; here, beside the limits it follows, so that the socket layer needs no worker header. */
#define CONFIG_MAX_LISTEN 1024
#define WORKER_MAX_LISTEN CONFIG_MAX_LISTEN

/* The keys that reuseproxy implements, as indexes into struct config's pos[]. */
enum config_key {
    CONFIG_KEY_SERVER = 0,
    CONFIG_KEY_SERVER_PORT,
    CONFIG_KEY_PASSWORD,
    CONFIG_KEY_KEY,
    CONFIG_KEY_METHOD,
    CONFIG_KEY_TIMEOUT,
    CONFIG_KEY_MODE,
    CONFIG_KEY_FAST_OPEN,
    CONFIG_KEY_REUSE_PORT,
    CONFIG_KEY_NO_DELAY,
    CONFIG_KEY_IPV6_FIRST,
    CONFIG_KEY_NAMESERVER,
    CONFIG_KEY_LOCAL_ADDRESS,
    CONFIG_KEY_LOCAL_PORT,
    CONFIG_KEY_TUNNEL_ADDRESS,
    CONFIG_KEY_USER,
    CONFIG_KEY_NOFILE,
    CONFIG_KEY_ACL,
    CONFIG_KEY_USE_SYSLOG,
    CONFIG_KEY_ROLE,
    CONFIG_KEY_WORKERS,
    CONFIG_KEY_BALANCE,
    CONFIG_KEY_BLOCK_PRIVATE,
    CONFIG_KEY_UDP_TIMEOUT,
    CONFIG_KEY_UDP_MAX_ASSOCIATIONS,
    CONFIG_KEY_METRICS_ADDRESS,
    CONFIG_KEY_DRAIN_TIMEOUT,
    CONFIG_KEY_CONNECT_TIMEOUT,
    CONFIG_KEY_REPLAY_PROTECTION,
    CONFIG_KEY_REPLAY_CAPACITY,
    CONFIG_KEY_VERBOSE,
    CONFIG_KEY_USERS,
    CONFIG_KEY_MAX_HANDSHAKES_PER_SOURCE,
    CONFIG_KEY_PLUGIN,
    CONFIG_KEY_PLUGIN_OPTS,
    CONFIG_KEY_PLUGIN_ARGS,
    CONFIG_KEY_PLUGIN_MODE,
    CONFIG_KEY_PROTOCOL,
    CONFIG_KEY_LOCAL_USERS,
    CONFIG_KEY_SERVER_URL,
    CONFIG_KEY_SERVERS,
    CONFIG_KEY_SERVER_CHECK_INTERVAL,
    CONFIG_KEY_BALANCE_SERVERS,
    CONFIG_KEY_TCP_REDIR,
    CONFIG_KEY_LOCAL_IPV4_ADDRESS,
    CONFIG_KEY_LOCAL_IPV6_ADDRESS,
    CONFIG_KEY_OUTBOUND_BIND_INTERFACE,
    CONFIG_KEY_KEEP_ALIVE,
    CONFIG_KEY_MPTCP,
    CONFIG_KEY_FWMARK,
    CONFIG_KEY_TCP_TPROXY,
    CONFIG_KEY_PROXY_PROTOCOL,
    CONFIG_KEY_PROXY_PROTOCOL_FROM,
    CONFIG_KEY_SHARED_STORE,
    CONFIG_KEY_SHARED_STORE_FAILURE,
    CONFIG_KEY_SHARED_STORE_TIMEOUT_MS,
    CONFIG_KEY_SHARED_STORE_USERS,
    CONFIG_KEY_STALL_TIMEOUT_MS,
    CONFIG_KEY_CPU_AFFINITY,
    CONFIG_KEY_MANAGER_ADDRESS,
    CONFIG_KEY_MANAGER_ALLOW_REMOTE,
    CONFIG_KEY_MANAGER_STATE,
    CONFIG_KEY_PORT_PASSWORD,
    CONFIG_KEY_COUNT
};

/* Where a key stood in the file: 1-based line and column of its opening quote (columns count
 * characters, as jansson's do). line 0: not from the file (a default, or the command line). */
struct config_pos {
    int line;
    int column;
};

/* ---- Ports, users and the plugin ----
 * A server has one or more ports, each with its own method, key, users and mode:
 *  - the file's own: "server_port" with "method", "password"/"key", "users" and "mode";
 *  - libev's "port_password": {"8381": "pw1", "8382": "pw2"}: one port per member, every one
 *    with the file's method and mode, on each "server" address (port_password wins over
 *    server_port, as in libev, with a warning);
 *  - the server role's "servers" (shadowsocks-rust's shape): one port per entry, each with its
 *    "server", "server_port", "method", "password" or "users", and "mode".
 * config_validate() derives ports[] (the keys of each) and the listen list from them. The local
 * roles have one port, ports[0], with their server's method and key. The SIP003 plugin
 * ("plugin", "plugin_opts", "plugin_args", "plugin_mode") is struct config_plugin, run by
 * plugin.c. */
#define CONFIG_MAX_NAMESERVERS 8
/* A SIP022 client's "iPSK:...:uPSK" password: identity PSKs in front of the user PSK. */
#define CONFIG_MAX_IDENTITY_KEYS 4
/* Users of one server port (SIP004: trial decryption; SIP022: SIP023 identity headers). */
#define CONFIG_MAX_USERS 65536

struct config_user {
    char *name;            /* as written; appears in logs */
    char *password;        /* the password (SIP022: the uPSK in base64), or "key" as written */
    bool is_key;           /* given as "key": base64 of the key itself */
    struct crypto_key key; /* the key (SIP022: the uPSK), derived by config_validate() */
    int metrics_slot;      /* its series' user slot (metrics.h), set by the master; -1: none */
};

/* One "port_password" member or server-role "servers" entry, as written (config_load). */
struct config_port_source {
    struct netaddr_endpoint addr; /* "servers": the entry's "server" (port: its own or
                                   * "server_port"); "port_password": only the port is set */
    char *password;               /* NULL: the file's */
    bool method_set, mode_set;
    enum crypto_method method;
    enum config_mode mode;
    struct config_user *users; /* "users", or NULL */
    int n_users;
};

struct config_port {
    uint16_t port;             /* where this port's listen addresses listen */
    enum crypto_method method; /* its method, and so its protocol (crypto_method_info) */
    enum config_mode mode;     /* which of TCP and UDP it serves */
    /* The master key, derived once by config_validate(). SIP022: the PSK; a server with users:
     * its identity PSK; a client with "iPSK:uPSK": the uPSK, its session key. */
    struct crypto_key key;
    bool has_key;              /* false: a SIP004 port with users only (no key of its own) */
    /* A SIP022 client's identity PSKs, in the order of its password; 0 without EIH. */
    struct crypto_key identity_keys[CONFIG_MAX_IDENTITY_KEYS];
    int n_identity_keys;
    struct config_user *users; /* its "users" (not owned: the file's or its entry's), or NULL */
    int n_users;
    int metrics_slot;          /* its series' port slot (metrics.h), set by the master; -1 */
};

enum config_plugin_mode { CONFIG_PLUGIN_TCP_ONLY = 0, CONFIG_PLUGIN_TCP_AND_UDP };

/* Arguments of "plugin_args" (shadowsocks-rust's key), at most. */
#define CONFIG_MAX_PLUGIN_ARGS 32

/* "shared_store": Redis shared by several hosts (shared_store.h). */
struct config_shared {
    char *url;             /* "redis://IP[:port][/db]" or "unix:/path" as written; NULL: off */
    char *failure_text;    /* "shared_store_failure" as written, or NULL */
    char *users_key;       /* "shared_store_users": the Redis hash of users, or NULL */
    /* typed by config_validate(): */
    bool is_unix;
    char host[256];        /* an IP literal (a name would need a blocking lookup) */
    uint16_t port;         /* default 6379 */
    int db;                /* default 0 */
    char path[108];        /* unix socket */
    bool refuse;           /* "shared_store_failure": "refuse" (default "allow") */
    int timeout_ms;        /* "shared_store_timeout_ms", default 50 */
};

struct config_plugin {
    char *plugin;      /* "plugin" / --plugin as written (a name searched in PATH, or a path);
                        * NULL: no plugin */
    char *plugin_opts; /* "plugin_opts" / --plugin-opts: SS_PLUGIN_OPTIONS, or NULL */
    char *plugin_args[CONFIG_MAX_PLUGIN_ARGS]; /* "plugin_args": extra argv, in order */
    int n_plugin_args;
    enum config_plugin_mode plugin_mode; /* "plugin_mode": whether UDP goes through it too */
    /* Set by plugin_prepare() in the master before any fork, not by the file: the loopback
     * address between the plugin and the workers (SS_LOCAL_HOST/SS_LOCAL_PORT). The server
     * role's workers listen there; the local roles' workers connect there. */
    struct netaddr_endpoint local;
};

/* One server of the local and tunnel roles: where it is and how to speak to it. From a
 * "servers" entry (its own method and password), or from a "server" entry with the file's
 * "server_port", "method" and "password"/"key". config_validate() derives them. */
struct config_upstream {
    struct netaddr_endpoint addr; /* with its port */
    enum crypto_method method;
    struct crypto_key key; /* the master key of its method and password */
};

/* How to read the fields: the text a person wrote is kept (char *) for messages and for
 * comparing on reload; everything the program acts on is typed, parsed once, either when the
 * file is loaded (server, method) or by config_validate() after the command line is merged
 * (the other addresses, the key, the listen list). --check runs the same steps as a start, so
 * what --check accepts, a start accepts. */
struct config {
    char *path; /* file it came from, or NULL (command line only) */

    /* shadowsocks-libev keys */
    /* "server": a string or an array of strings, each parsed as libev's parse_addr() reads it
     * (netaddr_parse_hostport with NETADDR_PORT_OPTIONAL): an IP literal or a host name alone
     * (target.port 0: server_port applies), or "host:port" / "[ipv6]:port" */
    struct netaddr_endpoint server[CONFIG_MAX_SERVERS];
    int n_server;
    int server_port;           /* 0 = unset */
    char *password;            /* NULL = unset */
    char *key;                 /* base64, NULL = unset */
    enum crypto_method method; /* default chacha20-ietf-poly1305; names match in any case */
    int timeout;               /* seconds, default 60 */
    enum config_mode mode;     /* default tcp_only, as libev */
    bool fast_open;
    bool reuse_port;
    bool no_delay;
    bool ipv6_first;
    char *nameserver;     /* as written: "1.1.1.1" or "1.1.1.1,[::1]:5353", NULL */
    char *local_address;  /* as written; NULL: not given (the local roles use 127.0.0.1) */
    int local_port;       /* 0 = unset */
    char *tunnel_address; /* as written: "host:port", tunnel role */
    char *user;
    int nofile; /* 0 = leave RLIMIT_NOFILE */
    char *acl;  /* path of a libev ACL file */
    bool use_syslog;

    /* reuseproxy's own keys */
    enum config_role role;       /* default server */
    int workers;                 /* default: online CPUs; 0 = single process */
    enum config_balance balance; /* default reuseport */
    bool block_private;          /* default true */
    int udp_timeout;             /* seconds, default 300 */
    int udp_max_associations;    /* default 65536 */
    char *metrics_address;       /* as written: "127.0.0.1:9100", NULL = off */
    int drain_timeout;           /* seconds, default 30 */
    int stall_timeout_ms; /* a worker silent this long is steered around (steer.h); 0 = off */
    bool cpu_affinity;    /* worker i pinned to CPU i, connections to the receiving CPU's */
    int connect_timeout;         /* seconds, default 10 */
    bool replay_protection;      /* default true */
    int replay_capacity;         /* salts remembered, default 1048576 */
    int verbose;                 /* 0..2 from -v / "verbose" */
    int max_handshakes_per_source; /* per worker and source host, 0 = no limit (default) */
    enum config_protocol protocol; /* local role: "mixed" (default), "socks" or "http" */
    /* local role: "local_users", the names and passwords a SOCKS5 (RFC 1929) or HTTP (Basic)
     * client must give; NULL: no authentication (key unused) */
    struct config_user *local_users;
    int n_local_users;
    /* "servers" (shadowsocks-rust's shape): per entry, a "method" (server_method_set) and a
     * "password" (NULL: the file's; port_sources[i]'s, not owned), beside server[i], for the
     * first CONFIG_MAX_SERVERS entries. n_servers_entries: how many came from "servers" (0: the
     * servers are "server"'s); every entry is in port_sources. */
    enum crypto_method server_method[CONFIG_MAX_SERVERS];
    bool server_method_set[CONFIG_MAX_SERVERS];
    char *server_password[CONFIG_MAX_SERVERS];
    int n_servers_entries;
    int server_check_interval;                   /* seconds between probes, default 10 */
    enum config_balance_servers balance_servers; /* default latency */
    char *server_url; /* "server_url" as written (a SIP002 URI), or NULL; config_load() has
                       * filled server, server_port, method, password and plugin from it */
    enum config_tcp_redir tcp_redir; /* redir role: "redirect" (default) or "tproxy" */
    bool tcp_tproxy;                 /* libev ss-redir's spelling: true = tcp_redir "tproxy" */
    /* Outgoing sockets (towards targets and the server, TCP and UDP), every role: */
    char *local_ipv4_address;      /* libev's: the source address of IPv4 ones, NULL */
    char *local_ipv6_address;      /* libev's: the source address of IPv6 ones, NULL */
    char *outbound_bind_interface; /* shadowsocks-rust's: SO_BINDTODEVICE, NULL */
    int keep_alive;                /* shadowsocks-rust's: TCP keepalive idle seconds, 0 = off
                                    * (also on accepted connections) */
    bool mptcp;                    /* libev's: IPPROTO_MPTCP for outgoing TCP */
    int fwmark;                    /* SO_MARK on outgoing sockets, 0 = none */
    /* "proxy_protocol": every connection to a server listener starts with a PROXY protocol
     * header (v1 or v2, proxy_proto.h) from a balancer in "proxy_protocol_from" (CIDRs, required
     * with it), whose client address then stands for the connection's. */
    bool proxy_protocol;
    struct netaddr_cidr proxy_protocol_from[CONFIG_MAX_PROXY_FROM];
    int n_proxy_protocol_from;
    struct config_shared shared; /* "shared_store" and its companions */
    /* The ss-manager API (manager.h): "manager_address", a unix socket path or "host:port" (an
     * IP literal, loopback unless "manager_allow_remote"); "manager_state", the file that keeps
     * the API's ports across restarts. NULL: off. */
    char *manager_address;
    bool manager_allow_remote;
    char *manager_state;
    struct config_user *users;   /* the file's "users" (its own port's), or NULL */
    int n_users;
    /* "port_password" members, or the "servers" entries (every role: the local roles copy the
     * first CONFIG_MAX_SERVERS into server[] above), as written; n_port_sources 0: none */
    struct config_port_source *port_sources;
    int n_port_sources;
    /* config_add_manager_ports(): the last n_manager_ports sources are the ss-manager API's;
     * file_port_source: the file's own port ("server_port") became port_sources[0] */
    int n_manager_ports;
    bool file_port_source;

    struct config_pos pos[CONFIG_KEY_COUNT]; /* where each key was read from path */

    /* ---- Typed values config_validate() derives from the keys above ---- */
    /* Where to listen: every server port on each of its addresses (the "server" list, each with
     * its own port or server_port; "port_password": each port on every address; "servers": each
     * entry's), or local_address:local_port for the local roles. listen_port[i]: the index in
     * ports[] that listen[i] serves. Names are resolved once by the master at start-up
     * (sockets.c), never parsed again. Allocated by config_validate(). */
    struct netaddr_endpoint *listen;
    int *listen_port;
    int n_listen;
    struct netaddr_endpoint local_listen; /* local roles: local_address, parsed */
    /* The local roles' server: server[0] with its port. */
    struct netaddr_endpoint upstream;
    /* The local roles' servers, in order (upstream is upstreams[0].addr); n_upstream 0 in the
     * server role. */
    struct config_upstream upstreams[CONFIG_MAX_SERVERS];
    int n_upstream;
    struct netaddr_endpoint tunnel; /* tunnel role: tunnel_address */
    struct netaddr_outgoing outgoing; /* the outgoing-socket keys above, typed */
    bool has_metrics;
    struct netaddr_endpoint metrics; /* metrics_address, an IP literal (the master does not
                                      * resolve names) */
    struct netaddr_endpoint nameservers[CONFIG_MAX_NAMESERVERS];
    int n_nameserver; /* 0: the system's resolv.conf */
    struct config_port *ports; /* allocated by config_validate(); 1..CONFIG_MAX_PORTS */
    int n_port;
    struct config_plugin plugin; /* "plugin" and its companions, see above */
    /* manager_address typed: a unix socket (manager_path) or an address (manager) */
    bool has_manager;
    bool manager_is_unix;
    char manager_path[108]; /* sun_path's size */
    struct netaddr_endpoint manager;
};

/* Fills c with every default. */
void config_defaults(struct config *c);

/* Loads path over the defaults already in c (a key given as null keeps what c holds). On error
 * returns -1 and writes a message of the form "FILE:LINE:COLUMN: what was expected" into err;
 * c may then be partly filled and must still be freed with config_free(). Warnings (libev keys
 * that reuseproxy accepts but does not implement) are logged with log_warn, naming the key and
 * position. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Same, from a string; name stands for the file name in messages. */
int config_load_string(struct config *c, const char *json, const char *name, char *err,
                       size_t errlen);

/* Cross-key checks after file and command line are merged (a server role needs a port and a
 * password or key; a tunnel needs tunnel_address; a placeholder password on a non-loopback
 * address is refused...), and the typed values derived from the keys: every address parsed
 * (listen, upstream, tunnel, metrics, nameservers) and every port's keys derived into ports[].
 * Both --check and a start run it, so they agree. Returns -1 with a message in err that names
 * FILE:LINE:COLUMN of the key at fault when it came from the file. */
int config_validate(struct config *c, char *err, size_t errlen);
/* "shared_store_users": adds the users of that Redis hash (name -> password; SIP022: the uPSK
 * in base64) to the file's, after file and command line are merged and before
 * config_validate(), which checks them all alike. The only blocking Redis call (at most
 * CONFIG_SHARED_USERS_TIMEOUT seconds to connect, as much to answer): at start, --check and
 * each reload. Nothing to do without the key. Returns -1 with a message in err. */
int config_load_shared_users(struct config *c, char *err, size_t errlen);
#define CONFIG_SHARED_USERS_TIMEOUT 2
/* The ids of "user": a user name, or a numeric uid as libev also takes. 0, or -1 when this
 * system has no such user. */
int config_user_ids(const char *user, uid_t *uid, gid_t *gid);

void config_free(struct config *c);
/* The ss-manager API's ports (manager.h) added to a configuration just loaded, before
 * config_validate(), which then checks them as it checks the file's ports (a port the file has
 * too is refused there). Each listens on every "server" address with its own method and
 * password. Returns 0, or -1 with the reason in err. */
struct manager_ports;
int config_add_manager_ports(struct config *c, const struct manager_ports *p, char *err,
                             size_t errlen);
/* Forgets the file's "servers" entries (-s replaces them): their methods, passwords, users. */
void config_servers_clear(struct config *c);
/* The index in c->ports of the port numbered port, or -1. */
int config_port_index(const struct config *c, uint16_t port);

/* Reloads (config_live.c): NULL when new differs from old only in what running workers apply
 * live, the users of a server's ports (added, removed, re-keyed; ports that had users and still
 * have some), with nothing else changed. Otherwise the setting whose change needs new workers
 * ("timeout", "acl", ..., "nothing" when the two are the same: a reload with no change replaces
 * the workers, which re-read the ACL file and resolv.conf). One place decides, so the master and
 * the manager API agree. */
const char *config_live_blocker(const struct config *old, const struct config *new);

const char *config_role_name(enum config_role r);
const char *config_balance_name(enum config_balance b);
const char *config_mode_name(enum config_mode m);
const char *config_plugin_mode_name(enum config_plugin_mode m);
const char *config_protocol_name(enum config_protocol p);

/* Online CPUs (sysconf(_SC_NPROCESSORS_ONLN)) clamped to 1..CONFIG_MAX_WORKERS. */
#define CONFIG_MAX_WORKERS 256
int config_default_workers(void);

/* Name lookups shared with the command line. Each returns 0 and sets *out, or -1. */
int config_role_from_name(const char *name, enum config_role *out);
int config_balance_from_name(const char *name, enum config_balance *out);
int config_mode_from_name(const char *name, enum config_mode *out);
/* A decimal integer in min..max, digits only (no sign, no spaces). Returns 0 or -1. */
int config_parse_int(const char *s, int min, int max, int *out);
/* The file that exec would run for "plugin": a name with a '/' as it is, any other name looked
 * up in $PATH as execvp() does. Writes it into out (cap bytes) and returns 0, or -1 when there
 * is no such executable file. */
int config_plugin_path(const char *plugin, char *out, size_t cap);
/* A SIP002 URI (ss_uri.h) into c: server (a list of one), server_port, method, password (the
 * "key" dropped) and, when the URI names one, plugin and plugin_opts. "server_url",
 * --server-url and -s ss://... all go through it. Returns 0, or -1 with what is wrong in err. */
int config_apply_server_url(struct config *c, const char *uri, char *err, size_t errlen);
/* The SIP002 URI a client imports for this server configuration (--print-uri): server[0],
 * its port, the method, the password, and the plugin as its client end runs it. Returns 0, or
 * -1 with the reason in err (no password, a wildcard address, too long). */
int config_server_url(const struct config *c, char *out, size_t cap, char *err, size_t errlen);
/* The netaddr_parse_hostport() flags each address key is read with, so the command line
 * checks its options exactly as the file's keys are checked. */
#define CONFIG_SERVER_FLAGS NETADDR_PORT_OPTIONAL
#define CONFIG_TUNNEL_FLAGS 0
#define CONFIG_METRICS_FLAGS NETADDR_NUMERIC
#define CONFIG_NAMESERVER_FLAGS (NETADDR_PORT_OPTIONAL | NETADDR_NUMERIC)
#define CONFIG_LOCAL_ADDRESS_FLAGS NETADDR_PORT_OPTIONAL
/* True for an address that only this machine can reach: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104
 * or "localhost". */
bool config_is_loopback(const char *host);
/* True for a password that is a known placeholder: empty, an example password of the docs or
 * of shadowsocks ("SECRET", "barfoo!", "password", "your-password", ...) or anything starting
 * with "change", with case and all but letters and digits ignored. */
bool config_is_placeholder_password(const char *password);

#endif
