/* fuzz_config.c: the configuration loader (config_load_string: JSON through jansson, then every
 * key's checks and the positions reported in errors), and the small string parsers behind it
 * (server entries, host:port, integers, the base64 "key").
 *
 * A configuration comes from the operator, not from the network, but a loader that crashes on a
 * typo, or reports an error without its position, fails the operator at the worst moment.
 * Promises: an error message is NUL-terminated, within the buffer, and starts with the name the
 * text was loaded under; a loaded configuration passes or fails config_validate() without
 * crashing and holds only values in the documented ranges; loading a second text over the
 * first (as the command line and reloads do) frees what it replaces. */
#include "autoconfig.h"

#include <string.h>

#include "config.h"
#include "crypto.h"
#include "fuzz.h"
#include "log.h"

#define NAME "fuzz.json"

static void check_error(const char *err, size_t cap)
{
    FUZZ_CHECK(memchr(err, '\0', cap) != NULL);
    FUZZ_CHECK(strncmp(err, NAME ":", strlen(NAME ":")) == 0);
}

static void check_loaded(const struct config *c)
{
    FUZZ_CHECK(c->n_server >= 0 && c->n_server <= CONFIG_MAX_SERVERS);
    for (int i = 0; i < c->n_server; i++) {
        FUZZ_CHECK(c->server[i] != NULL);
        FUZZ_CHECK(c->server_ports[i] >= 0 && c->server_ports[i] <= 65535);
    }
    FUZZ_CHECK(c->server_port >= 0 && c->server_port <= 65535);
    FUZZ_CHECK(c->local_port >= 0 && c->local_port <= 65535);
    FUZZ_CHECK(c->method && config_method_canonical(c->method) != NULL);
    FUZZ_CHECK(c->timeout >= 1);
    FUZZ_CHECK(c->workers >= 0 && c->workers <= CONFIG_MAX_WORKERS);
    FUZZ_CHECK(c->verbose >= 0 && c->verbose <= 2);
    for (int k = 0; k < CONFIG_KEY_COUNT; k++)
        FUZZ_CHECK(c->pos[k].line >= 0 && c->pos[k].column >= 0);
}

static void check_helpers(const char *text)
{
    char *host = NULL;
    int port = -1;
    int rc = config_split_server(text, &host, &port);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        FUZZ_CHECK(host != NULL);
        FUZZ_CHECK(port >= 0 && port <= 65535);
    }
    free(host);

    char h[256];
    if (config_parse_hostport(text, h, sizeof h, &port) == 0) {
        FUZZ_CHECK(port >= 1 && port <= 65535);
        FUZZ_CHECK(memchr(h, '\0', sizeof h) != NULL);
    }
    struct crypto_key k;
    if (crypto_key_from_base64(&k, CRYPTO_AES_256_GCM, text) == 0)
        FUZZ_CHECK(k.len == 32);
    int v;
    if (config_parse_int(text, 0, 65535, &v) == 0)
        FUZZ_CHECK(v >= 0 && v <= 65535);
    (void)config_is_loopback(text);
    (void)config_is_placeholder_password(text);
    (void)config_method_canonical(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        /* warnings about libev-only keys would flood the fuzzer's output */
        log_set_level(LOG_LEVEL_ERROR);
        quiet = true;
    }
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512];
    struct config c;

    memset(err, 0x5a, sizeof err);
    config_defaults(&c);
    if (config_load_string(&c, text, NAME, err, sizeof err) == 0) {
        check_loaded(&c);
        memset(err, 0x5a, sizeof err);
        if (config_validate(&c, err, sizeof err) != 0)
            FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        /* the same text once more over what it set: every string it replaces is freed */
        memset(err, 0x5a, sizeof err);
        if (config_load_string(&c, text, NAME, err, sizeof err) == 0)
            check_loaded(&c);
        else
            check_error(err, sizeof err);
    } else {
        check_error(err, sizeof err);
    }
    config_free(&c);
    check_helpers(text);
    free(text);
    return 0;
}
