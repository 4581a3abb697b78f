"""test_failover.py: several servers for the client roles (issue 16): probes every
server_check_interval, the choice among the live servers (lowest latency, or round robin), a
failed connect retried on the next server before the client sees an error, and the per-server
metrics. Servers are reuseproxy server roles on loopback, each with its own method and
password; one is dead from the start (a free port nobody listens on), one is killed by PID
mid-test, and one killed is used again once it answers."""
import signal
import socket
import time

import harness as h

SERVERS = [("aes-256-gcm", "first-server-secret"),
           ("chacha20-ietf-poly1305", "second-server-secret"),
           ("aes-128-gcm", "third-server-secret")]


def start_servers(count, **kw):
    """count reuseproxy servers (workers 0), each with its own method and password."""
    out = []
    for i in range(count):
        method, password = SERVERS[i]
        port = h.free_port()
        p = h.reuseproxy(h.server_config(port, method=method, password=password, **kw),
                         name="server%d" % i)
        out.append((port, method, password, p))
    return out


def start_tunnel(servers, echo, **kw):
    """A tunnel to echo over the given (port, method, password) servers, with metrics."""
    lport, mport = h.free_port(), h.free_port()
    cfg = {"role": "tunnel", "local_address": "127.0.0.1", "local_port": lport,
           "tunnel_address": "127.0.0.1:%d" % echo.port, "workers": 1,
           "metrics_address": "127.0.0.1:%d" % mport, "server_check_interval": 1,
           "connect_timeout": 5, "timeout": 30,
           "servers": [{"server": "127.0.0.1", "server_port": port, "method": method,
                        "password": password} for port, method, password in servers]}
    cfg.update(kw)
    if cfg["role"] == "local":
        del cfg["tunnel_address"]
    return h.reuseproxy(cfg, name=cfg["role"]), lport, mport


def server_metrics(mport):
    """{"127.0.0.1:PORT": {"up": .., "connections": .., "failures": .., "udp_sent": ..}}."""
    return h.server_series(mport)


def echo_ok(lport, i):
    """One connection through the tunnel; its bytes must come back unchanged."""
    data = h.pattern(2000 + i, seed=i)
    got = h.transfer("127.0.0.1", lport, data, timeout=30)
    assert got == data, "connection %d: %d bytes back instead of %d" % (i, len(got), len(data))


def key(port):
    return "127.0.0.1:%d" % port


def test_failover_dead_and_killed_server():
    """Latency mode: one server dead from the start, one killed mid-test. No connection fails
    after the first probe interval (nor before: a refused connect is retried), traffic goes to
    the live servers, and the metrics say which are up."""
    echo = h.TcpEcho()
    live = start_servers(2)
    dead_port = h.free_port()
    servers = [(p, m, pw) for p, m, pw, _ in live] + [(dead_port, "aes-128-gcm", "x-dead-pw")]
    tunnel, lport, mport = start_tunnel(servers, echo)
    deadline = time.time() + 15
    while time.time() < deadline and server_metrics(mport).get(key(dead_port), {}).get(
            "up", 1) != 0:
        time.sleep(0.1)
    m = server_metrics(mport)
    assert m[key(dead_port)]["up"] == 0, m
    assert m[key(live[0][0])]["up"] == 1 and m[key(live[1][0])]["up"] == 1, m
    start = {k: v["connections"] for k, v in m.items()}
    for i in range(30):
        echo_ok(lport, i)
    m = server_metrics(mport)
    first = {k: v["connections"] - start[k] for k, v in m.items()}
    assert first[key(dead_port)] == 0, m  # probed dead: never chosen
    # both live servers answer about as fast on loopback: connections take turns among them
    assert first[key(live[0][0])] > 0 and first[key(live[1][0])] > 0, m
    assert first[key(live[0][0])] + first[key(live[1][0])] == 30, m

    killed = live[1]
    killed[3].signal(signal.SIGKILL)
    killed[3].wait(5)
    for i in range(30, 60):  # before and after the next probe: none may fail
        echo_ok(lport, i)
    time.sleep(2.5)  # two probe intervals: the killed server is probed dead
    m = server_metrics(mport)
    assert m[key(killed[0])]["up"] == 0, m
    before = m[key(live[0][0])]["connections"]
    for i in range(60, 70):
        echo_ok(lport, i)
    m = server_metrics(mport)
    assert m[key(live[0][0])]["connections"] == before + 10, m
    assert "does not answer its probe" in tunnel.output(), tunnel.output()[-2000:]


