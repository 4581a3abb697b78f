/* cli.h: the command line. cli_parse() reads argv into struct cli_options; cli_apply() lays the
 * options given on the command line over a loaded config (command line wins). The options are
 * shadowsocks-libev's (ss-server, ss-local, ss-tunnel) plus reuseproxy's own long options. */
#ifndef RP_CLI_H
#define RP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct cli_options {
    const char *config_path;   /* -c */
    const char *servers[CONFIG_MAX_SERVERS]; /* -s, repeatable (as libev) */
    int n_server;
    int server_port;           /* -p, 0 = not given */
    int local_port;            /* -l */
    const char *local_address; /* -b */
    const char *password;      /* -k */
    const char *key;           /* --key (base64) */
    const char *method;        /* -m, canonical spelling */
    int timeout;               /* -t, 0 = not given */
    int mode;                  /* -u: MODE_TCP_AND_UDP, -U: MODE_UDP_ONLY, -1 = not given */
    int verbose;               /* count of -v */
    int workers;               /* -w / --workers, -1 = not given */
    const char *role;          /* --role, checked to be a role name */
    const char *tunnel_address; /* -L host:port (as ss-tunnel), checked as "tunnel_address" */
    const char *nameserver;     /* -d, checked as "nameserver" */
    const char *user;          /* -a */
    int nofile;                /* -n, 0 = not given */
    const char *acl;           /* --acl FILE */
    const char *balance;       /* --balance, checked to be a balance mode */
    const char *metrics_address; /* --metrics host:port, checked as "metrics_address" (an IP
                                  * literal is then required by config_validate) */
    bool fast_open;            /* --fast-open */
    bool reuse_port;           /* --reuse-port */
    bool no_delay;             /* --no-delay */
    bool mptcp;                /* --mptcp */
    bool ipv6_first;           /* -6 */
    int check;                 /* --check */
    int help;                  /* -h / --help */
    int version;               /* --version */
    const char *genkey;        /* --genkey METHOD: the method's canonical name, or NULL */
    const char *plugin;        /* --plugin, as libev's (the "plugin" key) */
    const char *plugin_opts;   /* --plugin-opts (the "plugin_opts" key) */
    const char *server_url;    /* --server-url or -s ss://...: a SIP002 URI, checked */
    int print_uri;             /* --print-uri */
    int no_qr;                 /* --no-qr: the URI without its QR code */
};

enum cli_result { CLI_OK = 0, CLI_ERROR = -1 };

/* Returns CLI_OK or CLI_ERROR with a message naming the bad option in err. The strings in o
 * point into argv. Options of shadowsocks-libev that reuseproxy does not implement (--mtu,
 * -i, --manager-address) are warned about with log_warn and ignored; -f (daemonize) is
 * refused, since a caller that expects the command to return would wait forever. */
int cli_parse(struct cli_options *o, int argc, char **argv, char *err, size_t errlen);
/* Applies the given options over c (-s read into the typed server list, -m as the method
 * enum). The other address options are read into their typed fields by config_validate(), which
 * runs after this for --check and for a start alike. Returns 0, or -1 with a message in err. */
int cli_apply(const struct cli_options *o, struct config *c, char *err, size_t errlen);
void cli_usage(FILE *out, const char *prog);

#endif
