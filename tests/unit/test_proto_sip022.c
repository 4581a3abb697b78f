/* test_proto_sip022.c: SIP022 behind struct proto_ops (src/proto_sip022.c), both ends in one
 * process: a client's request opened by a server with users (SIP023), the response's head in
 * the first slot, the echoed salt, the replay store, and UDP sessions with their window. The
 * wire format itself is checked against sing-shadowsocks in test_ss2022_kat.c and, with the
 * peer, in tests/integration/test_sip022.py. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "replay.h"
#include "unit.h"

#define M CRYPTO_2022_AES_128_GCM

static struct crypto_key key_of(uint8_t seed)
{
    struct crypto_key k = {.method = M, .len = 16};
    for (int i = 0; i < 16; i++)
        k.bytes[i] = (uint8_t)(seed * 31 + i);
    return k;
}

/* A server of three keys: the identity PSK, then alice's and bob's. */
struct server {
    struct crypto_key keys[3];
    const char *names[3];
    struct proto_ctx ctx;
};

static void server_init(struct server *s, struct replay_store *replay)
{
    s->keys[0] = key_of(1);
    s->keys[1] = key_of(2);
    s->keys[2] = key_of(3);
    s->names[0] = NULL;
    s->names[1] = "alice";
    s->names[2] = "bob";
    s->ctx = (struct proto_ctx){
        .ops = &proto_sip022, .keys = s->keys, .nkeys = 3, .names = s->names, .replay = replay};
    CHECK_INT(proto_ctx_init(&s->ctx), 0);
}

/* A client of the server's identity PSK and the user key of seed. */
struct client {
    struct crypto_key keys[2];
    struct proto_ctx ctx;
};

static void client_init(struct client *c, uint8_t user_seed)
{
    c->keys[0] = key_of(1);
    c->keys[1] = key_of(user_seed);
    c->ctx = (struct proto_ctx){.ops = &proto_sip022, .keys = c->keys, .nkeys = 2, .client = true};
    CHECK_INT(proto_ctx_init(&c->ctx), 0);
}

/* One connection's state at one end. */
struct end {
    struct proto_conn conn;
    struct proto_dir up, down;
};

static void end_init(struct end *e, const struct proto_ctx *ctx)
{
    memset(e, 0, sizeof *e);
    e->conn.ctx = ctx;
    proto_dir_init(&e->up);
    proto_dir_init(&e->down);
}

static void end_free(struct end *e)
{
    proto_dir_free(&e->up);
    proto_dir_free(&e->down);
}

static const uint8_t target_header[] = {1, 127, 0, 0, 1, 0, 80};

/* The client's first flight carrying early into out. */
static long client_request(struct end *c, const char *early, uint8_t *out, size_t cap)
{
    if (proto_sip022.seal_begin(&c->conn, &c->up) != 0)
        return -1;
    return proto_sip022.seal_request(&c->conn, &c->up, target_header, sizeof target_header,
                                     (const uint8_t *)early, strlen(early), out, cap);
}

TEST(test_proto_sip022_request_opens_and_names_the_user)
{
    struct server s;
    struct client alice;
    struct end c, srv;
    uint8_t wire[4096];
    struct proto_request req;

    server_init(&s, NULL);
    client_init(&alice, 2);
    end_init(&c, &alice.ctx);
    end_init(&srv, &s.ctx);
    long n = client_request(&c, "hello", wire, sizeof wire);
    CHECK(n > 0);
    /* every prefix is incomplete, never refused */
    for (long cut = 0; cut < n; cut += 7)
        CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)cut, &req),
                  PROTO_NEED_MORE);
    CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)n, &req), PROTO_DONE);
    CHECK_INT(req.consumed, n);
    CHECK_INT(req.target.port, 80);
    CHECK_INT(req.payload_len, 5);
    CHECK(memcmp(req.payload, "hello", 5) == 0);
    CHECK_INT(srv.conn.key, 1);
    CHECK_STR(srv.conn.user, "alice");
    end_free(&c);
    end_free(&srv);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&s.ctx);
}