def test_failover_dead_server_used_again_once_it_answers():
    """Round robin over two servers; one killed is probed dead and gets no connection; started
    again on its port, its next probe answers ("answers again" in the log) and it takes every
    other connection again."""
    echo = h.TcpEcho()
    live = start_servers(2)
    tunnel, lport, mport = start_tunnel([(p, m, pw) for p, m, pw, _ in live], echo,
                                        balance_servers="round-robin")
    port, method, password, victim = live[1]
    assert h.wait_for(lambda: server_metrics(mport).get(key(port), {}).get("up") == 1, 15), \
        server_metrics(mport)
    victim.signal(signal.SIGKILL)
    victim.wait(5)
    assert h.wait_for(lambda: server_metrics(mport)[key(port)]["up"] == 0, 15), \
        server_metrics(mport)
    before = server_metrics(mport)[key(port)]["connections"]
    for i in range(6):
        echo_ok(lport, i)
    assert server_metrics(mport)[key(port)]["connections"] == before  # skipped while dead
    h.reuseproxy(h.server_config(port, method=method, password=password), name="server1-again")
    assert h.wait_for(lambda: server_metrics(mport)[key(port)]["up"] == 1, 15), \
        server_metrics(mport)
    for i in range(6, 16):
        echo_ok(lport, i)
    m = server_metrics(mport)
    assert m[key(port)]["connections"] == before + 5, m
    assert "answers again" in tunnel.output(), tunnel.output()[-2000:]


def udp_answered(sock, dest, payload, head=b"", tries=20):
    """Sends head + payload to dest, again every 0.5 s, until an answer ending with payload
    comes back (at most tries times). True when one did."""
    sock.settimeout(0.5)
    for _ in range(tries):
        sock.sendto(head + payload, dest)
        end = time.time() + 0.5
        while time.time() < end:
            try:
                d, _ = sock.recvfrom(65536)
            except socket.timeout:
                break
            if d.endswith(payload):
                return True
    return False


def socks5_udp_associate(lport):
    """A SOCKS5 UDP ASSOCIATE on the local port: (control connection, relay address)."""
    s = socket.create_connection(("127.0.0.1", lport), timeout=10)
    s.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01" + b"\0" * 6)
    rep = h.recv_exact(s, 12)
    assert rep[:4] == b"\x05\x00\x05\x00" and rep[5] == 1, rep
    return s, ("127.0.0.1", int.from_bytes(rep[10:12], "big"))


def check_udp_series(m, servers, dead, flows):
    """The per-server UDP series after flows associations started, servers[0] was killed and
    each sent again: none on the dead one, every one that was on the killed one moved once
    (a failover of its), to the survivor, which never lost one; datagrams went both ways."""
    killed, alive = m[servers[0]], m[servers[1]]
    assert m[dead]["udp_associations"] == 0 and m[dead]["udp_sent"] == 0, m
    assert killed["udp_associations"] >= 1 and alive["udp_failovers"] == 0, m
    assert killed["udp_failovers"] == killed["udp_associations"], m
    assert alive["udp_associations"] == flows, m  # its own and the moved ones
    for s in (killed, alive):
        assert s["udp_sent"] >= s["udp_received"] >= 1, m


