"""test_users.py: many users on one port (issue 15).

A SIP004 server with "users" finds the user of a connection by trial decryption of the first
chunk's length (proto_sip004.c), the key its address used last first. Here: 1,000 users on one
port, ten of them at once through Debian's ss-tunnel with their own passwords, each relayed and
named in the log; a password no user has gets the probe treatment of test_probe.py (silence, a
FIN at the timeout, at the same moment as random bytes) with 1,000 users too.
"""
import re
import shutil
import socket
import threading
import urllib.request

import harness as h
import test_probe as tp

M = "aes-256-gcm"
NUSERS = 1000
SIZE = 256 * 1024


def users(n=NUSERS):
    return [{"name": "user%04d" % i, "password": "pw-%04d-secret" % i} for i in range(n)]


def users_server(workers=2, n=NUSERS, **kw):
    port = h.free_port()
    cfg = h.server_config(port, method=M, workers=workers, verbose=1, **kw)
    del cfg["password"]
    cfg["users"] = users(n)
    if workers:
        cfg["metrics_address"] = "127.0.0.1:%d" % h.free_port()
    p = h.reuseproxy(cfg, name="users-server")
    p.port = port
    if workers:
        p.mport = int(cfg["metrics_address"].rsplit(":", 1)[1])
    return p


def user_metrics(server):
    """{(series, user): sum over the workers} of the per-user series."""
    url = "http://127.0.0.1:%d/metrics" % server.mport
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'(reuseproxy_user_\w+)\{worker="\d+",port="(\d+)",user="([^"]*)"\} (\d+)$',
                     line)
        if m:
            assert int(m.group(2)) == server.port, line
            key = (m.group(1), m.group(3))
            out[key] = out.get(key, 0) + int(m.group(4))
    return out


def assert_clean(server):
    """No sanitizer report in the server's log (a build with --enable-asan/--enable-ubsan)."""
    out = server.output()
    assert "runtime error" not in out and "Sanitizer" not in out, out[-3000:]


def need_ss_tunnel():
    if not shutil.which("ss-tunnel"):
        raise h.Skip("ss-tunnel (Debian's shadowsocks-libev) is not installed")


def ss_tunnel(server_port, password, target_port):
    port = h.free_port()
    h.ss_libev("ss-tunnel", ["-s", "127.0.0.1", "-p", str(server_port), "-l", str(port),
                             "-k", password, "-m", M, "-L", "127.0.0.1:%d" % target_port])
    h.wait_tcp("127.0.0.1", port)
    return port


