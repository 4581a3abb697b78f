/* acl.c: access control. For the server: where it may connect (block_private, the special-purpose
 * ranges of the IANA IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890 and its updates,
 * plus multicast and reserved space; and the [outbound_block_list] of a shadowsocks-libev ACL
 * file) and which clients it serves (the file's black and white lists and its mode). For the
 * local and tunnel roles: which targets bypass the server (the same lists, read as bypass and
 * proxy lists), and which they refuse ([outbound_block_list] again). The file format and the
 * meaning of each section follow shadowsocks-libev. */
#include "autoconfig.h"

#include "acl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct acl_cidr4 {
    uint32_t addr; /* host order, host bits cleared */
    uint32_t mask;
};

struct acl_cidr6 {
    uint8_t addr[16]; /* compared up to prefix bits only */
    unsigned prefix;
};

struct acl_rule {
    regex_t re;
    char *pattern; /* the line as written: also matched as an exact name */
};

/* One list of the file: the addresses and networks, and the host-name rules. */
struct acl_list {
    struct acl_cidr4 *v4;
    size_t n_v4;
    struct acl_cidr6 *v6;
    size_t n_v6;
    struct acl_rule *rules;
    size_t n_rules;
};

/* libev keeps three lists: [black_list] is also spelled [bypass_list], [white_list] is
 * [proxy_list]; lines before any header go to the black list. */
enum acl_list_id { ACL_LIST_BLACK, ACL_LIST_WHITE, ACL_LIST_BLOCK, ACL_LIST_COUNT };

struct acl {
    bool block_private;
    enum acl_mode mode;
    unsigned sections; /* ACL_SECTION_* seen */
    struct acl_list lists[ACL_LIST_COUNT];
};

/* ---- block_private ------------------------------------------------------------------------ */

#define ACL_V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((c) << 8) | (d))
#define ACL_MASK4(p) ((p) == 0 ? 0u : 0xffffffffu << (32 - (p)))

/* IPv4: the IANA IPv4 Special-Purpose Address Registry (RFC 6890 section 2.2.2, updated by RFC
 * 8190) where "Globally Reachable" is False, plus multicast (RFC 5771) and the reserved class E
 * (RFC 1112 section 4). */
static const struct acl_cidr4 acl_private_v4[] = {
    {ACL_V4(0, 0, 0, 0), ACL_MASK4(8)},         /* "this network", RFC 791 */
    {ACL_V4(10, 0, 0, 0), ACL_MASK4(8)},        /* private, RFC 1918 */
    {ACL_V4(100, 64, 0, 0), ACL_MASK4(10)},     /* shared address space (CGNAT), RFC 6598 */
    {ACL_V4(127, 0, 0, 0), ACL_MASK4(8)},       /* loopback, RFC 1122 */
    {ACL_V4(169, 254, 0, 0), ACL_MASK4(16)},    /* link-local, RFC 3927 */
    {ACL_V4(172, 16, 0, 0), ACL_MASK4(12)},     /* private, RFC 1918 */
    {ACL_V4(192, 0, 0, 0), ACL_MASK4(24)},      /* IETF protocol assignments, RFC 6890 */
    {ACL_V4(192, 0, 2, 0), ACL_MASK4(24)},      /* TEST-NET-1, RFC 5737 */
    {ACL_V4(192, 88, 99, 0), ACL_MASK4(24)},    /* deprecated 6to4 relay anycast, RFC 7526 */
    {ACL_V4(192, 168, 0, 0), ACL_MASK4(16)},    /* private, RFC 1918 */
    {ACL_V4(198, 18, 0, 0), ACL_MASK4(15)},     /* benchmarking, RFC 2544 */
    {ACL_V4(198, 51, 100, 0), ACL_MASK4(24)},   /* TEST-NET-2, RFC 5737 */
    {ACL_V4(203, 0, 113, 0), ACL_MASK4(24)},    /* TEST-NET-3, RFC 5737 */
    {ACL_V4(224, 0, 0, 0), ACL_MASK4(4)},       /* multicast, RFC 5771 */
    {ACL_V4(240, 0, 0, 0), ACL_MASK4(4)},       /* reserved, RFC 1112 */
    {ACL_V4(255, 255, 255, 255), ACL_MASK4(32)} /* limited broadcast, RFC 919 (inside 240/4) */
};