def test_failover_udp_dead_and_killed_server():
    """UDP over three servers in the tunnel role and the local role's UDP ASSOCIATE: the first
    server dead from the start, the second killed mid-test. Associations start on the live
    servers (round robin spreads them over both), keep answering, and those on the killed one
    move to the survivor once it is probed dead; the per-server UDP series count them."""
    echo = h.UdpEcho()
    live = start_servers(2, mode="tcp_and_udp")
    dead_port = h.free_port()
    servers = [(dead_port, "aes-128-gcm", "x-dead-pw")] + [(p, m, pw) for p, m, pw, _ in live]
    kw = {"mode": "tcp_and_udp", "balance_servers": "round-robin"}
    _, tport, tmport = start_tunnel(servers, echo, **kw)
    _, lport, lmport = start_tunnel(servers, echo, role="local", **kw)
    for mport in (tmport, lmport):
        assert h.wait_for(lambda: server_metrics(mport).get(key(dead_port), {}).get("up") == 0,
                          15), server_metrics(mport)
    ctl, relay = socks5_udp_associate(lport)
    head = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + echo.port.to_bytes(2, "big")
    flows = []  # (socket, destination, SOCKS5 header): four tunnel flows, four SOCKS5 flows
    for i in range(8):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        flows.append((s, ("127.0.0.1", tport), b"") if i < 4 else (s, relay, head))
    try:
        for i, (s, dest, hd) in enumerate(flows):
            assert udp_answered(s, dest, b"before %d" % i, hd), "flow %d: no answer" % i
        live[0][3].signal(signal.SIGKILL)
        live[0][3].wait(5)
        for mport in (tmport, lmport):
            assert h.wait_for(lambda: server_metrics(mport)[key(live[0][0])]["up"] == 0, 15), \
                server_metrics(mport)
        for i, (s, dest, hd) in enumerate(flows):
            assert udp_answered(s, dest, b"after %d" % i, hd), \
                "flow %d: no answer after the probe interval" % i
        for mport in (tmport, lmport):
            check_udp_series(server_metrics(mport), [key(p) for p, _, _, _ in live],
                             key(dead_port), 4)
    finally:
        for s, _, _ in flows:
            s.close()
        ctl.close()
        echo.stop()


def test_failover_round_robin_spreads_evenly():
    """balance_servers "round-robin": 30 connections over three servers, 10 each."""
    echo = h.TcpEcho()
    live = start_servers(3)
    tunnel, lport, mport = start_tunnel([(p, m, pw) for p, m, pw, _ in live], echo,
                                        balance_servers="round-robin")
    time.sleep(1.5)  # the first probe round
    start = server_metrics(mport)
    for i in range(30):
        echo_ok(lport, i)
    m = server_metrics(mport)
    counts = sorted(m[key(p)]["connections"] - start[key(p)]["connections"]
                    for p, _, _, _ in live)
    assert counts == [10, 10, 10], m


def test_failover_retry_is_invisible():
    """A server that dies between probes (the interval is long): its connect is refused, the
    session retries the next server, the client sees nothing; that worker then skips it."""
    echo = h.TcpEcho()
    live = start_servers(2)
    tunnel, lport, mport = start_tunnel([(p, m, pw) for p, m, pw, _ in live], echo,
                                        balance_servers="round-robin",
                                        server_check_interval=3600)
    time.sleep(0.5)
    echo_ok(lport, 0)
    victim = live[1]
    victim[3].signal(signal.SIGKILL)
    victim[3].wait(5)
    for i in range(1, 21):
        echo_ok(lport, i)
    m = server_metrics(mport)
    assert m[key(victim[0])]["failures"] >= 1, m
    assert m[key(victim[0])]["up"] == 1, m  # no probe since: only the worker knows
    # after the first refusal the worker skips it: at most one retry for it
    assert m[key(victim[0])]["failures"] <= 1, m
    assert m[key(live[0][0])]["connections"] >= 20, m


def test_failover_libev_servers_and_server_list():
    """ "server" as a list with one method and password, against Debian's ss-server; the
    second entry is dead."""
    import shutil
    if not shutil.which("ss-server"):
        raise h.Skip("ss-server not installed (Debian: shadowsocks-libev)")
    echo = h.TcpEcho()
    port = h.free_port()
    h.ss_libev("ss-server", ["-s", "127.0.0.1", "-p", str(port), "-k", "list-secret",
                             "-m", "aes-256-gcm"])
    h.wait_tcp("127.0.0.1", port)
    dead = h.free_port()
    lport = h.free_port()
    cfg = {"role": "local", "local_address": "127.0.0.1", "local_port": lport,
           "server": ["127.0.0.1:%d" % dead, "127.0.0.1:%d" % port], "server_port": port,
           "password": "list-secret", "method": "aes-256-gcm", "workers": 0,
           "server_check_interval": 1}
    h.reuseproxy(cfg, name="local")
    for i in range(10):
        data = h.pattern(1000 + i, seed=i)
        s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
        s.settimeout(30)
        s.sendall(data)
        assert h.recv_exact(s, len(data)) == data
        s.close()
