/* test_control.c: control.c, the master -> worker control channel: records with a descriptor
 * attached, and the users payload, whose parser refuses every malformed input. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "unit.h"

static char err[1024];

static int load(struct config *c, const char *json)
{
    config_defaults(c);
    if (config_load_string(c, json, "t.json", err, sizeof err) != 0)
        return -1;
    return config_validate(c, err, sizeof err);
}

static const char *users_json =
    "{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": \"aes-128-gcm\", "
    "\"users\": [{\"name\": \"alice\", \"password\": \"pa\"}, "
    "{\"name\": \"bob\", \"key\": \"AAECAwQFBgcICQoLDA0ODw==\"}]}";

TEST(test_control_users_round_trip)
{
    struct config c;
    struct control_users u;
    CHECK_INT(load(&c, users_json), 0);
    c.ports[0].users[0].metrics_slot = 7;
    size_t len = control_users_pack(&c, NULL, 0);
    uint8_t *buf = malloc(len);
    CHECK_INT(control_users_pack(&c, buf, len), len);
    CHECK_INT(control_users_parse(buf, len, &u), 0);
    CHECK_INT(u.n_port, 1);
    CHECK_INT(u.ports[0].port, 8388);
    CHECK_INT(u.ports[0].n_users, 2);
    CHECK(u.ports[0].users[0].name_len == 5 && memcmp(u.ports[0].users[0].name, "alice", 5) == 0);
    CHECK_INT(u.ports[0].users[0].metrics_slot, 7);
    CHECK_INT(u.ports[0].users[1].metrics_slot, -1);
    CHECK(memcmp(&u.ports[0].users[0].key, &c.ports[0].users[0].key, sizeof(struct crypto_key)) ==
          0);
    CHECK_INT(u.ports[0].users[1].key.bytes[15], 15);
    control_users_free(&u);
    /* every cut of it, and a byte more, is refused */
    for (size_t n = 0; n < len; n++)
        CHECK_INT(control_users_parse(buf, n, &u), -1);
    uint8_t *more = calloc(1, len + 1);
    memcpy(more, buf, len);
    CHECK_INT(control_users_parse(more, len + 1, &u), -1);
    free(more);
    free(buf);
    config_free(&c);
}

TEST(test_control_users_parse_survives_garbage)
{
    uint8_t buf[512];
    struct control_users u;
    srand(15);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand();
        if (round % 2 && n >= 8) /* a right magic and a small port count, then garbage */
            memcpy(buf, "RPUS\x01\x00\x00\x00", 8);
        if (control_users_parse(buf, n, &u) == 0)
            control_users_free(&u);
    }
}

TEST(test_control_record_carries_a_descriptor)
{
    struct config c;
    int sv[2], fd;
    struct control_msg in = {.magic = CONTROL_MAGIC, .type = CONTROL_USERS, .generation = 42};
    struct control_msg out;
    CHECK_INT(load(&c, users_json), 0);
    CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int memfd = control_users_memfd(&c);
    CHECK(memfd >= 0);
    CHECK_INT(control_send(sv[0], &in, memfd), 0);
    close(memfd);
    CHECK_INT(control_recv(sv[1], &out, &fd), 1);
    CHECK_INT(out.type, CONTROL_USERS);
    CHECK_INT(out.generation, 42);
    CHECK(fd >= 0);
    uint8_t buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    struct control_users u;
    CHECK(n > 0);
    CHECK_INT(control_users_parse(buf, (size_t)n, &u), 0);
    CHECK_INT(u.ports[0].n_users, 2);
    control_users_free(&u);
    close(fd);
    /* nothing more: EAGAIN; a stranger's record is dropped; a closed peer reads 0 */
    CHECK_INT(control_recv(sv[1], &out, &fd), -1);
    CHECK_INT(send(sv[0], "junk", 4, 0), 4);
    CHECK_INT(control_recv(sv[1], &out, &fd), -1);
    CHECK_INT(fd, -1);
    close(sv[0]);
    CHECK_INT(control_recv(sv[1], &out, &fd), 0);
    close(sv[1]);
    config_free(&c);
}
