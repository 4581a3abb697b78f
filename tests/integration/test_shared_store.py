"""test_shared_store.py: "shared_store" (issue 19): two reuseproxy instances ("hosts") share
replay protection and their counters through a Redis this test starts on a free loopback port.
A first flight replayed to the other host is refused with Redis and served without it; with
Redis down or mute, "shared_store_failure" decides (allow serves, refuse closes) within
shared_store_timeout_ms, never at the handshake timeout; the port's counters in Redis are the
sum of both hosts' own; a host's per-user totals reach Redis once (pushed by its master), also
across a worker restart. SIP022 first flights go through it as SIP004's do. "shared_store_users"
reads users from a Redis hash at start and on SIGHUP."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import harness as h
from test_master_failure import echo_ok
from test_proxy_protocol import M, PW, record_first_packet, metric
from test_users import user_metrics

TIMEOUT = 4  # the servers' handshake timeout


def redis_bin():
    path = shutil.which("redis-server")
    if not path:
        raise h.Skip("redis-server not installed (Debian: apt-get install redis-server)")
    return path


def start_redis():
    port = h.free_port()
    p = h.Proc([redis_bin(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no"], "redis-server")
    h.wait_tcp("127.0.0.1", port)
    return p, port


def redis_cmd(port, *args):
    """One command over RESP; returns the reply as text (None for nil)."""
    req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a)
                                              for a in (x.encode() for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2
                                             and not data.startswith(b"$-1")):
            data += s.recv(4096)
    if data.startswith(b"$-1"):
        return None
    if data.startswith(b"$"):
        return data.split(b"\r\n")[1].decode()
    return data[1:].strip().decode()


def start_host(store_port, host="127.0.0.1", port=None, **kw):
    port = port or h.free_port()
    mport = h.free_port()
    cfg = h.server_config(port, method=M, password=PW, timeout=TIMEOUT, workers=1,
                          server=host, metrics_address="127.0.0.1:%d" % mport)
    if store_port:
        cfg["shared_store"] = "redis://127.0.0.1:%d" % store_port
        # generous: Redis's answer is late under ASan on a loaded machine, and a late answer
        # is "allow", which would serve a replay (the down and mute cases set their own)
        cfg["shared_store_timeout_ms"] = 2000
    cfg.update(kw)
    proc = h.reuseproxy(cfg, name="host-%s-%d" % (host, port))
    return proc, host, port, mport


def connected(*procs):
    """Waits until each host's worker has its Redis connection (its log says so)."""
    for p in procs:
        assert h.wait_for(lambda: "shared_store: connected" in p.output(), 10), \
            "no Redis connection: %s" % p.output()[-1000:]


def served(host, port, packet, wait=TIMEOUT + 2):
    """(answered, seconds to the answer or the close)."""
    s = socket.create_connection((host, port), timeout=wait)
    t0 = time.monotonic()
    s.sendall(packet)
    try:
        d = s.recv(100)
    except (socket.timeout, ConnectionResetError):
        d = b""
    s.close()
    return len(d) > 0, time.monotonic() - t0


def lacks_hiredis():
    cfg = h.server_config(h.free_port(), method=M, password=PW,
                          shared_store="redis://127.0.0.1:1")
    r = subprocess.run([h.BINARY, "--check", "-c", h.write_config(cfg)], capture_output=True,
                       text=True)
    return "lacks hiredis" in r.stdout + r.stderr