TEST(test_proto_sip022_unknown_user_is_refused)
{
    struct server s;
    struct client carol;
    struct end c, srv;
    uint8_t wire[4096];
    struct proto_request req;

    server_init(&s, NULL);
    client_init(&carol, 9);
    end_init(&c, &carol.ctx);
    end_init(&srv, &s.ctx);
    long n = client_request(&c, "hello", wire, sizeof wire);
    CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)n, &req), PROTO_BAD);
    CHECK_STR(req.reason, "unknown user");
    end_free(&c);
    end_free(&srv);
    proto_ctx_free(&carol.ctx);
    proto_ctx_free(&s.ctx);
}

TEST(test_proto_sip022_replayed_request_is_refused)
{
    struct replay_store *r = replay_new_shared(1024);
    struct server s;
    struct client bob;
    struct end c, srv, again;
    uint8_t wire[4096], copy[4096];
    struct proto_request req;

    CHECK(r != NULL);
    server_init(&s, r);
    client_init(&bob, 3);
    end_init(&c, &bob.ctx);
    end_init(&srv, &s.ctx);
    end_init(&again, &s.ctx);
    long n = client_request(&c, "", wire, sizeof wire); /* padding only */
    CHECK(n > 0);
    memcpy(copy, wire, (size_t)n);
    CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)n, &req), PROTO_DONE);
    CHECK_INT(req.payload_len, 0);
    CHECK_INT(proto_sip022.open_request(&again.conn, &again.up, copy, (size_t)n, &req),
              PROTO_REPLAYED);
    end_free(&c);
    end_free(&srv);
    end_free(&again);
    proto_ctx_free(&bob.ctx);
    proto_ctx_free(&s.ctx);
    replay_free(r);
}

/* The server seals len bytes (filled with fill) as the relay does: read into slots behind the
 * head room. Returns the wire bytes at buf + *start. */
static long server_seal(struct end *srv, uint8_t *buf, size_t len, uint8_t fill, size_t *start)
{
    size_t head = proto_sip022.seal_head_len(&srv->conn, &srv->down);
    for (size_t done = 0, slot = 0; done < len; slot++) {
        size_t k = len - done < PROTO_SLOT_PAYLOAD ? len - done : PROTO_SLOT_PAYLOAD;
        memset(buf + head + slot * PROTO_SLOT + PROTO_SLOT_HEAD, fill, k);
        done += k;
    }
    return proto_sip022.seal_slots(&srv->conn, &srv->down, buf, len, start);
}

/* Opens wire[0..len) at the client; returns the payload bytes, or -1 when the stream did not
 * open whole or a byte is not fill. */
static long client_open(struct end *c, uint8_t *wire, size_t len, uint8_t fill)
{
    struct iovec iov[8];
    size_t consumed;
    long total = 0;
    int n = proto_sip022.open_stream(&c->conn, &c->down, wire, len, &consumed, iov, 8);
    if (n < 1 || consumed != len)
        return -1;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < iov[i].iov_len; j++)
            if (((uint8_t *)iov[i].iov_base)[j] != fill)
                return -1;
        total += (long)iov[i].iov_len;
    }
    return total;
}

