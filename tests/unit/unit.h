/* unit.h: the unit test framework. Each TEST() registers itself; unit.c's main() runs every
 * test in a child process (so a crash fails one test, not the file) and prints one line per
 * test, "PASS: file/test", "FAIL: file/test: where: what" or "SKIP: file/test: why".
 * tests/run counts those lines. */
#ifndef RP_UNIT_H
#define RP_UNIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct unit_test {
    const char *name;
    void (*fn)(void);
    struct unit_test *next;
};

void unit_register(struct unit_test *t);
void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the running test as skipped: it needs something this machine lacks (root, a kernel
 * feature). Prints "SKIP: file/test: <reason>" and leaves the test's child process; a skipped
 * test counts neither as passed nor as failed. */
_Noreturn void unit_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A scratch directory made for this test run (removed at exit). */
const char *unit_tmpdir(void);
/* Writes text to a file in unit_tmpdir() and returns its path (static storage per call slot). */
const char *unit_write_file(const char *name, const char *text);
/* Sends stderr to a fresh file in unit_tmpdir() until unit_capture_stderr_stop(). */
void unit_capture_stderr_start(void);
/* Puts stderr back (so failures are seen) and returns what was written meanwhile (static
 * storage, the first 64 KiB). */
const char *unit_capture_stderr_stop(void);
struct config;
/* Loads json (as "t.json") over the defaults into *c and validates it, as a start does.
 * Returns 0, or -1 with the message in err. Free c with config_free() either way. */
int unit_config_valid(struct config *c, const char *json, char *err, size_t errlen);
/* A configuration that must be refused, and a part of the message it must be refused with. */
struct unit_bad_config {
    const char *json, *says;
};
/* Fails the running test (at file:line) for each of bad[0..n) that unit_config_valid()
 * accepts, or refuses with a message not containing its "says"; goes on through the rest. */
void unit_expect_config_errors(const char *file, int line, const struct unit_bad_config *bad,
                               size_t n);
#define EXPECT_CONFIG_ERRORS(bad)                                                                  \
    unit_expect_config_errors(__FILE__, __LINE__, (bad), sizeof(bad) / sizeof((bad)[0]))
/* Decodes a hex string into out (at most max bytes); returns the length, or -1. */
long unit_hex(const char *hex, uint8_t *out, size_t max);

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    static struct unit_test name##_unit = {#name, name, NULL};                                     \
    __attribute__((constructor)) static void name##_register(void)                                 \
    {                                                                                              \
        unit_register(&name##_unit);                                                               \
    }                                                                                              \
    static void name(void)

/* Skips the running test with a reason (printf format), e.g. SKIP("not root"). */
#define SKIP(...) unit_skip(__VA_ARGS__)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            unit_fail(__FILE__, __LINE__, "%s", #cond);                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        if (unit_a_ != unit_b_) {                                                                  \
            unit_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #a, unit_a_, unit_b_);      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *unit_a_ = (a), *unit_b_ = (b);                                                 \
        if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) {                               \
            unit_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a,                     \
                      unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Substring check, for error messages. */
#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *unit_h_ = (hay), *unit_n_ = (needle);                                          \
        if (!unit_h_ || !strstr(unit_h_, unit_n_)) {                                               \
            unit_fail(__FILE__, __LINE__, "%s == \"%s\" does not contain \"%s\"", #hay,            \
                      unit_h_ ? unit_h_ : "(null)", unit_n_);                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                         \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0) {                                                          \
            unit_fail(__FILE__, __LINE__, "%s and %s differ in their first %zu bytes", #a, #b,     \
                      (size_t)(n));                                                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
