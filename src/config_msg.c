/* config_msg.c: the messages of the configuration module. Every error names the file and,
 * when the value came from it, the line and column of its key (1-based, as jansson counts);
 * values are quoted so that a hostile file cannot flood or confuse the terminal. Shared by
 * config.c (loading) and config_check.c (checks after the merge), which do not call each
 * other. */

#include "autoconfig.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

#include "config_private.h"

/* s quoted for a message: '"' and '\' escaped, control characters as \u00XX, cut at ~48 bytes
 * (on a character boundary) with "..." so a hostile file cannot flood the terminal. */
const char *config_quote(const char *s, char *buf, size_t cap)
{
    size_t n = 0, limit = cap < 60 ? cap - 12 : 48;
    buf[n++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (n >= limit && (ch & 0xc0) != 0x80) {
            n += (size_t)snprintf(buf + n, cap - n, "...");
            break;
        }
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(buf + n, cap - n, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", ch);
        else
            buf[n++] = (char)ch;
    }
    snprintf(buf + n, cap - n, "\"");
    return buf;
}

/* "NAME:LINE:COLUMN: message" (or "NAME: message" without a position) into err; returns -1. */
int config_fail(struct config_ctx *x, const struct config_pos *pos, const char *fmt, ...)
{
    int n;

    if (!x->err || x->errlen == 0)
        return -1;
    if (pos && pos->line > 0)
        n = snprintf(x->err, x->errlen, "%s:%d:%d: ", x->name, pos->line, pos->column);
    else
        n = snprintf(x->err, x->errlen, "%s: ", x->name);
    if (n >= 0 && (size_t)n < x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A JSON value as a message shows it: a string quoted, a number as written, else its kind. */
const char *config_describe(const json_t *v, char *buf, size_t cap)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return config_quote(json_string_value(v), buf, cap);
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL:
        snprintf(buf, cap, "the real number %g", json_real_value(v));
        return buf;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    case JSON_ARRAY:
        return "an array";
    default:
        return "an object";
    }
}


/* "PATH:LINE:COLUMN: " where key k was read from the file, "PATH: " otherwise; without a file,
 * "command line: ". Then the message. Returns -1. */
int config_invalid(const struct config *c, int k, char *err, size_t errlen, const char *fmt, ...)
{
    struct config_ctx x = {NULL, c->path ? c->path : "command line", err, errlen};
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return config_fail(&x, k >= 0 && c->path ? &c->pos[k] : NULL, "%s", msg);
}

int config_out_of_memory(struct config_ctx *x)
{
    return config_fail(x, NULL, "out of memory");
}