def test_shared_store_replay_across_hosts():
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    echo = h.TcpEcho()
    try:
        # without Redis: each host knows only its own salts, the replay is served
        _, ha, pa, _ = start_host(None)
        _, hb, pb, _ = start_host(None)
        packet = record_first_packet(echo.port)
        assert served(ha, pa, packet)[0], "a fresh first flight was not served"
        assert served(hb, pb, packet)[0], "without a shared store the other host refuses it?"
        # with Redis: the second host refuses it as a replay (silence until its timeout)
        a, ha, pa, ma = start_host(rport)
        b, hb, pb, mb = start_host(rport)
        connected(a, b)
        packet = record_first_packet(echo.port)
        assert served(ha, pa, packet)[0], "a fresh first flight was not served with Redis"
        ok, t = served(hb, pb, packet)
        assert not ok and t > TIMEOUT - 0.2, "the replay to the other host was served (%r)" % t
        assert metric(mb, "replays_total") == 1
        assert metric(ma, "replays_total") == 0
        # the same host still refuses it from its local store first
        assert not served(ha, pa, packet)[0]
    finally:
        echo.stop()


def test_shared_store_sip022_replay_across_hosts():
    """A SIP022 first flight (SIP022 section 3.1.3: the salt of a request that authenticated)
    replayed to another host within the 30 s window is refused with Redis, served without."""
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    echo = h.TcpEcho()
    method = "2022-blake3-aes-256-gcm"
    key = base64.b64encode(os.urandom(32)).decode()
    kw = {"method": method, "password": key}
    try:
        # reuseproxy's SIP022 client sends its request header at once, before any payload:
        # a first flight served is one that reached the echo target
        def reached(host, port, flight):
            before = echo.connections
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(flight)
                return h.wait_for(lambda: echo.connections > before, 2)

        _, ha, pa, _ = start_host(None, **kw)
        _, hb, pb, _ = start_host(None, **kw)
        flight = h.record_first_packet(key, method, echo.port, b"sip022 once")
        assert reached(ha, pa, flight), "a fresh SIP022 first flight was not served"
        assert reached(hb, pb, flight), "without a shared store the other host refuses it?"
        a, ha, pa, ma = start_host(rport, **kw)
        b, hb, pb, mb = start_host(rport, **kw)
        connected(a, b)
        flight = h.record_first_packet(key, method, echo.port, b"sip022 twice")
        assert reached(ha, pa, flight), "a fresh SIP022 first flight was not served with Redis"
        assert not reached(hb, pb, flight), "the SIP022 replay to the other host was served"
        assert h.wait_for(lambda: metric(mb, "replays_total") == 1, 5)
        assert metric(mb, "replays_total") == 1
        assert metric(ma, "replays_total") == 0
    finally:
        echo.stop()


def test_shared_store_down_or_mute_allow_and_refuse():
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    redis, rport = start_redis()
    # a "Redis" that accepts and never answers
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(16)
    echo = h.TcpEcho()
    try:
        a, ha, pa, ma = start_host(rport, shared_store_timeout_ms=300)
        r, hr, pr, mr = start_host(rport, shared_store_timeout_ms=300,
                                   shared_store_failure="refuse")
        connected(a, r)
        assert served(ha, pa, record_first_packet(echo.port))[0]
        assert served(hr, pr, record_first_packet(echo.port))[0]
        redis.stop()
        time.sleep(0.5)
        ok, t = served(ha, pa, record_first_packet(echo.port))
        assert ok and t < 2, "allow mode, Redis down: served %r after %.2f s" % (ok, t)
        ok, t = served(hr, pr, record_first_packet(echo.port))
        assert not ok and t < 2, "refuse mode, Redis down: served %r, closed after %.2f s" % (ok, t)
        assert metric(ma, "shared_store_failures_total") >= 1
        assert metric(mr, "shared_store_failures_total") >= 1
        # Redis mute: each handshake waits shared_store_timeout_ms (0.3 s), no more
        mport = mute.getsockname()[1]
        _, ha, pa, _ = start_host(mport, shared_store_timeout_ms=300)
        _, hr, pr, _ = start_host(mport, shared_store_timeout_ms=300,
                                  shared_store_failure="refuse")
        ok, t = served(ha, pa, record_first_packet(echo.port))
        assert ok and 0.25 < t < 2, "allow mode, Redis mute: %r after %.2f s" % (ok, t)
        ok, t = served(hr, pr, record_first_packet(echo.port))
        assert not ok and 0.25 < t < 2, "refuse mode, Redis mute: %r after %.2f s" % (ok, t)
    finally:
        mute.close()
        echo.stop()