TEST(test_proto_sip022_response_head_takes_the_first_slot)
{
    struct server s;
    struct client alice;
    struct end c, srv;
    uint8_t wire[4096];
    struct proto_request req;
    size_t cap = 3 * PROTO_SLOT + 256, start;
    uint8_t *buf = malloc(cap);

    server_init(&s, NULL);
    client_init(&alice, 2);
    end_init(&c, &alice.ctx);
    end_init(&srv, &s.ctx);
    long n = client_request(&c, "hi", wire, sizeof wire);
    CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)n, &req), PROTO_DONE);
    CHECK_INT(proto_sip022.seal_begin(&srv.conn, &srv.down), 0);
    /* salt + sealed {type, timestamp, request salt, length} in place of the sealed length */
    CHECK_INT(proto_sip022.seal_head_len(&srv.conn, &srv.down),
              16 + 1 + 8 + 16 + 2 + 16 - PROTO_SLOT_HEAD);
    /* the first flight spans two slots: the head's chunk, then a plain chunk */
    long end = server_seal(&srv, buf, PROTO_SLOT_PAYLOAD + 100, 0xA5, &start);
    CHECK(end > 0);
    CHECK_INT(client_open(&c, buf + start, (size_t)end - start, 0xA5), PROTO_SLOT_PAYLOAD + 100);
    CHECK_INT(proto_sip022.seal_head_len(&srv.conn, &srv.down), 0);
    end = server_seal(&srv, buf, 7, 0x5A, &start);
    CHECK_INT(client_open(&c, buf + start, (size_t)end - start, 0x5A), 7);
    free(buf);
    end_free(&c);
    end_free(&srv);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&s.ctx);
}

TEST(test_proto_sip022_client_refuses_a_response_to_another_request)
{
    struct server s;
    struct client alice;
    struct end c1, c2, srv;
    uint8_t wire[4096], buf[PROTO_SLOT + 256];
    struct proto_request req;
    size_t start, consumed;
    struct iovec iov[2];

    server_init(&s, NULL);
    client_init(&alice, 2);
    end_init(&c1, &alice.ctx);
    end_init(&c2, &alice.ctx);
    end_init(&srv, &s.ctx);
    long n = client_request(&c1, "one", wire, sizeof wire);
    CHECK(client_request(&c2, "two", wire + 2048, 2048) > 0);
    CHECK_INT(proto_sip022.open_request(&srv.conn, &srv.up, wire, (size_t)n, &req), PROTO_DONE);
    CHECK_INT(proto_sip022.seal_begin(&srv.conn, &srv.down), 0);
    long end = server_seal(&srv, buf, 10, 1, &start);
    CHECK_INT(proto_sip022.open_stream(&c2.conn, &c2.down, buf + start, (size_t)end - start,
                                       &consumed, iov, 2),
              -1);
    CHECK_STR(c2.conn.reason, "request salt mismatch");
    end_free(&c1);
    end_free(&c2);
    end_free(&srv);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&s.ctx);
}

/* ---- UDP ---- */

struct udp_end {
    struct proto_udp p;
    struct proto_udp_state st;
};

static long udp_send(struct udp_end *from, const char *data, uint8_t *out)
{
    uint8_t in[64];
    memcpy(in, target_header, sizeof target_header);
    memcpy(in + sizeof target_header, data, strlen(data));
    return proto_sip022.seal_datagram(&from->p, &from->st, in, sizeof target_header + strlen(data),
                                      out);
}

static void check_plain(const uint8_t *plain, long n, const char *data)
{
    CHECK_INT(n, (long)(sizeof target_header + strlen(data)));
    CHECK(n > 0 && memcmp(plain + sizeof target_header, data, strlen(data)) == 0);
}

