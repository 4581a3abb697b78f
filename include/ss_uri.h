/* ss_uri.h: SIP002 URIs (https://shadowsocks.org/doc/sip002.html), the ss:// links clients
 * import: ss://userinfo@host:port[/][?plugin=...][#tag]. A pure parser and writer over strings:
 * no I/O, no global state, no method check (the configuration checks the method it is given). */
#ifndef RP_SS_URI_H
#define RP_SS_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest URI read or written: a password of a few hundred bytes, a host name of 253, a plugin
 * with its options. Longer input is refused rather than cut. */
#define SS_URI_MAX 4096

struct ss_uri {
    char method[64];        /* as written ("aes-256-gcm", "2022-blake3-aes-128-gcm") */
    char password[512];     /* decoded */
    char host[256];         /* an IPv6 literal without its brackets */
    uint16_t port;          /* 1..65535 */
    char plugin[256];       /* "" = none: the plugin query parameter up to its first ';' */
    char plugin_opts[1024]; /* what follows that ';' ("obfs=http;obfs-host=..."), or "" */
    char tag[256];          /* the fragment, decoded; "" = none */
};

/* Reads uri into *out. The userinfo is either base64url (RFC 4648 section 5, padding optional;
 * the standard alphabet is also taken) of "method:password", or "method:password" with
 * percent-encoding (SIP002 requires this form for the SIP022 methods); the legacy form
 * ss://base64(method:password@host:port) is read too. Unknown query parameters are ignored, as
 * SIP002 asks. Returns 0, or -1 with a message saying what is wrong in err. */
int ss_uri_parse(const char *uri, struct ss_uri *out, char *err, size_t errlen);

/* Writes the URI of u into out (cap bytes, NUL-terminated): percent-encoded userinfo when
 * plain is true (what SIP002 asks for the SIP022 methods), else base64url without padding.
 * Returns its length, or -1 when it does not fit. */
int ss_uri_format(const struct ss_uri *u, bool plain, char *out, size_t cap);

#endif