/* IPv6 prefixes whose last 32 bits are an IPv4 address that decides (RFC 4291 section 2.5.5.2
 * IPv4-mapped; RFC 6052 section 2.1 NAT64 well-known prefix): a NAT64 or dual-stack path would
 * deliver them to that IPv4 address, so they are as private as it is. */
static const struct acl_cidr6 acl_embeds_v4[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96},
    {{0x00, 0x64, 0xff, 0x9b}, 96},
};

/* IPv6: the IANA IPv6 Special-Purpose Address Registry (RFC 6890 section 2.2.3 and updates)
 * where "Globally Reachable" is False, the 2001::/23 block as a whole, and the ranges RFC 4291
 * reserves or deprecates (IPv4-compatible, site-local) or gives to multicast. */
static const struct acl_cidr6 acl_private_v6[] = {
    {{0}, 96},                                /* ::/96 IPv4-compatible, deprecated by RFC 4291
                                               * section 2.5.5.1; covers ::/128 and ::1/128 */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48}, /* NAT64 local-use, RFC 8215 */
    {{0x01, 0x00}, 64},                       /* discard-only, RFC 6666 */
    {{0x20, 0x01, 0x00, 0x00}, 23},           /* IETF protocol assignments, RFC 2928 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32},           /* documentation, RFC 3849 */
    {{0x3f, 0xff, 0x00, 0x00}, 20},           /* documentation, RFC 9637 */
    {{0xfc, 0x00}, 7},                        /* unique local, RFC 4193 */
    {{0xfe, 0x80}, 10},                       /* link-local, RFC 4291 */
    {{0xfe, 0xc0}, 10},                       /* site-local, deprecated by RFC 3879 */
    {{0xff, 0x00}, 8},                        /* multicast, RFC 4291 */
};

#define ACL_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool acl_match4(const struct acl_cidr4 *list, size_t n, uint32_t addr)
{
    for (size_t i = 0; i < n; i++)
        if ((addr & list[i].mask) == list[i].addr)
            return true;
    return false;
}

static bool acl_prefix6_match(const struct acl_cidr6 *c, const uint8_t *addr)
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(addr, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr[full] & mask) == c->addr[full];
}

static bool acl_match6(const struct acl_cidr6 *list, size_t n, const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (acl_prefix6_match(&list[i], addr))
            return true;
    return false;
}

static uint32_t acl_load_v4(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool acl_private6(const uint8_t *addr)
{
    if (acl_match6(acl_embeds_v4, ACL_COUNT(acl_embeds_v4), addr))
        return acl_match4(acl_private_v4, ACL_COUNT(acl_private_v4), acl_load_v4(addr + 12));
    if (acl_match6(acl_private_v6, ACL_COUNT(acl_private_v6), addr))
        return true;
    /* The IANA IPv6 Address Space registry allocates only 2000::/3 to global unicast (RFC 4291
     * section 2.4); besides the ranges named above, the rest is reserved or unassigned (e.g.
     * ::1:0:0, 4000::), so nothing outside it is a public destination. */
    return (addr[0] & 0xe0) != 0x20;
}

bool acl_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return acl_match4(acl_private_v4, ACL_COUNT(acl_private_v4), ntohl(sin->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6)
        return acl_private6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return true; /* not an IP address: never a public destination */
}

/* ---- Matching the file's lists ----------------------------------------------------------- */

/* The bytes of an IP address (4 or 16), or NULL for another family. */
static const uint8_t *acl_ip_bytes(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (sa->sa_family == AF_INET6)
        return ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    return NULL;
}

/* True when the address is in the list's networks. An IPv4-mapped IPv6 address (what a
 * dual-stack socket shows for an IPv4 peer or target) is also checked as the IPv4 address it
 * is, so "127.0.0.1" in a list matches a client of a server listening on [::]. */
static bool acl_list_has_ip(const struct acl_list *l, int family, const uint8_t *addr)
{
    if (family == AF_INET)
        return acl_match4(l->v4, l->n_v4, acl_load_v4(addr));
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr) &&
        acl_match4(l->v4, l->n_v4, acl_load_v4(addr + 12)))
        return true;
    return acl_match6(l->v6, l->n_v6, addr);
}