def test_shared_store_counters_are_fleet_totals():
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    echo = h.TcpEcho()
    try:
        # two hosts on one port (two loopback addresses), as a fleet behind a balancer
        port = h.free_port()
        a, ha, _, ma = start_host(rport, host="127.0.0.1", port=port)
        b, hb, _, mb = start_host(rport, host="127.0.0.2", port=port)
        connected(a, b)
        for host, n in ((ha, 3), (hb, 5)):
            for i in range(n):
                assert served(host, port, record_first_packet(echo.port))[0]
        names = {"accepted": "connections", "bytes_in": "bytes_in", "bytes_out": "bytes_out"}

        def pushed():
            # the hosts' sums, read again each time: a closing connection may still count
            want = {k: metric(ma, k + "_total") + metric(mb, k + "_total") for k in names}
            got = {k: int(redis_cmd(rport, "GET", "rp:port:%d:%s" % (port, names[k])) or 0)
                   for k in names}
            pushed.last = (want, got)
            return want == got
        assert h.wait_for(pushed, 10, interval=0.5), "hosts, Redis: %r" % (pushed.last,)
        want = pushed.last[0]
        assert want["accepted"] >= 8
    finally:
        echo.stop()


USERS = [{"name": "alice", "password": "alice-secret"},
         {"name": "bob smith", "password": "bob-secret"}]


def test_shared_store_user_totals_pushed_once_per_host():
    """Per-user counters reach Redis as increments from one process per host (the master, summing
    its workers' slots): rp:user:NAME:* and rp:port:PORT:user:NAME:* equal the host's own
    per-user totals, not twice them (two workers), and a worker killed and replaced loses
    nothing of them."""
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    echo = h.TcpEcho()
    try:
        port, mport = h.free_port(), h.free_port()
        cfg = h.server_config(port, method=M, timeout=TIMEOUT, workers=2, mode="tcp_only",
                              metrics_address="127.0.0.1:%d" % mport, users=USERS,
                              shared_store="redis://127.0.0.1:%d" % rport)
        del cfg["password"]
        server = h.reuseproxy(cfg, name="users-host")
        server.port, server.mport = port, mport
        assert h.wait_for(lambda: server.output().count("shared_store: connected") >= 3, 10), \
            "the workers and the master did not connect: %s" % server.output()[-1000:]
        tunnels = {}
        for u in USERS:
            tunnels[u["name"]] = h.free_port()
            h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": port,
                          "password": u["password"], "method": M, "local_address": "127.0.0.1",
                          "local_port": tunnels[u["name"]], "workers": 0,
                          "tunnel_address": "127.0.0.1:%d" % echo.port}, name=u["name"])
            assert h.wait_for(lambda: h.listening(tunnels[u["name"]]), 10)

        def traffic(name, n):
            for i in range(n):
                assert echo_ok(tunnels[name], seed=i, timeout=10), "%s: echo %d failed" % (name, i)

        def pushed(conns):
            """Redis equals the host once the host has counted conns connections per user."""
            host = user_metrics(server)
            want, got = {}, {}
            for u in USERS:
                for f in ("connections", "bytes_in", "bytes_out"):
                    want[(u["name"], f)] = host.get(("reuseproxy_user_%s_total" % f, u["name"]), 0)
                    got[(u["name"], f)] = int(redis_cmd(rport, "GET", "rp:user:%s:%s"
                                                        % (u["name"], f)) or 0)
                    by_port = int(redis_cmd(rport, "GET", "rp:port:%d:user:%s:%s"
                                            % (port, u["name"], f)) or 0)
                    got[(u["name"], f, "port")] = by_port
                    want[(u["name"], f, "port")] = want[(u["name"], f)]
            pushed.last = (want, got)
            return want == got and all(want[(n, "connections")] >= k for n, k in conns.items())

        traffic("alice", 3)
        traffic("bob smith", 5)
        assert h.wait_for(lambda: pushed({"alice": 3, "bob smith": 5}), 15, interval=0.5), \
            "host, Redis: %r" % (pushed.last,)
        # a worker killed: its slot's counters stay, the master's sums go on from them
        workers = h.children_of(server.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], 9)
        assert h.wait_for(lambda: len(h.children_of(server.pid)) == 2 and
                          workers[0] not in h.children_of(server.pid), 15)
        traffic("alice", 4)
        traffic("bob smith", 2)
        assert h.wait_for(lambda: pushed({"alice": 7, "bob smith": 7}), 15, interval=0.5), \
            "host, Redis: %r" % (pushed.last,)
        print("per-user totals, host = Redis: %r" % (pushed.last[0],))
    finally:
        echo.stop()