TEST(test_proto_sip022_udp_sessions_window_and_foreign_packets)
{
    struct replay_store *r = replay_new_shared(1024);
    struct server s;
    struct client alice, bob;
    struct udp_end srv, a, b;
    uint8_t pkt[512], copy[512], *plain;

    server_init(&s, r);
    client_init(&alice, 2);
    client_init(&bob, 3);
    CHECK_INT(proto_udp_init(&srv.p, &s.ctx), 0);
    CHECK_INT(proto_udp_init(&a.p, &alice.ctx), 0);
    CHECK_INT(proto_udp_init(&b.p, &bob.ctx), 0);
    proto_sip022.udp_state_init(&a.p, &a.st, false);
    proto_sip022.udp_state_init(&b.p, &b.st, false);

    /* alice's first packet makes the server's association, which adopts her session */
    long n = udp_send(&a, "ping", pkt);
    CHECK(n > 0);
    memcpy(copy, pkt, (size_t)n);
    long m = proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain);
    check_plain(plain, m, "ping");
    proto_sip022.udp_state_init(&srv.p, &srv.st, true);
    /* the same packet again, on the association or as a new sender: refused */
    memcpy(pkt, copy, (size_t)n);
    CHECK_INT(proto_sip022.open_datagram(&srv.p, &srv.st, pkt, (size_t)n, &plain), PROTO_REPLAYED);
    memcpy(pkt, copy, (size_t)n);
    CHECK_INT(proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain), PROTO_REPLAYED);
    /* bob's packet on alice's association: a foreign session */
    n = udp_send(&b, "intruder", pkt);
    CHECK_INT(proto_sip022.open_datagram(&srv.p, &srv.st, pkt, (size_t)n, &plain), PROTO_BAD);
    /* alice's next packet, and the server's answer to her session */
    n = udp_send(&a, "again", pkt);
    check_plain(plain, proto_sip022.open_datagram(&srv.p, &srv.st, pkt, (size_t)n, &plain),
                "again");
    n = udp_send(&srv, "pong", pkt);
    CHECK(n > 0);
    memcpy(copy, pkt, (size_t)n);
    check_plain(plain, proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), "pong");
    /* bob cannot take alice's answer; alice cannot take it twice */
    memcpy(pkt, copy, (size_t)n);
    CHECK(proto_sip022.open_datagram(&b.p, &b.st, pkt, (size_t)n, &plain) < 0);
    memcpy(pkt, copy, (size_t)n);
    CHECK_INT(proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), PROTO_REPLAYED);
    proto_udp_free(&srv.p);
    proto_udp_free(&a.p);
    proto_udp_free(&b.p);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&bob.ctx);
    proto_ctx_free(&s.ctx);
    replay_free(r);
}

/* A server finds a packet's association by its client session (session_key after a stateless
 * open), whatever address it came from; joining that association's state runs the session's
 * window, and another user's packet cannot join it. */
TEST(test_proto_sip022_udp_server_keys_sessions_and_joins_them)
{
    struct server s;
    struct client alice, bob;
    struct udp_end srv, a, b;
    uint8_t pkt[512], copy[512], *plain;
    uint64_t first, key;

    server_init(&s, NULL); /* no replay store: the window alone refuses the replay */
    client_init(&alice, 2);
    client_init(&bob, 3);
    CHECK_INT(proto_udp_init(&srv.p, &s.ctx), 0);
    CHECK_INT(proto_udp_init(&a.p, &alice.ctx), 0);
    CHECK_INT(proto_udp_init(&b.p, &bob.ctx), 0);
    proto_sip022.udp_state_init(&a.p, &a.st, false);
    proto_sip022.udp_state_init(&b.p, &b.st, false);
    CHECK(proto_sip022.session_key != NULL && proto_sip022.udp_state_join != NULL);
    CHECK(proto_sip004.session_key == NULL); /* SIP004 keeps the address key */

    long n = udp_send(&a, "one", pkt);
    check_plain(plain, proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain), "one");
    CHECK(proto_sip022.session_key(&srv.p, &first));
    proto_sip022.udp_state_init(&srv.p, &srv.st, true);
    /* her next packet names the same session and joins it */
    n = udp_send(&a, "two", pkt);
    memcpy(copy, pkt, (size_t)n);
    check_plain(plain, proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain), "two");
    CHECK(proto_sip022.session_key(&srv.p, &key) && key == first);
    CHECK_INT(proto_sip022.udp_state_join(&srv.p, &srv.st), PROTO_DONE);
    /* the same packet again (from anywhere): it opens, but the session's window refuses it */
    memcpy(pkt, copy, (size_t)n);
    CHECK(proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain) > 0);
    CHECK_INT(proto_sip022.udp_state_join(&srv.p, &srv.st), PROTO_REPLAYED);
    /* bob claiming alice's session id: found by the key, refused by the join (another user) */
    memcpy(&b.st, &a.st, sizeof(uint64_t)); /* the state's first field: our session id */
    n = udp_send(&b, "mine", pkt);
    CHECK(proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain) > 0);
    CHECK(proto_sip022.session_key(&srv.p, &key) && key == first);
    CHECK_INT(proto_sip022.udp_state_join(&srv.p, &srv.st), PROTO_BAD);
    /* a packet that does not open names no session */
    n = udp_send(&a, "three", pkt);
    pkt[n - 1] ^= 1;
    CHECK_INT(proto_sip022.open_datagram(&srv.p, NULL, pkt, (size_t)n, &plain), PROTO_BAD);
    CHECK(!proto_sip022.session_key(&srv.p, &key));
    proto_udp_free(&srv.p);
    proto_udp_free(&a.p);
    proto_udp_free(&b.p);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&bob.ctx);
    proto_ctx_free(&s.ctx);
}

