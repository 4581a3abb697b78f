/* test_qr_term.c: qr_term.c, the terminal QR code: read back from its half blocks, the drawing
 * is libqrencode's matrix for the same text, inside a light quiet zone of QR_TERM_QUIET
 * modules; a text too long for any QR code, or a buffer too small, draws nothing. Skipped in
 * a build without libqrencode. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "qr_term.h"
#include "unit.h"

#ifdef RP_HAVE_QRENCODE
#include <qrencode.h>
#endif

static const char uri[] = "ss://YWVzLTI1Ni1nY206cXItdGVybS10ZXN0LXNlY3JldA@198.51.100.7:8388#qr";

#ifdef RP_HAVE_QRENCODE
/* The drawing as rows of light (1) and dark (0) modules; returns its width (and rows = width),
 * or -1 when a line is not QR_TERM_LINE_BEGIN, glyphs, QR_TERM_LINE_END. */
static int read_back(const char *s, unsigned char *light, int max)
{
    int size = -1, y = 0;
    while (*s) {
        if (strncmp(s, QR_TERM_LINE_BEGIN, strlen(QR_TERM_LINE_BEGIN)) != 0)
            return -1;
        s += strlen(QR_TERM_LINE_BEGIN);
        int x = 0;
        while (*s && *s != '\033') {
            int top, bottom;
            if (*s == ' ') {
                top = bottom = 0;
                s++;
            } else if (strncmp(s, "\xe2\x96", 2) == 0) {
                top = s[2] == '\x88' || s[2] == '\x80';
                bottom = s[2] == '\x88' || s[2] == '\x84';
                s += 3;
            } else {
                return -1;
            }
            if (x >= max || y + 1 >= max)
                return -1;
            light[y * max + x] = (unsigned char)top;
            light[(y + 1) * max + x] = (unsigned char)bottom;
            x++;
        }
        if (strncmp(s, QR_TERM_LINE_END, strlen(QR_TERM_LINE_END)) != 0 || (size >= 0 && x != size))
            return -1;
        s += strlen(QR_TERM_LINE_END);
        size = x;
        y += 2;
    }
    return y == size + 1 ? size : -1; /* an odd size: the last line's lower half is margin */
}
#endif

TEST(test_qr_term_matrix_is_libqrencodes_inside_the_quiet_zone)
{
#ifndef RP_HAVE_QRENCODE
    CHECK(!qr_term_available());
    SKIP("built without libqrencode (configure --with-qrencode, Debian libqrencode-dev)");
#else
    enum { MAX = 200 };
    char *out = malloc(QR_TERM_MAX);
    unsigned char *light = calloc(MAX * (MAX + 1), 1);
    CHECK(out && light && qr_term_available());
    long n = qr_term_draw(uri, out, QR_TERM_MAX);
    CHECK(n > 0 && (size_t)n == strlen(out));
    QRcode *q = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    CHECK(q);
    int size = read_back(out, light, MAX);
    CHECK_INT(size, q->width + 2 * QR_TERM_QUIET);
    for (int y = 0; y <= size; y++) {
        for (int x = 0; x < size; x++) {
            int mx = x - QR_TERM_QUIET, my = y - QR_TERM_QUIET;
            bool inside = mx >= 0 && my >= 0 && mx < q->width && my < q->width;
            int want = inside ? !(q->data[my * q->width + mx] & 1) : 1;
            CHECK_INT(light[y * MAX + x], want);
        }
    }
    QRcode_free(q);
    free(light);
    free(out);
#endif
}

TEST(test_qr_term_refuses_too_long_and_too_small)
{
    char small[64];
    char *big = malloc(8000);
    CHECK(big);
    memset(big, 'a', 7999);
    big[7999] = '\0';
    char *out = malloc(QR_TERM_MAX);
    CHECK(out);
    CHECK_INT(qr_term_draw(big, out, QR_TERM_MAX), -1); /* over version 40's 2331 bytes at M */
    CHECK_INT(qr_term_draw(uri, small, sizeof small), -1);
    CHECK_INT(qr_term_draw(uri, out, 0), -1);
    free(out);
    free(big);
}
