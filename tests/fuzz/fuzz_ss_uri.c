/* fuzz_ss_uri.c: the SIP002 URI parser (ss_uri.c), which reads what a person pastes into -s,
 * --server-url and "server_url". Promises:
 *  - any input is accepted or refused with a message, never a crash or an overread;
 *  - an accepted URI has a host and a port in 1..65535, a method and strings that fit;
 *  - what is accepted, written again by ss_uri_format (in both user info forms), reads back
 *    the same. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "ss_uri.h"

static void check_round_trip(const struct ss_uri *u, bool plain)
{
    char out[SS_URI_MAX * 4], err[256];
    struct ss_uri again;

    int n = ss_uri_format(u, plain, out, sizeof out);
    FUZZ_CHECK(n > 0 && (size_t)n == strlen(out));
    if (n >= SS_URI_MAX)
        return; /* longer than the parser takes: nothing to compare */
    FUZZ_CHECK(ss_uri_parse(out, &again, err, sizeof err) == 0);
    FUZZ_CHECK(strcmp(again.method, u->method) == 0 && strcmp(again.password, u->password) == 0);
    FUZZ_CHECK(strcmp(again.host, u->host) == 0 && again.port == u->port);
    FUZZ_CHECK(strcmp(again.plugin, u->plugin) == 0);
    FUZZ_CHECK(strcmp(again.plugin_opts, u->plugin_opts) == 0 && strcmp(again.tag, u->tag) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uri[SS_URI_MAX + 16], err[256];
    struct ss_uri u;

    if (size >= sizeof uri)
        size = sizeof uri - 1;
    memcpy(uri, data, size);
    uri[size] = '\0';
    err[0] = '\0';
    if (ss_uri_parse(uri, &u, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(u.host[0] && u.port > 0 && u.method[0]);
    FUZZ_CHECK(!u.plugin_opts[0] || u.plugin[0]);
    /* a method or host the writer cannot tell apart from its delimiters is not compared */
    if (strchr(u.host, '[') || strchr(u.host, ']') || strchr(u.host, '/') || strchr(u.host, '?') ||
        strchr(u.host, '#') || strchr(u.host, '@') || strchr(u.method, ':') ||
        strchr(u.plugin, ';'))
        return 0;
    check_round_trip(&u, false);
    check_round_trip(&u, true);
    return 0;
}