/* A client that sees the server change sessions (a restart) keeps the previous session's
 * window: a packet of the older session replayed afterwards is refused, not delivered again
 * under a fresh window; the older session's own new packets still pass; a third server session
 * is refused while the previous one is recent (SIP022 section 3.2.4; sing-shadowsocks' client
 * keeps the last session the same way). */
TEST(test_proto_sip022_udp_client_keeps_the_previous_server_session_window)
{
    struct server s;
    struct client alice;
    struct udp_end old_srv, new_srv, third, a;
    uint8_t pkt[512], old_copy[512], *plain;

    server_init(&s, NULL);
    client_init(&alice, 2);
    CHECK_INT(proto_udp_init(&old_srv.p, &s.ctx), 0);
    CHECK_INT(proto_udp_init(&new_srv.p, &s.ctx), 0);
    CHECK_INT(proto_udp_init(&third.p, &s.ctx), 0);
    CHECK_INT(proto_udp_init(&a.p, &alice.ctx), 0);
    proto_sip022.udp_state_init(&a.p, &a.st, false);

    /* three server sessions answering alice's session */
    long n = udp_send(&a, "hello", pkt);
    memcpy(old_copy, pkt, (size_t)n);
    struct udp_end *servers[] = {&old_srv, &new_srv, &third};
    for (int i = 0; i < 3; i++) {
        memcpy(pkt, old_copy, (size_t)n);
        CHECK(proto_sip022.open_datagram(&servers[i]->p, NULL, pkt, (size_t)n, &plain) > 0);
        proto_sip022.udp_state_init(&servers[i]->p, &servers[i]->st, true);
    }

    /* the old session answers, and that answer is kept by someone */
    long m = udp_send(&old_srv, "old", pkt);
    memcpy(old_copy, pkt, (size_t)m);
    check_plain(plain, proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)m, &plain), "old");
    /* the server restarted: a new session answers */
    n = udp_send(&new_srv, "new", pkt);
    check_plain(plain, proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), "new");
    /* the old session's answer replayed now: refused by the old session's window */
    memcpy(pkt, old_copy, (size_t)m);
    CHECK_INT(proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)m, &plain), PROTO_REPLAYED);
    /* a genuine new packet of the old session still passes, once */
    n = udp_send(&old_srv, "late", pkt);
    memcpy(old_copy, pkt, (size_t)n);
    check_plain(plain, proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), "late");
    memcpy(pkt, old_copy, (size_t)n);
    CHECK_INT(proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), PROTO_REPLAYED);
    /* a third session while the previous one spoke just now: refused */
    n = udp_send(&third, "third", pkt);
    CHECK_INT(proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), PROTO_REPLAYED);
    /* the current session goes on */
    n = udp_send(&new_srv, "on", pkt);
    check_plain(plain, proto_sip022.open_datagram(&a.p, &a.st, pkt, (size_t)n, &plain), "on");
    proto_udp_free(&old_srv.p);
    proto_udp_free(&new_srv.p);
    proto_udp_free(&third.p);
    proto_udp_free(&a.p);
    proto_ctx_free(&alice.ctx);
    proto_ctx_free(&s.ctx);
}
