/* manager.c: the ss-manager API's pure codec (see manager.h): one datagram into a command, the
 * replies written, and the list of the API's ports as JSON (the "list" reply and the state file
 * are the same text). No I/O and no state; tests/unit/test_manager.c and the fuzz target
 * tests/fuzz/fuzz_manager.c hold it to that.
 *
 * What is accepted follows both panels' dialects: libev's manager reads "server_port" as a
 * number or a string of digits (src/manager.c get_server), shadowsocks-rust's as a number, and
 * its clients end each command with a newline. Keys of libev's that only tune ss-server's own
 * sockets ("fast_open", "no_delay") are read past, since the file's settings apply to every port
 * here; any other key is refused, so a panel never believes a setting took effect that did not. */
#include "autoconfig.h" /* _GNU_SOURCE first: explicit_bzero */

#include "manager.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails with a reason; returns -1. */
__attribute__((format(printf, 3, 4))) static int manager_why(char *why, size_t whylen,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && whylen)
        vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "server_port": 8001 or "8001" (libev), in 1..65535. */
static int manager_read_port(const json_t *v, uint16_t *out)
{
    long long n = -1;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 5 || strspn(s, "0123456789") != len)
            return -1;
        n = atoll(s);
    }
    if (n < 1 || n > 65535)
        return -1;
    *out = (uint16_t)n;
    return 0;
}

/* A string without NUL that fits out (cap bytes). */
static int manager_read_text(const json_t *v, char *out, size_t cap)
{
    if (!json_is_string(v))
        return -1;
    size_t len = json_string_length(v);
    if (len >= cap || memchr(json_string_value(v), '\0', len))
        return -1;
    memcpy(out, json_string_value(v), len + 1);
    return 0;
}

/* The members of an "add" object (or a state file entry) into *e. */
static int manager_read_port_object(const json_t *o, struct manager_port *e, char *why,
                                    size_t whylen)
{
    const char *k;
    json_t *v;
    bool has_password = false;

    memset(e, 0, sizeof *e);
    if (!json_is_object(o))
        return manager_why(why, whylen, "expected a JSON object");
    json_object_foreach((json_t *)o, k, v)
    {
        if (strcmp(k, "server_port") == 0) {
            if (manager_read_port(v, &e->port) != 0)
                return manager_why(why, whylen, "\"server_port\": expected 1..65535");
        } else if (strcmp(k, "password") == 0) {
            has_password = true;
            if (manager_read_text(v, e->password, sizeof e->password) != 0)
                return manager_why(why, whylen,
                                   "\"password\": expected a string of at most %d bytes",
                                   MANAGER_PASSWORD_MAX - 1);
        } else if (strcmp(k, "method") == 0) {
            int m = json_is_string(v) ? crypto_method_lookup(json_string_value(v)) : -1;
            if (m < 0)
                return manager_why(why, whylen, "\"method\": expected one of %s",
                                   crypto_method_names());
            e->method = (enum crypto_method)m;
            e->has_method = true;
        } else if (strcmp(k, "fast_open") == 0 || strcmp(k, "no_delay") == 0) {
            if (!json_is_boolean(v))
                return manager_why(why, whylen, "\"%s\": expected true or false", k);
        } else {
            return manager_why(why, whylen, "unknown key \"%.64s\"", k);
        }
    }
    if (e->port == 0)
        return manager_why(why, whylen, "\"server_port\" is missing");
    if (!has_password)
        return manager_why(why, whylen, "\"password\" is missing");
    return 0;
}

/* The JSON after "add:" or "remove:". */
static int manager_parse_params(const char *text, size_t len, struct manager_cmd *out, char *why,
                                size_t whylen)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    if (!o)
        return manager_why(why, whylen, "bad JSON: %s", jerr.text);
    if (out->verb == MANAGER_ADD) {
        rc = manager_read_port_object(o, &out->port, why, whylen);
    } else if (!json_is_object(o) || json_object_size(o) != 1 ||
               manager_read_port(json_object_get(o, "server_port"), &out->port.port) != 0) {
        rc = manager_why(why, whylen, "expected {\"server_port\": 1..65535}");
    } else {
        rc = 0;
    }
    json_decref(o);
    return rc;
}

