/* test_config_live.c: config_live_blocker(), the one place that decides whether a reload is
 * applied live (only the users of a server's port changed) or replaces the workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"

static char err[1024];

static struct config *load(const char *json)
{
    struct config *c = malloc(sizeof *c);
    config_defaults(c);
    if (config_load_string(c, json, "t.json", err, sizeof err) != 0 ||
        config_validate(c, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        config_free(c);
        free(c);
        return NULL;
    }
    return c;
}

static void drop(struct config *c)
{
    if (c)
        config_free(c);
    free(c);
}

#define SIP004_HEAD                                                                                \
    "{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": \"aes-256-gcm\", "             \
    "\"block_private\": false, "

/* The blocker of going from a to b ("" when live). */
static const char *blocker(const char *a_json, const char *b_json)
{
    static char out[64];
    struct config *a = load(a_json), *b = load(b_json);
    const char *why = a && b ? config_live_blocker(a, b) : "unloadable";
    snprintf(out, sizeof out, "%s", why ? why : "");
    drop(a);
    drop(b);
    return out;
}

TEST(test_config_live_users_added_removed_rekeyed)
{
    const char *a = SIP004_HEAD "\"users\": [{\"name\": \"alice\", \"password\": \"pa\"}, "
                                "{\"name\": \"bob\", \"password\": \"pb\"}]}";
    /* bob removed, carol added, alice re-keyed, the list reordered: all live */
    CHECK_STR(blocker(a, SIP004_HEAD "\"users\": [{\"name\": \"carol\", \"password\": \"pc\"}, "
                                     "{\"name\": \"alice\", \"password\": \"new\"}]}"),
              "");
    CHECK_STR(blocker(a, SIP004_HEAD "\"users\": [{\"name\": \"bob\", \"password\": \"pb\"}, "
                                     "{\"name\": \"alice\", \"password\": \"pa\"}]}"),
              "");
    /* the same key given as "key" is the same user: no change at all */
    CHECK_STR(blocker(a, a), "nothing");
}

TEST(test_config_live_other_changes_replace_the_workers)
{
    const char *a = SIP004_HEAD "\"users\": [{\"name\": \"alice\", \"password\": \"pa\"}]}";
    /* each with a users change beside it, which alone would be live */
    static const struct {
        const char *more, *blocker;
    } cases[] = {
        {"\"timeout\": 99", "timeout"},
        {"\"drain_timeout\": 3", "drain_timeout"},
        {"\"password\": \"own\"", "password"},
        {"\"nameserver\": \"127.0.0.1\"", "nameserver"},
        {"\"max_handshakes_per_source\": 5", "max_handshakes_per_source"},
        /* a setting the table does not name is still caught, by the bytes */
        {"\"reuse_port\": true", "settings other than users"},
    };
    char b[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(b, sizeof b,
                 SIP004_HEAD "%s, \"users\": [{\"name\": \"bob\", \"password\": "
                             "\"pb\"}]}",
                 cases[i].more);
        CHECK_STR(blocker(a, b), cases[i].blocker);
    }
    /* from users to none and back: the counters and the key set's shape are made at start */
    CHECK_STR(blocker(a, SIP004_HEAD "\"password\": \"pa\"}"), "password");
    CHECK_STR(blocker(SIP004_HEAD "\"password\": \"pa\"}",
                      SIP004_HEAD "\"password\": \"pa\", \"users\": [{\"name\": \"alice\", "
                                  "\"password\": \"pa2\"}]}"),
              "users");
}

TEST(test_config_live_sip022_users_under_the_same_identity_key)
{
    const char *head = "{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": "
                       "\"2022-blake3-aes-128-gcm\", \"password\": "
                       "\"9m/JekTfPGXR0xidFm+PWw==\", ";
    char a[512], b[512], c[512];
    snprintf(a, sizeof a,
             "%s\"users\": [{\"name\": \"alice\", \"password\": "
             "\"AAAAAAAAAAAAAAAAAAAAAA==\"}]}",
             head);
    snprintf(b, sizeof b,
             "%s\"users\": [{\"name\": \"alice\", \"password\": "
             "\"AQEBAQEBAQEBAQEBAQEBAQ==\"}]}",
             head);
    CHECK_STR(blocker(a, b), "");
    /* a new identity PSK: every user's identity header changes */
    snprintf(c, sizeof c,
             "{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": "
             "\"2022-blake3-aes-128-gcm\", \"password\": \"AgICAgICAgICAgICAgICAg==\", "
             "\"users\": [{\"name\": \"bob\", \"password\": "
             "\"AAAAAAAAAAAAAAAAAAAAAA==\"}]}");
    CHECK_STR(blocker(a, c), "password");
}

TEST(test_config_live_local_roles_are_never_live)
{
    const char *a = "{\"role\": \"local\", \"server\": \"127.0.0.1\", \"server_port\": 8388, "
                    "\"local_port\": 1080, \"password\": \"pa\", \"method\": \"aes-256-gcm\"}";
    CHECK_STR(blocker(a, a), "role");
}