/* True when a host name (already without its root label) equals a rule's text or matches its
 * regex. */
static bool acl_list_has_name(const struct acl_list *l, const char *name)
{
    for (size_t i = 0; i < l->n_rules; i++) {
        if (strcasecmp(name, l->rules[i].pattern) == 0 ||
            regexec(&l->rules[i].re, name, 0, NULL, 0) == 0)
            return true;
    }
    return false;
}

/* Reads a target host: an IP literal gives its family (> 0) with the bytes in ip; a name gives
 * 0 with the name in name, without one trailing root dot ("example.com." is the same name as
 * "example.com", RFC 1034 section 3.1: without this a client could step around a rule anchored
 * with '$'); -1 for text longer than any DNS name. */
static int acl_host_parse(const char *host, uint8_t ip[16], char name[256])
{
    if (inet_pton(AF_INET, host, ip) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, host, ip) == 1)
        return AF_INET6;
    size_t n = strnlen(host, 256);
    if (n == 256)
        return -1;
    memcpy(name, host, n + 1);
    if (n > 1 && name[n - 1] == '.')
        name[n - 1] = '\0';
    return 0;
}

/* Which of the client lists holds the address or name, black first as in libev (an entry in
 * both lists is black). */
enum acl_hit { ACL_HIT_NONE, ACL_HIT_BLACK, ACL_HIT_WHITE };

static enum acl_hit acl_hit_ip(const struct acl *a, int family, const uint8_t *ip)
{
    if (acl_list_has_ip(&a->lists[ACL_LIST_BLACK], family, ip))
        return ACL_HIT_BLACK;
    if (acl_list_has_ip(&a->lists[ACL_LIST_WHITE], family, ip))
        return ACL_HIT_WHITE;
    return ACL_HIT_NONE;
}

bool acl_address_allowed(const struct acl *a, const struct sockaddr *sa)
{
    const uint8_t *addr = acl_ip_bytes(sa);
    if (!addr)
        return false;
    if (!a)
        return true;
    if (a->block_private && acl_is_private(sa))
        return false;
    return !acl_list_has_ip(&a->lists[ACL_LIST_BLOCK], sa->sa_family, addr);
}

bool acl_host_blocked(const struct acl *a, const char *host)
{
    uint8_t ip[16];
    char name[256];

    if (!a)
        return false;
    int family = acl_host_parse(host, ip, name);
    if (family < 0)
        return true; /* longer than any DNS name: nothing legitimate to allow */
    /* An IP literal as host is judged by the CIDR rules, as shadowsocks-libev does. */
    return family ? acl_list_has_ip(&a->lists[ACL_LIST_BLOCK], family, ip)
                  : acl_list_has_name(&a->lists[ACL_LIST_BLOCK], name);
}

/* The route of a target IP: in accept_all (proxy_all) mode only black-listed (bypass-listed)
 * addresses go direct; in reject_all (bypass_all) mode all but white-listed (proxy-listed)
 * ones do, and an address in both lists goes direct, as in libev. */
static enum acl_route acl_route_ip(const struct acl *a, int family, const uint8_t *ip)
{
    enum acl_hit hit = acl_hit_ip(a, family, ip);
    if (a->mode == ACL_REJECT_ALL)
        return hit == ACL_HIT_WHITE ? ACL_PROXY : ACL_BYPASS;
    return hit == ACL_HIT_BLACK ? ACL_BYPASS : ACL_PROXY;
}

/* libev's server and client read the lists alike: a client the server serves is exactly an
 * address a client would send through the server. */
