/* config_scan.c: where each top-level key of a configuration file stands (line and column).
 *
 * jansson parses and validates the JSON but keeps no positions of what it parsed, so this small
 * scanner walks the already-validated text once to find the line and column of every top-level
 * key; config.c then points each message at the key it is about. Pure: no I/O, no globals; it
 * only ever moves forward and checks the end, so it is safe on any text, and exact on valid
 * JSON (RFC 8259). */

#include "autoconfig.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config_private.h"

struct config_scan {
    const char *p, *end;
    int line, column; /* of *p */
};

static int config_scan_peek(const struct config_scan *s)
{
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

/* Columns count characters, not bytes, as jansson's do: UTF-8 continuation bytes add none. */
static void config_scan_next(struct config_scan *s)
{
    if (s->p >= s->end)
        return;
    if (*s->p == '\n') {
        s->line++;
        s->column = 1;
    } else if (((unsigned char)*s->p & 0xc0) != 0x80) {
        s->column++;
    }
    s->p++;
}

static void config_scan_space(struct config_scan *s)
{
    int ch;
    while ((ch = config_scan_peek(s)) == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
        config_scan_next(s);
}

static void config_put_utf8(char *out, size_t cap, size_t *n, unsigned long cp)
{
    char b[4];
    size_t len = 0;
    if (cp < 0x80) {
        b[len++] = (char)cp;
    } else if (cp < 0x800) {
        b[len++] = (char)(0xc0 | (cp >> 6));
        b[len++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        b[len++] = (char)(0xe0 | (cp >> 12));
        b[len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[len++] = (char)(0x80 | (cp & 0x3f));
    } else {
        b[len++] = (char)(0xf0 | (cp >> 18));
        b[len++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[len++] = (char)(0x80 | (cp & 0x3f));
    }
    for (size_t i = 0; i < len && *n < cap; i++)
        out[(*n)++] = b[i];
}

static unsigned long config_scan_hex4(struct config_scan *s)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        int ch = config_scan_peek(s);
        int d = isdigit(ch) ? ch - '0' : isxdigit(ch) ? tolower(ch) - 'a' + 10 : 0;
        v = v * 16 + (unsigned long)d;
        config_scan_next(s);
    }
    return v;
}

static unsigned long config_scan_escape_u(struct config_scan *s)
{
    unsigned long cp = config_scan_hex4(s);
    /* A high surrogate takes the low one after it (RFC 8259 section 7). */
    if (cp >= 0xd800 && cp < 0xdc00 && config_scan_peek(s) == '\\') {
        config_scan_next(s);
        config_scan_next(s);
        unsigned long low = config_scan_hex4(s);
        cp = low >= 0xdc00 && low < 0xe000 ? 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00)
                                           : 0xfffd;
    }
    return cp;
}

/* Reads one string (RFC 8259 section 7) starting at its quote. When out is given, the decoded
 * bytes go there (at most cap - 1, NUL-terminated). Returns the full decoded length. */
static size_t config_scan_string(struct config_scan *s, char *out, size_t cap)
{
    static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* pairs: escape, value */
    size_t n = 0, limit = out ? cap - 1 : 0, full = 0;
    int ch;

    config_scan_next(s); /* the opening quote */
    while ((ch = config_scan_peek(s)) >= 0 && ch != '"') {
        config_scan_next(s);
        if (ch == '\\') {
            ch = config_scan_peek(s);
            config_scan_next(s);
            if (ch == 'u') {
                unsigned long cp = config_scan_escape_u(s);
                config_put_utf8(out, limit, &n, cp);
                full += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                continue;
            }
            const char *e = ch > 0 ? strchr(escapes, ch) : NULL;
            ch = e ? e[1] : ch;
        }
        if (n < limit)
            out[n++] = (char)ch;
        full++;
    }
    config_scan_next(s); /* the closing quote */
    if (out)
        out[n] = '\0';
    return full;
}

/* Skips one value; the text is valid JSON (jansson said so), so brackets balance. */
static void config_scan_value(struct config_scan *s)
{
    int depth = 0;
    for (;;) {
        int ch = config_scan_peek(s);
        if (ch < 0)
            return;
        if (ch == '"') {
            config_scan_string(s, NULL, 0);
            if (depth == 0)
                return;
            continue;
        }
        /* A number, true, false or null ends where the object goes on. */
        if (depth == 0 && (ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\t' ||
                           ch == '\n' || ch == '\r'))
            return;
        if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']')
            depth--;
        config_scan_next(s);
        if (depth == 0 && (ch == '}' || ch == ']'))
            return;
    }
}

int config_scan_keys(const char *text, size_t len, struct config_key_token **tokens)
{
    struct config_scan s = {text, text + len, 1, 1};
    int n = 0, cap = 0;

    *tokens = NULL;
    config_scan_space(&s);
    config_scan_next(&s); /* '{' */
    for (;;) {
        config_scan_space(&s);
        if (config_scan_peek(&s) != '"')
            return n; /* '}' */
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            struct config_key_token *grown = realloc(*tokens, (size_t)cap * sizeof *grown);
            if (!grown)
                return -1;
            *tokens = grown;
        }
        struct config_key_token *t = &(*tokens)[n++];
        t->pos.line = s.line;
        t->pos.column = s.column;
        t->too_long = config_scan_string(&s, t->name, sizeof t->name) >= sizeof t->name;
        config_scan_space(&s);
        config_scan_next(&s); /* ':' */
        config_scan_space(&s);
        config_scan_value(&s);
        config_scan_space(&s);
        config_scan_next(&s); /* ',' or '}' */
    }
}

size_t config_scan_leading_space(const char *text, size_t len, struct config_pos *pos)
{
    struct config_scan s = {text, text + len, 1, 1};

    config_scan_space(&s);
    pos->line = s.line;
    pos->column = s.column;
    return (size_t)(s.p - text);
}

struct config_pos config_scan_last_token(const char *text, size_t len)
{
    struct config_scan s = {text, text + len, 1, 1};
    struct config_pos last = {1, 1};
    int ch;

    while ((ch = config_scan_peek(&s)) >= 0) {
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && (ch & 0xc0) != 0x80)
            last = (struct config_pos){s.line, s.column};
        config_scan_next(&s);
    }
    return last;
}
