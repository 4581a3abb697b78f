/* qr_term.c: QR codes for the terminal (qr_term.h). libqrencode makes the matrix; this file only
 * draws it, two module rows per text line with the half-block characters, so the code is about
 * square in a terminal whose cells are twice as tall as wide. Without libqrencode (configure
 * --with-qrencode=no, or libqrencode-dev missing) it draws nothing and says so. */
#include "autoconfig.h"

#include "qr_term.h"

#include <string.h>

#ifdef RP_HAVE_QRENCODE
#include <qrencode.h>

bool qr_term_available(void)
{
    return true;
}

/* Whether the module at (x, y) of the drawing (quiet zone included) is light. */
static bool qr_light(const QRcode *q, int x, int y)
{
    x -= QR_TERM_QUIET;
    y -= QR_TERM_QUIET;
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return true;
    return !(q->data[y * q->width + x] & 1); /* bit 0: dark (qrencode.h) */
}

/* Appends n bytes at *len if they fit. */
static bool qr_put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n >= cap - *len)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    return true;
}

static long qr_draw_matrix(const QRcode *q, char *out, size_t cap)
{
    /* indexed by (top light) << 1 | (bottom light) */
    static const char *const glyph[4] = {" ", "\xe2\x96\x84", "\xe2\x96\x80", "\xe2\x96\x88"};
    int size = q->width + 2 * QR_TERM_QUIET;
    size_t len = 0;

    for (int y = 0; y < size; y += 2) {
        if (!qr_put(out, cap, &len, QR_TERM_LINE_BEGIN, strlen(QR_TERM_LINE_BEGIN)))
            return -1;
        for (int x = 0; x < size; x++) {
            const char *g = glyph[qr_light(q, x, y) << 1 | qr_light(q, x, y + 1)];
            if (!qr_put(out, cap, &len, g, strlen(g)))
                return -1;
        }
        if (!qr_put(out, cap, &len, QR_TERM_LINE_END, strlen(QR_TERM_LINE_END)))
            return -1;
    }
    out[len] = '\0';
    return (long)len;
}

long qr_term_draw(const char *text, char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    /* version 0: the smallest that holds text; case-sensitive 8-bit data, as a URI needs */
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!q)
        return -1;
    long n = qr_draw_matrix(q, out, cap);
    QRcode_free(q);
    return n;
}

#else

bool qr_term_available(void)
{
    return false;
}

long qr_term_draw(const char *text, char *out, size_t cap)
{
    (void)text;
    (void)out;
    (void)cap;
    return -1;
}

#endif