bool acl_client_allowed(const struct acl *a, const struct sockaddr *client)
{
    const uint8_t *addr = acl_ip_bytes(client);
    if (!a || !addr)
        return true; /* no policy, or a Unix-socket peer: nothing to match */
    return acl_route_ip(a, client->sa_family, addr) == ACL_PROXY;
}

enum acl_route acl_route_address(const struct acl *a, const struct sockaddr *sa)
{
    const uint8_t *addr = a ? acl_ip_bytes(sa) : NULL;
    return addr ? acl_route_ip(a, sa->sa_family, addr) : ACL_PROXY;
}

enum acl_route acl_route_host(const struct acl *a, const char *host)
{
    uint8_t ip[16];
    char name[256];

    if (!a)
        return ACL_PROXY;
    int family = acl_host_parse(host, ip, name);
    if (family > 0)
        return acl_route_ip(a, family, ip);
    if (family < 0)
        return ACL_PROXY; /* not a DNS name: the server will refuse it, not us */
    if (acl_list_has_name(&a->lists[ACL_LIST_BLACK], name))
        return ACL_BYPASS;
    if (acl_list_has_name(&a->lists[ACL_LIST_WHITE], name))
        return ACL_PROXY;
    /* libev resolves such a name on the client, blocking, and routes it by its address; we do
     * not, so that a proxied name is never looked up locally (a DNS leak) and the event loop
     * never waits: the mode decides. */
    return a->mode == ACL_REJECT_ALL ? ACL_BYPASS : ACL_PROXY;
}

enum acl_mode acl_get_mode(const struct acl *a)
{
    return a ? a->mode : ACL_ACCEPT_ALL;
}

unsigned acl_sections(const struct acl *a)
{
    return a ? a->sections : 0;
}

const char *acl_role_note(const struct acl *a, bool server)
{
    unsigned sec = acl_sections(a);
    if (server && (sec & ACL_SECTION_CLIENT_NAMES))
        return "a server reads [bypass_list]/[bypass_all] as [black_list]/[reject_all] and "
               "[proxy_list]/[proxy_all] as [white_list]/[accept_all]: they filter clients by "
               "address, as in shadowsocks-libev";
    return NULL;
}

size_t acl_describe(const struct acl *a, bool server, char *buf, size_t len)
{
    bool reject = acl_get_mode(a) == ACL_REJECT_ALL;
    const char *what;
    if (server)
        what = reject ? "reject_all: serves only white-listed clients"
                      : "accept_all: serves all clients but black-listed ones";
    else
        what = reject ? "bypass_all: connects directly to all but proxy-listed targets"
                      : "proxy_all: connects directly only to bypass-listed targets";
    int n = snprintf(buf, len, "mode %s%s", what,
                     acl_sections(a) & ACL_SECTION_OUTBOUND_BLOCK
                         ? "; blocks [outbound_block_list] targets"
                         : "");
    return n < 0 ? 0 : (size_t)n;
}

/* ---- Loading ------------------------------------------------------------------------------ */

struct acl *acl_new(bool block_private)
{
    struct acl *a = calloc(1, sizeof *a);
    if (a) {
        a->block_private = block_private;
        a->mode = ACL_ACCEPT_ALL; /* libev's default: a file without a mode header */
    }
    return a;
}

static void acl_list_free(struct acl_list *l)
{
    for (size_t i = 0; i < l->n_rules; i++) {
        regfree(&l->rules[i].re);
        free(l->rules[i].pattern);
    }
    free(l->rules);
    free(l->v4);
    free(l->v6);
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    for (int i = 0; i < ACL_LIST_COUNT; i++)
        acl_list_free(&a->lists[i]);
    free(a);
}

/* Room for one more element in an array of n: doubling at each power of two keeps loading a
 * list of thousands of lines linear. Returns the (maybe moved) array, or NULL. */
static void *acl_reserve(void *arr, size_t n, size_t elem)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return arr; /* n is not a power of two: the last doubling left room */
    return realloc(arr, (n ? n * 2 : 1) * elem);
}

