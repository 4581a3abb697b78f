/* cli.h: the command line. cli_parse() reads argv into struct cli_options; cli_apply() lays the
 * options given on the command line over a loaded config (command line wins). */
#ifndef RP_CLI_H
#define RP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct cli_options {
    const char *config_path;   /* -c */
    const char *server;        /* -s */
    int server_port;           /* -p, 0 = not given */
    int local_port;            /* -l */
    const char *local_address; /* -b */
    const char *password;      /* -k */
    const char *method;        /* -m */
    int timeout;               /* -t, 0 = not given */
    int mode;                  /* -u: MODE_TCP_AND_UDP, -U: MODE_UDP_ONLY, -1 = not given */
    int verbose;               /* count of -v */
    int workers;               /* -w / --workers, -1 = not given */
    const char *role;          /* --role */
    const char *tunnel_address;/* -L host:port (as ss-tunnel) */
    int check;                 /* --check */
    int help;                  /* -h / --help */
    int version;               /* --version */
};

enum cli_result { CLI_OK = 0, CLI_ERROR = -1 };

/* Returns CLI_OK or CLI_ERROR with a message naming the bad option in err. */
int cli_parse(struct cli_options *o, int argc, char **argv, char *err, size_t errlen);
/* Applies the given options over c. Returns 0, or -1 with a message in err. */
int cli_apply(const struct cli_options *o, struct config *c, char *err, size_t errlen);
void cli_usage(FILE *out, const char *prog);

#endif