def test_shared_store_users_read_from_redis_at_start_and_reload():
    """"shared_store_users": the users of a Redis hash (name -> password) join the file's at
    start and at each SIGHUP; a hash that is not one, or a Redis that cannot be reached, is a
    configuration error naming the key's FILE:LINE:COLUMN (--check too)."""
    if lacks_hiredis():
        raise h.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    echo = h.TcpEcho()
    try:
        assert redis_cmd(rport, "HSET", "rp:users", "alice", "alice-secret") == "1"
        port = h.free_port()
        cfg = h.server_config(port, method=M, timeout=TIMEOUT, workers=1, mode="tcp_only",
                              shared_store="redis://127.0.0.1:%d" % rport,
                              shared_store_users="rp:users")
        del cfg["password"]
        path = h.write_config(cfg)
        r = subprocess.run([h.BINARY, "--check", "-c", path], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        server = h.reuseproxy(cfg, name="redis-users")
        tunnels = {}
        for name in ("alice", "bob"):
            tunnels[name] = h.free_port()
            h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": port,
                          "password": name + "-secret", "method": M,
                          "local_address": "127.0.0.1", "local_port": tunnels[name],
                          "workers": 0, "tunnel_address": "127.0.0.1:%d" % echo.port}, name=name)
            assert h.wait_for(lambda: h.listening(tunnels[name]), 10)
        assert echo_ok(tunnels["alice"]), "alice, in the hash at start, was refused"
        assert not echo_ok(tunnels["bob"], timeout=2), "bob, in no list yet, was served"
        # one HSET, one reload: bob is a user
        assert redis_cmd(rport, "HSET", "rp:users", "bob", "bob-secret") == "1"
        server.signal(signal.SIGHUP)
        assert h.wait_for(lambda: "reload applied live" in server.output(), 15), \
            server.output()[-1500:]
        assert echo_ok(tunnels["bob"]), "bob, added to the hash, was refused after SIGHUP"
        assert echo_ok(tunnels["alice"])
        # errors: not a hash; no Redis there
        redis_cmd(rport, "SET", "rp:string", "x")
        for bad, want in (({"shared_store_users": "rp:string"}, "to be a Redis hash"),
                          ({"shared_store": "redis://127.0.0.1:%d" % h.free_port()},
                           "cannot read \"rp:users\" from Redis")):
            bad_path = h.write_config(dict(cfg, **bad))
            r = subprocess.run([h.BINARY, "--check", "-c", bad_path], capture_output=True,
                               text=True, timeout=30)
            line = [i + 1 for i, t in enumerate(open(bad_path).read().splitlines())
                    if "shared_store_users" in t][0]
            assert r.returncode == 1 and want in r.stderr, r.stderr
            assert "%s:%d:" % (bad_path, line) in r.stderr, r.stderr
    finally:
        echo.stop()