def echo_through(port, data, timeout=120):
    """Sends data through port and reads as many bytes back; no half-close, which libev's
    ss-tunnel does not pass on (it closes both ways at the client's EOF)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        sender.start()
        got = h.recv_exact(s, len(data))
        sender.join(timeout)
        return got
    finally:
        s.close()


def test_users_thousand_users_ten_ss_tunnels_at_once():
    """1,000 users; ten ss-tunnel clients, each with another user's password, transfer 256 KiB
    each at the same time: every byte comes back, and each user is named in the log."""
    need_ss_tunnel()
    echo = h.TcpEcho()
    server = users_server()
    chosen = [i * 97 + 3 for i in range(10)]
    ports = [ss_tunnel(server.port, "pw-%04d-secret" % i, echo.port) for i in chosen]
    errors = []

    def run(n, port):
        try:
            data = h.pattern(SIZE, n)
            got = echo_through(port, data)
            if got != data:
                errors.append("user%04d: %d of %d bytes came back" % (chosen[n], len(got),
                                                                       len(data)))
        except Exception as e:  # reported below, with the others
            errors.append("user%04d: %r" % (chosen[n], e))

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a transfer did not end in 180 s"
    assert not errors, errors
    for i in chosen:
        assert h.wait_for(lambda: 'user "user%04d"' % i in server.output(), 5), \
            "user%04d is not named in the log: %s" % (i, server.output()[-1500:])
    # each counted under its own name: the transfer both ways, and its connections (the
    # transfer's and ss-tunnel's readiness probe's); the others' counters stay at zero
    def counted():
        got = user_metrics(server)
        return all(got.get(("reuseproxy_user_bytes_in_total", "user%04d" % i), 0) >= SIZE and
                   got.get(("reuseproxy_user_bytes_out_total", "user%04d" % i), 0) >= SIZE and
                   got.get(("reuseproxy_user_connections_total", "user%04d" % i), 0) >= 1
                   for i in chosen)
    assert h.wait_for(counted, 10), "not every user was counted: %r" % {
        k: v for k, v in user_metrics(server).items() if v}
    got = user_metrics(server)
    assert len([k for k in got if k[0] == "reuseproxy_user_bytes_in_total"]) == NUSERS
    others = {k: v for k, v in got.items() if v and int(k[1][4:]) not in chosen}
    assert not others, "users who did not connect were counted: %r" % others
    assert_clean(server)


def test_users_wrong_password_gets_the_probe_treatment():
    """With 1,000 users, genuine first packets under a password no user has, truncated ones and
    random bytes all get zero bytes, a FIN, and their close at the timeout, together; nothing
    reaches the upstream."""
    echo = h.TcpEcho()
    server = users_server(workers=1, timeout=tp.TIMEOUT)
    wrong = [h.record_first_packet("not-a-user-%d" % i, M, echo.port, b"hello %d" % i,
                                   name="recorder") for i in range(4)]
    assert all(len(p) > 32 + 18 for p in wrong), "the recorder sent nothing"
    import random
    rnd = random.Random(15)
    probes = [tp.Probe("wrong password", p) for p in wrong]
    probes += [tp.Probe("truncated", wrong[0][:n]) for n in (1, 31, 32, 49, 50, 60)]
    probes += [tp.Probe("random", bytes(rnd.getrandbits(8) for _ in range(n)))
               for n in (0, 1, 50, 51, 100, 300)]
    tp.run_probes(server.port, probes, tp.TIMEOUT + tp.LATE + 3)
    assert echo.connections == 0, "%d probes reached the upstream" % echo.connections
    for p in probes:
        assert not p.received, "%s got %d bytes back" % (p.group, len(p.received))
        assert p.how == "eof", "%s was closed by %s, not a FIN" % (p.group, p.how)
        after = p.closed - p.opened
        assert tp.TIMEOUT - tp.EARLY <= after <= tp.TIMEOUT + tp.LATE, \
            "%s (%d bytes) was closed %.2f s after its connect, not at the timeout %d s" % (
                p.group, len(p.payload), after, tp.TIMEOUT)
    closes = [p.closed - p.opened for p in probes]
    assert max(closes) - min(closes) <= tp.SPREAD, "closes spread over %.2f s" % (
        max(closes) - min(closes))
    # a user's client is still served
    assert_clean(server)


def test_users_counters_survive_a_worker_restart_and_a_reload():
    """A user's counters live in the master's shared memory: a worker killed and replaced, then
    a reload that removes another user, leave them as they were; the removed user's series
    disappear."""
    need_ss_tunnel()
    import json
    import os
    import signal
    echo = h.TcpEcho()
    server = users_server()
    port = ss_tunnel(server.port, "pw-0042-secret", echo.port)
    assert echo_through(port, h.pattern(SIZE, 42)) == h.pattern(SIZE, 42)
    key = ("reuseproxy_user_bytes_out_total", "user0042")
    assert h.wait_for(lambda: user_metrics(server).get(key, 0) >= SIZE, 10), user_metrics(server)
    before = user_metrics(server)[key]
    workers = h.children_of(server.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert h.wait_for(lambda: len(h.children_of(server.pid)) == 2 and
                      workers[0] not in h.children_of(server.pid), 10), "no worker restart"
    assert user_metrics(server)[key] == before, "a worker restart lost the user's bytes"
    with open(server.cfg_path) as f:
        cfg = json.load(f)
    cfg["users"] = [u for u in cfg["users"] if u["name"] != "user0007"]
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    server.signal(signal.SIGHUP)
    # users only: applied live, the workers stay (test_live.py)
    assert h.wait_for(lambda: "reload applied live" in server.output(), 20), \
        server.output()[-800:]
    gone = ("reuseproxy_user_bytes_out_total", "user0007")
    # a rendering answers scrapes for 200 ms: the next one shows the reload
    assert h.wait_for(lambda: gone not in user_metrics(server), 5), \
        "a removed user's series are still there"
    assert user_metrics(server)[key] == before, "the reload lost the user's bytes"
    assert_clean(server)


def test_users_every_user_added_live_is_counted():
    """A server starts with 2 users; one SIGHUP adds 150 (applied live). The old sizing made
    room for 2 x users + 64 at start (68), so the newest were not counted. Debian's ss-tunnel
    relays 64 KiB through four of the new users, the last listed among them: each is counted
    under its own name in Prometheus (bytes both ways, connections); every one of the 152 has
    its series. A user removed by the next SIGHUP loses its series, and one added again starts
    at zero."""
    import json
    import signal
    need_ss_tunnel()
    echo = h.TcpEcho()
    server = users_server(n=2)
    with open(server.cfg_path) as f:
        cfg = json.load(f)

    def reload(n, marks):
        cfg["users"] = users(n)
        with open(server.cfg_path, "w") as f:
            json.dump(cfg, f)
        server.signal(signal.SIGHUP)
        assert h.wait_for(lambda: server.output().count("reload applied live") >= marks, 30), \
            server.output()[-1500:]

    reload(152, 1)
    chosen = [2, 70, 120, 151]
    data = h.pattern(64 * 1024, 5)
    for i in chosen:
        port = ss_tunnel(server.port, "pw-%04d-secret" % i, echo.port)
        assert echo_through(port, data) == data, "user%04d" % i

    def counted():
        got = user_metrics(server)
        return all(got.get(("reuseproxy_user_bytes_in_total", "user%04d" % i), 0) >= len(data) and
                   got.get(("reuseproxy_user_bytes_out_total", "user%04d" % i), 0) >= len(data)
                   and got.get(("reuseproxy_user_connections_total", "user%04d" % i), 0) >= 1
                   for i in chosen)
    assert h.wait_for(counted, 20), "not every new user was counted: %r" % {
        k: v for k, v in user_metrics(server).items() if v}
    got = user_metrics(server)
    assert len([k for k in got if k[0] == "reuseproxy_user_bytes_in_total"]) == 152
    # the last user removed, then added again: its series go, and come back at zero
    key = ("reuseproxy_user_bytes_in_total", "user0151")
    reload(151, 2)
    assert h.wait_for(lambda: key not in user_metrics(server), 10), "user0151's series stayed"
    reload(152, 3)
    assert h.wait_for(lambda: user_metrics(server).get(key) == 0, 10), user_metrics(server).get(key)
    assert all(user_metrics(server)[("reuseproxy_user_bytes_in_total", "user%04d" % i)] >=
               len(data) for i in chosen[:-1]), "the others' counters changed"
    assert_clean(server)


def test_users_given_by_a_reload_to_a_server_without_users_are_counted():
    """A server that starts with a password and no users, then gets users by SIGHUP (which
    replaces the workers, not the master's shared memory): the users are counted under their
    names (there was no room for them when the room was sized by the users at start)."""
    import json
    import signal
    need_ss_tunnel()
    echo = h.TcpEcho()
    port = h.free_port()
    cfg = h.server_config(port, method=M, workers=2, verbose=1,
                          metrics_address="127.0.0.1:%d" % h.free_port())
    server = h.reuseproxy(cfg, name="users-server")
    server.port = port
    server.mport = int(cfg["metrics_address"].rsplit(":", 1)[1])
    del cfg["password"]
    cfg["users"] = users(3)
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    server.signal(signal.SIGHUP)
    assert h.wait_for(lambda: "reload complete" in server.output(), 30), server.output()[-1500:]
    data = h.pattern(64 * 1024, 6)
    tport = ss_tunnel(port, "pw-0002-secret", echo.port)
    assert echo_through(tport, data) == data
    key = ("reuseproxy_user_bytes_in_total", "user0002")
    assert h.wait_for(lambda: user_metrics(server).get(key, 0) >= len(data), 20), \
        user_metrics(server)
    assert_clean(server)
