/* test_upgrade.c: the binary upgrade's descriptor hand-over survives the largest configuration
 * (every slot x every listen address, TCP and UDP, plus shared and metrics sockets): the socket
 * set's $REUSEPROXY_FDS text is sized to the set, and the new master reads back every entry. */
#include "autoconfig.h"

#include "sockets.h"
#include "unit.h"
#include "upgrade.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* A set as the master holds it with nslots slots and naddrs addresses, every entry the same
 * real descriptor (sockets_export clears FD_CLOEXEC on each, so it must exist). */
static void fill_set(struct socket_set *s, int nslots, int naddrs, int fd)
{
    memset(s, 0, sizeof *s);
    s->nslots = nslots;
    s->naddrs = s->ntcp = s->nudp = s->nshared = naddrs;
    for (int i = 0; i < nslots; i++)
        for (int a = 0; a < naddrs; a++)
            s->tcp[i][a] = s->udp[i][a] = fd;
    for (int a = 0; a < naddrs; a++)
        s->shared[a] = fd;
    s->metrics = fd;
}

TEST(test_upgrade_hands_over_the_largest_socket_set)
{
    static struct socket_set s;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 3);
    fill_set(&s, SOCKETS_MAX_SLOTS, WORKER_MAX_LISTEN, fd);
    int expect = SOCKETS_MAX_SLOTS * WORKER_MAX_LISTEN * 2 + WORKER_MAX_LISTEN + 1;

    char *text = sockets_export(&s);
    CHECK(text != NULL);
    CHECK(strlen(text) > 8192); /* more than the old fixed buffer held */
    CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    CHECK_INT(setenv("REUSEPROXY_FDS", text, 1), 0);
    struct upgrade_fd *got;
    int n = upgrade_inherited_fds(&got);
    CHECK_INT(n, expect);
    CHECK(getenv("REUSEPROXY_FDS") == NULL); /* a child must not take them again */
    /* slot by slot, TCP then UDP, then the shared ones (-1) and the metrics socket (-2) */
    CHECK_INT(got[0].slot, 0);
    CHECK_INT(got[2 * WORKER_MAX_LISTEN].slot, 1);
    CHECK_INT(got[expect - 2 * WORKER_MAX_LISTEN - WORKER_MAX_LISTEN - 1].slot,
              SOCKETS_MAX_SLOTS - 1);
    CHECK_INT(got[expect - 2].slot, -1);
    CHECK_INT(got[expect - 1].slot, -2);
    for (int i = 0; i < n; i++)
        CHECK_INT(got[i].fd, fd);
    free(got);
    free(text);
    close(fd);
}

TEST(test_upgrade_inherited_fds_skips_what_cannot_be_a_socket)
{
    struct upgrade_fd *got;
    unsetenv("REUSEPROXY_FDS");
    CHECK_INT(upgrade_inherited_fds(&got), 0);
    CHECK(got == NULL);
    /* stdin/out/err and out-of-range numbers are never sockets handed over; a malformed tail
     * ends the list */
    CHECK_INT(setenv("REUSEPROXY_FDS", "0:7,1:2,-1:8,2:99999,-2:9,3x4,5:10", 1), 0);
    int n = upgrade_inherited_fds(&got);
    CHECK_INT(n, 3);
    CHECK(got[0].slot == 0 && got[0].fd == 7);
    CHECK(got[1].slot == -1 && got[1].fd == 8);
    CHECK(got[2].slot == -2 && got[2].fd == 9);
    free(got);
}