int manager_parse(const char *buf, size_t len, struct manager_cmd *out, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        enum manager_verb verb;
        bool params;
    } verbs[] = {{"add", MANAGER_ADD, true},
                 {"remove", MANAGER_REMOVE, true},
                 {"ping", MANAGER_PING, false},
                 {"list", MANAGER_LIST, false}};

    memset(out, 0, sizeof *out);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    const char *colon = memchr(buf, ':', len);
    size_t vlen = colon ? (size_t)(colon - buf) : len;
    while (vlen > 0 && buf[vlen - 1] == ' ')
        vlen--;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strlen(verbs[i].name) != vlen || memcmp(buf, verbs[i].name, vlen) != 0)
            continue;
        out->verb = verbs[i].verb;
        if (!verbs[i].params)
            return colon ? manager_why(why, whylen, "\"%s\" takes no parameters", verbs[i].name)
                         : 0;
        if (!colon)
            return manager_why(why, whylen, "\"%s\" needs its JSON parameters", verbs[i].name);
        size_t at = (size_t)(colon - buf) + 1;
        return manager_parse_params(colon + 1, len - at, out, why, whylen);
    }
    return manager_why(why, whylen, "unknown command (expected add, remove, ping or list)");
}

/* ---- the list ---- */

char *manager_ports_to_json(const struct manager_ports *p)
{
    json_t *a = json_array();
    char *text = NULL;

    for (int i = 0; a && i < p->n; i++) {
        const struct manager_port *e = &p->v[i];
        json_t *o = json_pack("{s:i, s:s, s:s}", "server_port", (json_int_t)e->port, "password",
                              e->password, "method", crypto_method_info(e->method)->name);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    if (a)
        text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

int manager_ports_from_json(const char *text, size_t len, struct manager_ports *out, char *why,
                            size_t whylen)
{
    json_error_t jerr;
    json_t *a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    struct manager_port e;
    size_t i;
    int rc = 0;

    manager_ports_free(out);
    if (!a)
        return manager_why(why, whylen, "line %d: bad JSON: %s", jerr.line, jerr.text);
    if (!json_is_array(a))
        rc = manager_why(why, whylen, "expected a JSON array of ports");
    for (i = 0; rc == 0 && i < json_array_size(a); i++) {
        char what[192];
        if (manager_read_port_object(json_array_get(a, i), &e, what, sizeof what) != 0)
            rc = manager_why(why, whylen, "entry %zu: %s", i + 1, what);
        else if (!e.has_method)
            rc = manager_why(why, whylen, "entry %zu: \"method\" is missing", i + 1);
        else if (manager_ports_add(out, &e) != 0)
            rc = manager_why(why, whylen, "entry %zu: port %u twice, or out of memory", i + 1,
                             e.port);
    }
    explicit_bzero(&e, sizeof e);
    json_decref(a);
    if (rc != 0)
        manager_ports_free(out);
    return rc;
}

int manager_format_stat(const uint16_t *ports, const uint64_t *bytes, int n, char *out, size_t cap)
{
    size_t at = 0;
    int w = snprintf(out, cap, "stat: {");

    for (int i = 0; w >= 0 && (size_t)w < cap - at; i++) {
        at += (size_t)w;
        if (i == n) {
            w = snprintf(out + at, cap - at, "}");
            return w >= 0 && (size_t)w < cap - at ? (int)(at + (size_t)w) : -1;
        }
        w = snprintf(out + at, cap - at, "%s\"%u\":%llu", i ? "," : "", ports[i],
                     (unsigned long long)bytes[i]);
    }
    return -1;
}

struct manager_port *manager_ports_find(const struct manager_ports *p, uint16_t port)
{
    for (int i = 0; i < p->n; i++)
        if (p->v[i].port == port)
            return &p->v[i];
    return NULL;
}

int manager_ports_add(struct manager_ports *p, const struct manager_port *e)
{
    if (manager_ports_find(p, e->port))
        return -1;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 8;
        struct manager_port *v = calloc((size_t)cap, sizeof *v);
        if (!v)
            return -1;
        if (p->n)
            memcpy(v, p->v, (size_t)p->n * sizeof *v);
        if (p->v)
            explicit_bzero(p->v, (size_t)p->cap * sizeof *p->v);
        free(p->v);
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = *e;
    return 0;
}

int manager_ports_remove(struct manager_ports *p, uint16_t port)
{
    struct manager_port *e = manager_ports_find(p, port);
    if (!e)
        return -1;
    int i = (int)(e - p->v);
    memmove(e, e + 1, (size_t)(p->n - i - 1) * sizeof *e);
    p->n--;
    explicit_bzero(&p->v[p->n], sizeof *e);
    return 0;
}

int manager_ports_copy(struct manager_ports *dst, const struct manager_ports *src)
{
    manager_ports_free(dst);
    for (int i = 0; i < src->n; i++)
        if (manager_ports_add(dst, &src->v[i]) != 0) {
            manager_ports_free(dst);
            return -1;
        }
    return 0;
}

void manager_ports_free(struct manager_ports *p)
{
    if (p->v)
        explicit_bzero(p->v, (size_t)p->cap * sizeof *p->v);
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}
