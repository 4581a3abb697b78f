/* unit.c: runs every registered TEST() in its own child process and reports one line each. */
#include "unit.h"

#include "config.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNIT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_LSAN 1
#endif
#endif
#ifdef UNIT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

static struct unit_test *unit_head, **unit_tail = &unit_head;
static int unit_failed_flag;
static char unit_dir[64];
static int unit_saved_stderr = -1;
static char unit_capture_path[256];
/* "file/test" of the test running in this child, for unit_skip()'s line. */
static char unit_current[256];

/* The exit status of a child whose test skipped itself (automake's convention for a skip). */
#define UNIT_EXIT_SKIP 77

void unit_register(struct unit_test *t)
{
    *unit_tail = t;
    unit_tail = &t->next;
}

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    unit_failed_flag = 1;
}

void unit_skip(const char *fmt, ...)
{
    va_list ap;
    if (unit_saved_stderr >= 0)
        unit_capture_stderr_stop(); /* the reason must be seen, not captured */
    printf("SKIP: %s: ", unit_current);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    fflush(stderr);
    _exit(UNIT_EXIT_SKIP);
}

const char *unit_tmpdir(void)
{
    if (!unit_dir[0]) {
        snprintf(unit_dir, sizeof unit_dir, "/tmp/rp-unit-XXXXXX");
        if (!mkdtemp(unit_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return unit_dir;
}

const char *unit_write_file(const char *name, const char *text)
{
    static char paths[8][256];
    static int slot;
    char *path = paths[slot++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", unit_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    return path;
}

void unit_capture_stderr_start(void)
{
    snprintf(unit_capture_path, sizeof unit_capture_path, "%s/stderr-%d", unit_tmpdir(),
             (int)getpid());
    int fd = open(unit_capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) {
        perror(unit_capture_path);
        exit(2);
    }
    fflush(stderr);
    unit_saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

const char *unit_capture_stderr_stop(void)
{
    static char text[65536];
    size_t n = 0;
    FILE *f;

    fflush(stderr);
    if (unit_saved_stderr >= 0) {
        dup2(unit_saved_stderr, STDERR_FILENO);
        close(unit_saved_stderr);
        unit_saved_stderr = -1;
    }
    f = fopen(unit_capture_path, "r");
    if (f) {
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

long unit_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (long)(n / 2);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Prints the line of a finished test from its child's status (a skipped test printed its own
 * line); returns 1 when it failed. */
static int unit_report(const char *prog, const struct unit_test *t, int status)
{
    int failed = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("PASS: %s/%s\n", prog, t->name);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == UNIT_EXIT_SKIP) {
        /* counted by tests/run from the SKIP line the child wrote */
    } else {
        failed = 1;
        if (WIFSIGNALED(status))
            printf("FAIL: %s/%s: killed by signal %d\n", prog, t->name, WTERMSIG(status));
        else
            printf("FAIL: %s/%s\n", prog, t->name);
    }
    /* one line per test as it finishes: tests/run streams them while the suite runs */
    fflush(stdout);
    return failed;
}

int main(int argc, char **argv)
{
    const char *prog = base_name(argv[0]);
    const char *only = argc > 1 ? argv[1] : NULL;
    int failures = 0;

    unit_tmpdir(); /* made once in the parent, shared by the children */
    for (struct unit_test *t = unit_head; t; t = t->next) {
        if (only && strcmp(only, t->name) != 0)
            continue;
        snprintf(unit_current, sizeof unit_current, "%s/%s", prog, t->name);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            t->fn();
#ifdef UNIT_LSAN
            /* children leave with _exit(), which skips LeakSanitizer's exit check: run it here */
            if (__lsan_do_recoverable_leak_check())
                unit_failed_flag = 1;
#endif
            fflush(stdout);
            _exit(unit_failed_flag ? 1 : 0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
            ;
        failures += unit_report(prog, t, status);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", unit_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", unit_dir);
    return failures ? 1 : 0;
}

int unit_config_valid(struct config *c, const char *json, char *err, size_t errlen)
{
    err[0] = '\0';
    config_defaults(c);
    if (config_load_string(c, json, "t.json", err, errlen) != 0)
        return -1;
    return config_validate(c, err, errlen);
}

void unit_expect_config_errors(const char *file, int line, const struct unit_bad_config *bad,
                               size_t n)
{
    char err[1024];
    for (size_t i = 0; i < n; i++) {
        struct config c;
        int rc = unit_config_valid(&c, bad[i].json, err, sizeof err);
        if (rc != -1 || !strstr(err, bad[i].says))
            unit_fail(file, line, "%s: got %d \"%s\", expected \"%s\"", bad[i].json, rc, err,
                      bad[i].says);
        config_free(&c);
    }
}
