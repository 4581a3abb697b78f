/* main.c: command line -> config -> a master with workers, or a single process (workers: 0).
 * The only place besides config loading that exits on an error. */
#include "autoconfig.h"

#include <ares.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "acl.h"
#include "cli.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "master.h"
#include "qr_term.h"
#include "single.h"
#include "ss2022.h"
#include "worker.h"

static void print_version(void)
{
    printf("reuseproxy %s\n", PACKAGE_VERSION);
    printf("libev %d.%d\n", ev_version_major(), ev_version_minor());
    printf("mbedTLS %s\n", crypto_mbedtls_version());
    printf("c-ares %s\n", ares_version(NULL));
    printf("jansson %s\n", jansson_version_str());
    printf("AEAD backend: %s (%s)\n", crypto_backend_name(), crypto_backend_version());
    printf("QR codes (--print-uri): %s\n", qr_term_available() ? "libqrencode" : "none");
}

/* --genkey METHOD: a random key of the method's length in standard base64, as the SIP022
 * methods take it for "password" (and the others for "key"). */
static int print_genkey(const char *method)
{
    int m = crypto_method_by_name(method);
    uint8_t key[CRYPTO_MAX_KEY];
    char b64[SS2022_KEY_B64_MAX];

    if (m < 0)
        return 1;
    size_t len = crypto_method_info((enum crypto_method)m)->key_len;
    if (crypto_random(key, len) != 0) {
        fprintf(stderr, "reuseproxy: --genkey: no random bytes\n");
        return 1;
    }
    ss2022_base64_encode(key, len, b64);
    crypto_wipe(key, sizeof key);
    printf("%s\n", b64);
    return 0;
}

/* --print-uri: the SIP002 URI a client imports for this server's configuration, then, when
 * stdout is a terminal and the build has libqrencode, its QR code for a phone to scan (a pipe
 * or a file gets the URI alone, as with --no-qr: a script wants one line). */
static int print_uri(const struct config *cfg, bool qr)
{
    char uri[4096], err[400];
    int rc = 0;

    if (config_server_url(cfg, uri, sizeof uri, err, sizeof err) != 0) {
        fprintf(stderr, "reuseproxy: %s\n", err);
        return 1;
    }
    printf("%s\n", uri);
    if (qr && qr_term_available() && isatty(STDOUT_FILENO)) {
        char *code = malloc(QR_TERM_MAX);
        if (code && qr_term_draw(uri, code, QR_TERM_MAX) > 0) {
            fputs(code, stdout);
        } else {
            fprintf(stderr, "reuseproxy: --print-uri: %s\n",
                    code ? "the URI does not fit a QR code" : "out of memory");
            rc = 1;
        }
        if (code)
            explicit_bzero(code, QR_TERM_MAX); /* it holds the password too */
        free(code);
    }
    explicit_bzero(uri, sizeof uri);
    return rc;
}

/* Descriptors 0-2 must exist, or the first socket would become "stdin" and be closed or
 * written to by mistake (CI and daemons may start us with them closed). */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
            if (open("/dev/null", O_RDWR) < 0)
                exit(1);
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (want <= 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rl.rlim_cur = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_max = rl.rlim_cur; /* may need privileges; say so if refused */
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warn("nofile %d: %s", want, strerror(errno));
}

static int done(struct config *cfg, int status)
{
    config_free(cfg);
    free(cfg);
    return status;
}

/* Says what the ACL file does in this role (--check prints it). worker_preflight() has loaded it
 * already, and refused a bad line with FILE:LINE. */
static void acl_report(const struct config *cfg, bool check)
{
    char err[1024], what[200];
    bool server = cfg->role == ROLE_SERVER;
    struct acl *a = acl_new(false);
    if (!a || acl_load_file(a, cfg->acl, err, sizeof err) < 0) {
        acl_free(a);
        return;
    }
    const char *note = acl_role_note(a, server);
    if (note)
        log_warn("acl %s: %s", cfg->acl, note);
    acl_describe(a, server, what, sizeof what);
    if (check)
        printf("acl %s: %s\n", cfg->acl, what);
    else
        log_info("acl %s: %s", cfg->acl, what);
    acl_free(a);
}

int main(int argc, char **argv)
{
    struct cli_options opts;
    struct config *cfg = calloc(1, sizeof *cfg);
    char err[1024];

    ensure_std_fds();
    signal(SIGPIPE, SIG_IGN);
    log_init("reuseproxy", LOG_LEVEL_INFO, false);
    if (!cfg)
        return 1;
    config_defaults(cfg);
    if (argc <= 1) { /* nothing to do without a file or options: say how to give them */
        cli_usage(stderr, "reuseproxy");
        return done(cfg, 1);
    }
    if (cli_parse(&opts, argc, argv, err, sizeof err) != CLI_OK) {
        fprintf(stderr, "reuseproxy: %s\nTry 'reuseproxy --help' for help.\n", err);
        return done(cfg, 1);
    }
    if (opts.help) {
        cli_usage(stdout, "reuseproxy");
        return done(cfg, 0);
    }
    if (opts.version) {
        print_version();
        return done(cfg, 0);
    }
    if (opts.genkey)
        return done(cfg, print_genkey(opts.genkey));
    if ((opts.config_path && config_load(cfg, opts.config_path, err, sizeof err) < 0) ||
        cli_apply(&opts, cfg, err, sizeof err) < 0 ||
        config_load_shared_users(cfg, err, sizeof err) < 0 ||
        config_validate(cfg, err, sizeof err) < 0 ||
        (!opts.print_uri && worker_preflight(cfg, err, sizeof err) < 0)) {
        /* the preflight: what --check accepts, the workers start with (issue 20) */
        fprintf(stderr, "reuseproxy: %s\n", err);
        return done(cfg, 1);
    }
    if (opts.print_uri)
        return done(cfg, print_uri(cfg, !opts.no_qr));
    if (cfg->acl)
        acl_report(cfg, opts.check);
    if (opts.check) {
        printf("configuration OK\n");
        return done(cfg, 0);
    }
    int verbose = cfg->verbose > 2 ? 2 : cfg->verbose;
    log_init("reuseproxy", LOG_LEVEL_INFO + (verbose > 1 ? 1 : verbose), cfg->use_syslog);
    raise_nofile(cfg->nofile);
    if (cfg->user && geteuid() != 0)
        log_warn("\"user\" %s is applied only when started as root; running as uid %ld",
                 cfg->user, (long)geteuid());
    if (cfg->workers > 0)
        return master_run(cfg, &opts, argv); /* the master owns cfg from here on */
    return done(cfg, single_run(cfg));
}