/* Prefix length text: digits only, 0..max. */
static int acl_parse_prefix(const char *s, unsigned max, unsigned *prefix)
{
    unsigned v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return -1;
    }
    *prefix = v;
    return 0;
}

/* Text that can only have been meant as an address: a host name holds neither ':' nor '/', so
 * a line with either is an IPv6 address or a CIDR, and dotted decimal is IPv4. Such a line that
 * does not parse is an error rather than silently a regex (which "10.0.0.0/33" or
 * "2001:db8::g/32" would otherwise become). */
static bool acl_looks_like_address(const char *s)
{
    return strpbrk(s, "/:") || strspn(s, "0123456789.") == strlen(s);
}

static int acl_add_v4(struct acl_list *l, const uint8_t *ip, unsigned prefix)
{
    struct acl_cidr4 *v4 = acl_reserve(l->v4, l->n_v4, sizeof *v4);
    if (!v4)
        return -1;
    l->v4 = v4;
    v4[l->n_v4].mask = ACL_MASK4(prefix);
    v4[l->n_v4].addr = acl_load_v4(ip) & ACL_MASK4(prefix);
    l->n_v4++;
    return 0;
}

static int acl_add_v6(struct acl_list *l, const uint8_t *ip, unsigned prefix)
{
    struct acl_cidr6 *v6 = acl_reserve(l->v6, l->n_v6, sizeof *v6);
    if (!v6)
        return -1;
    l->v6 = v6;
    struct acl_cidr6 *c = &v6[l->n_v6++];
    memcpy(c->addr, ip, 16);
    c->prefix = prefix;
    /* acl_prefix6_match compares the last partial byte as is, so clear its host bits; the
     * bytes past the prefix are never compared. */
    if (prefix < 128)
        c->addr[prefix / 8] &= (uint8_t)(0xff00 >> (prefix % 8));
    return 0;
}

/* Adds line as an IP or CIDR rule. Returns 1 if it was one, 0 if it is not an address (so a
 * regex), -1 with the reason in why if it is an invalid address or CIDR. */
