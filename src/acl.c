/* acl.c: where the server may connect. Two policies, both checked on the address actually
 * connected to: block_private (the special-purpose ranges of the IANA IPv4 and IPv6
 * Special-Purpose Address Registries, RFC 6890 and its updates, plus multicast and reserved
 * space), and the [outbound_block_list] section of a shadowsocks-libev ACL file (IPs, CIDRs and
 * hostname regexes). */
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

struct acl {
    bool block_private;
    struct acl_cidr4 *v4;
    size_t n_v4;
    struct acl_cidr6 *v6;
    size_t n_v6;
    struct acl_rule *rules;
    size_t n_rules;
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

/* ---- The ACL file's rules ----------------------------------------------------------------- */

/* True when the address is in the file's CIDR list. An IPv4-mapped IPv6 address (what a
 * dual-stack socket connects to for an IPv4 target) is also checked as the IPv4 address it is. */
static bool acl_in_block_list(const struct acl *a, int family, const uint8_t *addr)
{
    if (family == AF_INET)
        return acl_match4(a->v4, a->n_v4, acl_load_v4(addr));
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr) &&
        acl_match4(a->v4, a->n_v4, acl_load_v4(addr + 12)))
        return true;
    return acl_match6(a->v6, a->n_v6, addr);
}

bool acl_address_allowed(const struct acl *a, const struct sockaddr *sa)
{
    const uint8_t *addr;

    if (sa->sa_family == AF_INET)
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    else
        return false;
    if (!a)
        return true;
    if (a->block_private && acl_is_private(sa))
        return false;
    return !acl_in_block_list(a, sa->sa_family, addr);
}

bool acl_host_blocked(const struct acl *a, const char *host)
{
    uint8_t ip[16];
    char name[256];

    if (!a)
        return false;
    /* An IP literal as host is judged by the CIDR rules, as shadowsocks-libev does. */
    if (inet_pton(AF_INET, host, ip) == 1)
        return acl_in_block_list(a, AF_INET, ip);
    if (inet_pton(AF_INET6, host, ip) == 1)
        return acl_in_block_list(a, AF_INET6, ip);
    /* "example.com." is the same name as "example.com" (RFC 1034 section 3.1): without this, a
     * client could step around a rule anchored with '$' by adding the root label. */
    size_t n = strnlen(host, sizeof name);
    if (n == sizeof name)
        return true; /* longer than any DNS name: nothing legitimate to allow */
    memcpy(name, host, n + 1);
    if (n > 1 && name[n - 1] == '.')
        name[n - 1] = '\0';
    for (size_t i = 0; i < a->n_rules; i++) {
        if (strcasecmp(name, a->rules[i].pattern) == 0 ||
            regexec(&a->rules[i].re, name, 0, NULL, 0) == 0)
            return true;
    }
    return false;
}

/* ---- Loading ------------------------------------------------------------------------------ */

struct acl *acl_new(bool block_private)
{
    struct acl *a = calloc(1, sizeof *a);
    if (a)
        a->block_private = block_private;
    return a;
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_rules; i++) {
        regfree(&a->rules[i].re);
        free(a->rules[i].pattern);
    }
    free(a->rules);
    free(a->v4);
    free(a->v6);
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

static int acl_add_v4(struct acl *a, const uint8_t *ip, unsigned prefix)
{
    struct acl_cidr4 *v4 = acl_reserve(a->v4, a->n_v4, sizeof *v4);
    if (!v4)
        return -1;
    a->v4 = v4;
    v4[a->n_v4].mask = ACL_MASK4(prefix);
    v4[a->n_v4].addr = acl_load_v4(ip) & ACL_MASK4(prefix);
    a->n_v4++;
    return 0;
}

static int acl_add_v6(struct acl *a, const uint8_t *ip, unsigned prefix)
{
    struct acl_cidr6 *v6 = acl_reserve(a->v6, a->n_v6, sizeof *v6);
    if (!v6)
        return -1;
    a->v6 = v6;
    struct acl_cidr6 *c = &v6[a->n_v6++];
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
static int acl_add_cidr(struct acl *a, const char *line, char *why, size_t whylen)
{
    char addr[64];
    uint8_t ip[16];
    const char *slash = strrchr(line, '/');
    size_t n = slash ? (size_t)(slash - line) : strlen(line);
    int family = 0, rc;
    unsigned max = 0, prefix;

    if (n < sizeof addr) {
        memcpy(addr, line, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET, addr, ip) == 1)
            family = AF_INET, max = 32;
        else if (inet_pton(AF_INET6, addr, ip) == 1)
            family = AF_INET6, max = 128;
    }
    if (family == 0 && !acl_looks_like_address(line))
        return 0;
    if (family == 0 || (slash && acl_parse_prefix(slash + 1, max, &prefix) < 0)) {
        snprintf(why, whylen, "invalid address or CIDR '%s'", line);
        return -1;
    }
    if (!slash)
        prefix = max;
    rc = family == AF_INET ? acl_add_v4(a, ip, prefix) : acl_add_v6(a, ip, prefix);
    if (rc < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 1;
}

/* Adds line as a hostname rule: a POSIX extended regex, matched without case (host names are
 * case-insensitive, RFC 4343). Returns 0, or -1 with the reason in why. */
static int acl_add_regex(struct acl *a, const char *line, char *why, size_t whylen)
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
    struct acl_rule *rules = copy ? acl_reserve(a->rules, a->n_rules, sizeof *rules) : NULL;
    if (!rules) {
        regfree(&re);
        free(copy);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    a->rules = rules;
    rules[a->n_rules].re = re;
    rules[a->n_rules].pattern = copy;
    a->n_rules++;
    return 0;
}

static int acl_add_line(struct acl *a, const char *line, char *why, size_t whylen)
{
    int rc = acl_add_cidr(a, line, why, whylen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    return acl_add_regex(a, line, why, whylen);
}

/* The section headers of the libev ACL format. Only [outbound_block_list] limits a server; the
 * others steer a client (bypass or proxy) and are accepted so one file serves both. */
static const char *const acl_sections[] = {
    "outbound_block_list", "proxy_all", "bypass_all", "bypass_list", "proxy_list",
    "black_list",          "white_list", "accept_all", "reject_all",
};

/* A "[word]" line is a section header: 1 if it is outbound_block_list, 0 for another known
 * section, -1 if unknown. Returns -2 if the line is not a section header at all (a regex may
 * well start with '[' but a bracket expression does not hold only lower-case letters and '_'). */
static int acl_section(const char *line)
{
    size_t n = strlen(line);
    if (n < 3 || line[0] != '[' || line[n - 1] != ']' ||
        strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_") != n - 2)
        return -2;
    for (size_t i = 0; i < ACL_COUNT(acl_sections); i++)
        if (strlen(acl_sections[i]) == n - 2 && memcmp(line + 1, acl_sections[i], n - 2) == 0)
            return i == 0 ? 1 : 0;
    return -1;
}

static char *acl_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
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
    bool in_block = false; /* lines before any header belong to a client list, as in libev */
    int rc = 0;

    while (getline(&buf, &cap, f) >= 0) {
        lineno++;
        char *line = acl_trim(buf);
        if (line[0] == '\0' || line[0] == '#')
            continue;
        int section = acl_section(line);
        if (section == -1) {
            snprintf(why, sizeof why, "unknown section %s", line);
        } else if (section >= 0) {
            in_block = section == 1;
            continue;
        } else if (!in_block || acl_add_line(a, line, why, sizeof why) == 0) {
            continue;
        }
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
