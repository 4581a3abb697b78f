/* manager_state.c: "manager_state", the file that keeps the ss-manager API's ports across
 * restarts: the "list" reply's JSON (manager.c writes and reads it). It is replaced atomically:
 * written to a temporary file beside it, flushed (fsync), renamed over the old one, and the
 * directory flushed too, so a crash or a power cut leaves either the old list or the new one,
 * never half of one (rename(2) is atomic within a file system). Mode 0600: it holds passwords. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manager.h"

/* A state file larger than this is refused: 1024 ports take about 150 KiB. */
#define MANAGER_STATE_MAX (4 * 1024 * 1024)

int manager_state_load(const char *path, struct manager_ports *out, char *err, size_t errlen)
{
    char why[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    manager_ports_free(out);
    if (fd < 0 && errno == ENOENT)
        return 0; /* the first start: no port added yet */
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "manager_state %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (st.st_size > MANAGER_STATE_MAX) {
        snprintf(err, errlen, "manager_state %s: larger than %d bytes", path, MANAGER_STATE_MAX);
        close(fd);
        return -1;
    }
    char *text = malloc((size_t)st.st_size + 1);
    ssize_t n = text ? read(fd, text, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size) {
        snprintf(err, errlen, "manager_state %s: cannot read it", path);
        free(text);
        return -1;
    }
    int rc = manager_ports_from_json(text, (size_t)n, out, why, sizeof why);
    explicit_bzero(text, (size_t)n);
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "manager_state %s: %s", path, why);
    return rc;
}

/* The directory's entry is durable only once the directory itself is flushed. */
static int manager_state_sync_dir(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int manager_state_save(const char *path, const struct manager_ports *p, char *err, size_t errlen)
{
    char tmp[4096];
    char *text = manager_ports_to_json(p);
    int fd = -1, rc = -1;

    if (!text || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "manager_state %s: out of memory or path too long", path);
        free(text);
        return -1;
    }
    size_t len = strlen(text);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0 && write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 &&
        fsync(fd) == 0 && close(fd) == 0) {
        fd = -1;
        rc = rename(tmp, path) == 0 ? manager_state_sync_dir(path) : -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "manager_state %s: %s", fd < 0 ? path : tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    explicit_bzero(text, len);
    free(text);
    return rc;
}