static int acl_add_cidr(struct acl_list *l, const char *line, char *why, size_t whylen)
{
    char addr[64], name[256];
    uint8_t ip[16];
    const char *slash = strrchr(line, '/');
    size_t n = slash ? (size_t)(slash - line) : strlen(line);
    int family = 0, rc;
    unsigned max = 0, prefix;

    if (n < sizeof addr) {
        memcpy(addr, line, n);
        addr[n] = '\0';
        family = acl_host_parse(addr, ip, name); /* 0: not an IP literal */
        max = family == AF_INET ? 32 : 128;
    }
    if (family == 0 && !acl_looks_like_address(line))
        return 0;
    if (family == 0 || (slash && acl_parse_prefix(slash + 1, max, &prefix) < 0)) {
        snprintf(why, whylen, "invalid address or CIDR '%s'", line);
        return -1;
    }
    if (!slash)
        prefix = max;
    rc = family == AF_INET ? acl_add_v4(l, ip, prefix) : acl_add_v6(l, ip, prefix);
    if (rc < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 1;
}

/* Adds line as a hostname rule: a POSIX extended regex, matched without case (host names are
 * case-insensitive, RFC 4343). Returns 0, or -1 with the reason in why. */
static int acl_add_regex(struct acl_list *l, const char *line, char *why, size_t whylen)
{
    regex_t re;
    int rc = regcomp(&re, line, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &re, msg, sizeof msg);
        snprintf(why, whylen, "invalid regex '%s': %s", line, msg);
        return -1;
    }
    char *copy = strdup(line);
    struct acl_rule *rules = copy ? acl_reserve(l->rules, l->n_rules, sizeof *rules) : NULL;
    if (!rules) {
        regfree(&re);
        free(copy);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    l->rules = rules;
    rules[l->n_rules].re = re;
    rules[l->n_rules].pattern = copy;
    l->n_rules++;
    return 0;
}

static int acl_add_line(struct acl_list *l, const char *line, char *why, size_t whylen)
{
    int rc = acl_add_cidr(l, line, why, whylen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    return acl_add_regex(l, line, why, whylen);
}

/* The section headers of the libev ACL format, each either selecting the list the next lines
 * go to or setting the mode (the last mode header wins). */
static const struct acl_header {
    const char *name;
    int list; /* enum acl_list_id, or -1 for a mode header */
    int mode; /* enum acl_mode, for a mode header */
    unsigned section;
} acl_headers[] = {
    {"outbound_block_list", ACL_LIST_BLOCK, 0, ACL_SECTION_OUTBOUND_BLOCK},
    {"black_list", ACL_LIST_BLACK, 0, ACL_SECTION_BLACK | ACL_SECTION_SERVER_NAMES},
    {"bypass_list", ACL_LIST_BLACK, 0, ACL_SECTION_BLACK | ACL_SECTION_CLIENT_NAMES},
    {"white_list", ACL_LIST_WHITE, 0, ACL_SECTION_WHITE | ACL_SECTION_SERVER_NAMES},
    {"proxy_list", ACL_LIST_WHITE, 0, ACL_SECTION_WHITE | ACL_SECTION_CLIENT_NAMES},
    {"accept_all", -1, ACL_ACCEPT_ALL, ACL_SECTION_MODE | ACL_SECTION_SERVER_NAMES},
    {"proxy_all", -1, ACL_ACCEPT_ALL, ACL_SECTION_MODE | ACL_SECTION_CLIENT_NAMES},
    {"reject_all", -1, ACL_REJECT_ALL, ACL_SECTION_MODE | ACL_SECTION_SERVER_NAMES},
    {"bypass_all", -1, ACL_REJECT_ALL, ACL_SECTION_MODE | ACL_SECTION_CLIENT_NAMES},
};

/* A "[word]" line is a section header: its entry, or NULL with *unknown set if the word is not
 * one. Returns NULL with *unknown clear if the line is not a header at all (a regex may well
 * start with '[' but a bracket expression does not hold only lower-case letters and '_'). */
static const struct acl_header *acl_header(const char *line, bool *unknown)
{
    size_t n = strlen(line);
    *unknown = false;
    if (n < 3 || line[0] != '[' || line[n - 1] != ']' ||
        strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_") != n - 2)
        return NULL;
    for (size_t i = 0; i < ACL_COUNT(acl_headers); i++)
        if (strlen(acl_headers[i].name) == n - 2 &&
            memcmp(line + 1, acl_headers[i].name, n - 2) == 0)
            return &acl_headers[i];
    *unknown = true;
    return NULL;
}

/* Cuts a comment ('#' to the end of the line, wherever it starts, as libev does) and the
 * surrounding white space. */
static char *acl_trim(char *s)
{
    char *hash = strchr(s, '#');
    if (hash)
        *hash = '\0';
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One non-empty line: a header switches *list or the mode; anything else is a rule of *list.
 * Returns 0, or -1 with the reason in why. */
static int acl_line(struct acl *a, const char *line, int *list, char *why, size_t whylen)
{
    bool unknown;
    const struct acl_header *h = acl_header(line, &unknown);
    if (unknown) {
        snprintf(why, whylen, "unknown section %s", line);
        return -1;
    }
    if (h) {
        a->sections |= h->section;
        if (h->list >= 0)
            *list = h->list;
        else
            a->mode = (enum acl_mode)h->mode;
        return 0;
    }
    if (*list == ACL_LIST_BLACK)
        a->sections |= ACL_SECTION_BLACK; /* also for lines before any header */
    return acl_add_line(&a->lists[*list], line, why, whylen);
}

int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL, why[512];
    size_t cap = 0;
    unsigned lineno = 0;
    int list = ACL_LIST_BLACK; /* lines before any header, as in libev */
    int rc = 0;

    while (getline(&buf, &cap, f) >= 0) {
        lineno++;
        char *line = acl_trim(buf);
        if (line[0] == '\0' || acl_line(a, line, &list, why, sizeof why) == 0)
            continue;
        snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
        rc = -1;
        break;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s:%u: %s", path, lineno + 1, strerror(errno));
        rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}
