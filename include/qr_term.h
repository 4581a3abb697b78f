/* qr_term.h: a QR code drawn in a terminal with UTF-8 half blocks (--print-uri), through
 * Debian's libqrencode when the build has it (configure --with-qrencode). */
#ifndef RP_QR_TERM_H
#define RP_QR_TERM_H

#include <stdbool.h>
#include <stddef.h>

/* Modules of light margin on each side: the quiet zone of ISO/IEC 18004:2015 section 9.1. */
#define QR_TERM_QUIET 4
/* Bytes the drawing of any QR code takes (version 40: 177 modules, with its quiet zone). */
#define QR_TERM_MAX 65536

/* The SGR sequences around each line: bright white on black, so the code reads the same on a
 * light or a dark terminal (a scanner wants dark modules on a light ground). */
#define QR_TERM_LINE_BEGIN "\033[97;40m"
#define QR_TERM_LINE_END "\033[0m\n"

/* Whether this build can draw QR codes (it has libqrencode). */
bool qr_term_available(void);

/* Draws text (8-bit mode, error correction level M) into out: two rows of modules per line of
 * text, each column one character, a light module drawn (U+2588 full block, U+2580 upper half,
 * U+2584 lower half) and a dark one blank; the quiet zone around, and an odd last row paired
 * with a light one. Each line is QR_TERM_LINE_BEGIN ... QR_TERM_LINE_END; out ends with NUL.
 * Returns its length, or -1: no libqrencode, text too long for a QR code, or cap too small. */
long qr_term_draw(const char *text, char *out, size_t cap);

#endif
