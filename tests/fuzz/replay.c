/* replay.c: runs a fuzz target without libFuzzer. Linked with one tests/fuzz/fuzz_*.c, it feeds
 * every file of that target's corpus to LLVMFuzzerTestOneInput(), so `make check` keeps every
 * input ever found (seeds, and crashes once fixed) passing. Built with the same flags as the
 * rest of the tree: under --enable-asan/--enable-ubsan the replay is sanitized too.
 *
 *   fuzz_addr                 every file in $RP_SRCDIR/tests/fuzz/corpus/addr (without
 *                             RP_SRCDIR: under the FUZZ_CORPUS_ROOT compiled in)
 *   fuzz_addr FILE|DIR...     just those (to reproduce one crash: fuzz_addr crash-1234)
 *
 * Each file runs in a child process with a time limit, so one crash or hang is reported with
 * its file name and the rest still run. Prints one line for the target, as tests/run expects:
 * "PASS: fuzz_addr/corpus (N files)" or "FAIL: fuzz_addr/corpus: ...", and below a FAIL one
 * line per failing file. */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\""
#endif

/* Seconds one input may take; libFuzzer's default -timeout is 1200, ours are all fast. */
#define REPLAY_TIME_LIMIT 20
#define REPLAY_MAX_FILES 100000

struct files {
    char **path;
    size_t n, cap;
};

static int add_path(struct files *f, const char *path)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        char **p = realloc(f->path, cap * sizeof *p);
        if (!p)
            return -1;
        f->path = p;
        f->cap = cap;
    }
    if (!(f->path[f->n] = strdup(path)))
        return -1;
    f->n++;
    return 0;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path, or the regular files directly inside it when it is a directory. */
static int collect(struct files *f, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        printf("FAIL: fuzz_%s/corpus: %s: %s\n", FUZZ_TARGET, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return add_path(f, path);
    DIR *d = opendir(path);
    if (!d) {
        printf("FAIL: fuzz_%s/corpus: %s: %s\n", FUZZ_TARGET, path, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) && f->n < REPLAY_MAX_FILES) {
        char full[PATH_MAX];
        if (e->d_name[0] == '.')
            continue;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = add_path(f, full);
    }
    closedir(d);
    return rc;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, fp);
        n += k;
        if (k == 0)
            break;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    bool failed = ferror(fp);
    fclose(fp);
    if (failed) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Runs one file in a child. Returns 0, or -1 with what happened in why. */
static int run_one(const char *path, char *why, size_t whylen)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        size_t len = 0;
        uint8_t *data = read_file(path, &len);
        if (!data) {
            fprintf(stderr, "%s: cannot read\n", path);
            _exit(2);
        }
        /* An exact-size copy: a read past the end is a heap overflow, not a lucky byte. */
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact)
            _exit(2);
        memcpy(exact, data, len);
        free(data);
        alarm(REPLAY_TIME_LIMIT);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
        exit(0); /* exit(), not _exit(): LeakSanitizer runs at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(why, whylen, "took longer than %d s", REPLAY_TIME_LIMIT);
    else if (WIFSIGNALED(status))
        snprintf(why, whylen, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(why, whylen, "exit status %d", WEXITSTATUS(status));
    return -1;
}

int main(int argc, char **argv)
{
    struct files f = {0};
    char dir[PATH_MAX];
    int rc = 0;

    if (argc > 1) {
        for (int i = 1; i < argc && rc == 0; i++)
            rc = collect(&f, argv[i]);
    } else {
        const char *src = getenv("RP_SRCDIR");
#ifdef FUZZ_CORPUS_ROOT
        if (!src || !*src)
            snprintf(dir, sizeof dir, "%s/%s", FUZZ_CORPUS_ROOT, FUZZ_TARGET);
        else
#endif
            snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src && *src ? src : ".",
                     FUZZ_TARGET);
        rc = collect(&f, dir);
    }
    if (rc != 0)
        return 1;
    qsort(f.path, f.n, sizeof *f.path, compare_paths);

    size_t failed = 0;
    char report[8192] = "";
    size_t used = 0;
    for (size_t i = 0; i < f.n; i++) {
        char why[128];
        if (run_one(f.path[i], why, sizeof why) < 0) {
            failed++;
            int k = snprintf(report + used, sizeof report - used, "  %s: %s\n", f.path[i], why);
            if (k > 0 && (size_t)k < sizeof report - used)
                used += (size_t)k;
        }
    }
    if (f.n == 0)
        printf("FAIL: fuzz_%s/corpus: no corpus files found\n", FUZZ_TARGET);
    else if (failed)
        printf("FAIL: fuzz_%s/corpus: %zu of %zu files broke a promise or crashed (reproduce: "
               "%s FILE)\n%s",
               FUZZ_TARGET, failed, f.n, argv[0], report);
    else
        printf("PASS: fuzz_%s/corpus (%zu files)\n", FUZZ_TARGET, f.n);
    for (size_t i = 0; i < f.n; i++)
        free(f.path[i]);
    free(f.path);
    return f.n == 0 || failed ? 1 : 0;
}
