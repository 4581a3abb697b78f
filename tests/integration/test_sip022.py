"""test_sip022.py: Shadowsocks 2022 (SIP022, SIP023 identity headers) against the reference peer
ss2022ref (sing-shadowsocks, ../shared/peers/ss2022ref), both ways, every method, and the
bad inputs the spec makes a server refuse: each meets silence, is counted, and relays nothing.

The peer is found through $SS2022REF (.ci/run builds it); without it the interop tests skip.
The crafted first flights need python3-cryptography and b3sum (Debian's b3sum package)."""
import base64
import os
import shutil
import socket
import subprocess
import threading
import time

import json
import signal

import harness as h
from test_process import metrics, stop_master, upgrade, wait_workers

METHODS = ("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305")
AES = METHODS[:2]
KEY_LEN = {"2022-blake3-aes-128-gcm": 16, "2022-blake3-aes-256-gcm": 32,
           "2022-blake3-chacha20-poly1305": 32}
SIZE = 512 * 1024


def ref_binary():
    path = os.environ.get("SS2022REF")
    if not path:
        raise h.Skip("SS2022REF is not set (sh ../shared/peers/ss2022ref/build.sh prints it)")
    if not os.access(path, os.X_OK):
        raise h.Skip("SS2022REF=%s is not an executable" % path)
    return path


def psk(method):
    return base64.b64encode(os.urandom(KEY_LEN[method])).decode()


def ref_server(method, password, users=None, udp=False):
    port = h.free_port()
    argv = [ref_binary(), "server", "-listen", "127.0.0.1:%d" % port, "-method", method,
            "-password", password] + (["-udp"] if udp else [])
    if users:
        argv += ["-users", ",".join("%s:%s" % u for u in users)]
    p = h.Proc(argv, "ss2022ref-server")
    h.wait_tcp("127.0.0.1", port)
    p.port = port
    return p


def ref_tunnel(method, password, server_port, target_port, udp=False):
    port = h.free_port()
    p = h.Proc([ref_binary(), "tunnel", "-server", "127.0.0.1:%d" % server_port, "-method",
                method, "-password", password, "-listen", "127.0.0.1:%d" % port, "-target",
                "127.0.0.1:%d" % target_port] + (["-udp"] if udp else []), "ss2022ref-tunnel")
    h.wait_tcp("127.0.0.1", port)
    p.port = port
    return p


def ref_tunnel_udp(method, password, server_port, target_port):
    return ref_tunnel(method, password, server_port, target_port, udp=True)


def rp_server(method, password, users=None, workers=0, **kw):
    port = h.free_port()
    cfg = h.server_config(port, method=method, password=password, workers=workers, verbose=1, **kw)
    if users:
        cfg["users"] = [{"name": n, "password": k} for n, k in users]
    if workers:
        cfg["metrics_address"] = "127.0.0.1:%d" % h.free_port()
    p = h.reuseproxy(cfg)
    p.port = port
    if workers:
        p.mport = int(cfg["metrics_address"].rsplit(":", 1)[1])
        wait_workers(p, workers)
    return p


def rp_client(role, method, password, server_port, target_port=None, name=None, **kw):
    port = h.free_port()
    cfg = {"role": role, "server": "127.0.0.1", "server_port": server_port,
           "local_address": "127.0.0.1", "local_port": port, "password": password,
           "method": method, "workers": 0, "timeout": 30}
    if role == "tunnel":
        cfg["tunnel_address"] = "127.0.0.1:%d" % target_port
    cfg.update(kw)
    p = h.reuseproxy(cfg, name=name or "rp-" + role)
    p.port = port
    return p


def round_trip(port, seed=0, size=SIZE, connect=None):
    data = h.pattern(size, seed)
    got = h.transfer("127.0.0.1", port, data, timeout=60, connect=connect)
    assert got == data, "%d of %d bytes came back intact" % (
        next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), min(len(got), len(data))),
        len(data))


def refused(port):
    """True when a connection through port gets nothing back (the server refused it)."""
    try:
        got = h.transfer("127.0.0.1", port, b"refuse me", timeout=10)
    except AssertionError:
        return True
    return got == b""


# ---- interop: reuseproxy <-> ss2022ref, TCP ----

def test_sip022_reuseproxy_server_with_ss2022ref_tunnel_every_method():
    ref_binary()
    echo = h.TcpEcho()
    for i, method in enumerate(METHODS):
        key = psk(method)
        server = rp_server(method, key)
        tunnel = ref_tunnel(method, key, server.port, echo.port)
        round_trip(tunnel.port, seed=i)
        # a short first payload (padded) and a reply of one byte
        assert h.transfer("127.0.0.1", tunnel.port, b"x", timeout=30) == b"x", method
        assert refused(ref_tunnel(method, psk(method), server.port, echo.port).port), \
            "%s: a wrong PSK was served" % method


def test_sip022_ss2022ref_server_with_reuseproxy_tunnel_and_local_every_method():
    ref_binary()
    echo = h.TcpEcho()
    for i, method in enumerate(METHODS):
        key = psk(method)
        server = ref_server(method, key)
        tunnel = rp_client("tunnel", method, key, server.port, echo.port)
        round_trip(tunnel.port, seed=i)
        assert h.transfer("127.0.0.1", tunnel.port, b"y", timeout=30) == b"y", method
        local = rp_client("local", method, key, server.port)
        round_trip(local.port, seed=10 + i,
                   connect=lambda: h.socks5_connect("127.0.0.1", local.port, "127.0.0.1",
                                                    echo.port))
        # (wait_tcp's probe shows as "REJECT ...: read header: EOF")
        assert "authentication failed" not in server.output(), server.output()[-1000:]


def test_sip022_eih_reuseproxy_server_two_users_and_an_unknown_one():
    ref_binary()
    echo = h.TcpEcho()
    for method in AES:
        ipsk, alice, bob = psk(method), psk(method), psk(method)
        server = rp_server(method, ipsk, users=[("alice", alice), ("bob", bob)], workers=2)
        for n, upsk in enumerate((alice, bob)):
            tunnel = ref_tunnel(method, "%s:%s" % (ipsk, upsk), server.port, echo.port)
            round_trip(tunnel.port, seed=n)
        before = echo.connections
        stranger = ref_tunnel(method, "%s:%s" % (ipsk, psk(method)), server.port, echo.port)
        assert refused(stranger.port), "%s: an unknown user was served" % method
        assert echo.connections == before, "an unknown user's request was relayed"
        assert h.wait_for(lambda: 'user "alice"' in server.output() and
                          'user "bob"' in server.output(), 5), server.output()[-2000:]
        assert h.wait_for(lambda: failed_handshakes(server)
                          >= 1, 5), metrics(server)


def test_sip022_eih_reuseproxy_clients_of_ss2022ref_users():
    ref_binary()
    echo = h.TcpEcho()
    for method in AES:
        ipsk, alice, bob = psk(method), psk(method), psk(method)
        server = ref_server(method, ipsk, users=[("alice", alice), ("bob", bob)])
        for n, upsk in enumerate((alice, bob)):
            tunnel = rp_client("tunnel", method, "%s:%s" % (ipsk, upsk), server.port, echo.port)
            round_trip(tunnel.port, seed=n)
        for name in ("alice", "bob"):
            assert "user=%s" % name in server.output(), server.output()[-1000:]
        stranger = rp_client("tunnel", method, "%s:%s" % (ipsk, psk(method)), server.port,
                             echo.port)
        assert refused(stranger.port), "%s: ss2022ref served an unknown user" % method


# ---- bad input: crafted first flights (SIP022 section 3.1) ----

def crypto_tools():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    except ImportError:
        raise h.Skip("python3-cryptography is not installed")
    if not shutil.which("b3sum"):
        raise h.Skip("b3sum is not installed (Debian package b3sum)")
    return AESGCM, ChaCha20Poly1305


def derive_key(context, material, length):
    r = subprocess.run(["b3sum", "--derive-key", context, "--length", str(length), "--raw"],
                       input=material, stdout=subprocess.PIPE, check=True, timeout=10)
    return r.stdout


class Sealer:
    """One direction's AEAD with SIP004's little-endian nonce counter."""

    def __init__(self, method, key):
        AESGCM, ChaCha20Poly1305 = crypto_tools()
        self.aead = ChaCha20Poly1305(key) if "chacha" in method else AESGCM(key)
        self.n = 0

    def seal(self, data):
        out = self.aead.encrypt(self.n.to_bytes(12, "little"), data, None)
        self.n += 1
        return out


def craft_request(method, key_b64, port, ts_offset=0, varlen=None, padding=0,
                  payload=b"crafted", salt=None):
    """A request's first flight (no identity header) to 127.0.0.1:port."""
    key = base64.b64decode(key_b64)
    salt = salt or os.urandom(len(key))
    s = Sealer(method, derive_key("shadowsocks 2022 session subkey", key + salt, len(key)))
    var = (b"\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big") + padding.to_bytes(2, "big") +
           bytes(padding) + payload)
    fixed = (b"\x00" + (int(time.time()) + ts_offset).to_bytes(8, "big") +
             (len(var) if varlen is None else varlen).to_bytes(2, "big"))
    return salt + s.seal(fixed) + s.seal(var)


def sent(port, flight, echo, before):
    """Sends a first flight; True when it reached the echo target. A refused one must meet
    silence: no byte back, and the connection still open a second later."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(flight)
    reached = h.wait_for(lambda: echo.connections > before, 1.5)
    s.settimeout(1.0)
    try:
        got = s.recv(4096)
    except socket.timeout:
        got = None
    s.close()
    if not reached:
        assert got is None, "a refused first flight was answered or closed at once: %r" % got
    return reached


def failed_handshakes(server):
    return sum(metrics(server).get("reuseproxy_failed_handshakes_total", {}).values())


def test_sip022_bad_first_flights_meet_silence():
    crypto_tools()
    echo = h.TcpEcho()
    method = "2022-blake3-aes-256-gcm"
    key = psk(method)
    server = rp_server(method, key, workers=2)
    assert sent(server.port, craft_request(method, key, echo.port), echo, 0), \
        "a well-formed crafted request was refused: the crafting is wrong"
    base = echo.connections
    bad = {
        "timestamp 31 s ahead": craft_request(method, key, echo.port, ts_offset=31),
        "timestamp 31 s behind": craft_request(method, key, echo.port, ts_offset=-31),
        "variable header length 0": craft_request(method, key, echo.port, varlen=0),
        "padding of 901 bytes": craft_request(method, key, echo.port, padding=901),
        "neither padding nor payload": craft_request(method, key, echo.port, payload=b""),
    }
    counted = failed_handshakes(server)
    for what, flight in bad.items():
        assert not sent(server.port, flight, echo, base), "%s was relayed" % what
        counted += 1
        assert h.wait_for(lambda: failed_handshakes(server) >= counted, 5), \
            "%s was not counted: %r" % (what, metrics(server))
    assert echo.connections == base
    # within the window, still accepted: 29 s is not a replay
    assert sent(server.port, craft_request(method, key, echo.port, ts_offset=-29), echo, base)


def test_sip022_replayed_first_flight_refused_on_every_worker():
    echo = h.TcpEcho()
    method = "2022-blake3-chacha20-poly1305"
    key = psk(method)
    server = rp_server(method, key, workers=2)
    flight = h.record_first_packet(key, method, echo.port, b"recorded once")
    assert sent(server.port, flight, echo, 0), "the genuine first flight was refused"
    # The kernel spreads the connections over both workers; the store is shared.
    for _ in range(6):
        assert not sent(server.port, flight, echo, 1), "a replayed first flight was relayed"
    assert echo.connections == 1
    assert h.wait_for(lambda: sum(metrics(server)["reuseproxy_replays_total"].values()) >= 6, 5), \
        metrics(server)


def test_sip022_replayed_first_flight_refused_after_binary_upgrade():
    echo = h.TcpEcho()
    method = "2022-blake3-aes-128-gcm"
    key = psk(method)
    server = rp_server(method, key, workers=2)
    flight = h.record_first_packet(key, method, echo.port, b"recorded before the upgrade")
    assert sent(server.port, flight, echo, 0), "the genuine first flight was refused"
    pid = upgrade(server)
    try:
        assert server.wait(15) == 0, "no hand-over: %s" % server.output()[-1000:]
        h.wait_for(lambda: len(h.children_of(pid)) == 2, 5)
        assert not sent(server.port, flight, echo, 1), \
            "a first flight seen before the upgrade was accepted after it"
        assert echo.connections == 1
    finally:
        stop_master(pid)


def test_sip022_user_removed_by_reload_cannot_start_sessions():
    """SIGHUP with bob gone: bob's new connections are refused, alice's keep working, and the
    connection alice had open across the reload is not disturbed."""
    echo = h.TcpEcho()
    method = "2022-blake3-aes-256-gcm"
    ipsk, alice, bob = psk(method), psk(method), psk(method)
    server = rp_server(method, ipsk, users=[("alice", alice), ("bob", bob)], workers=1)
    t_alice = rp_client("tunnel", method, "%s:%s" % (ipsk, alice), server.port, echo.port)
    t_bob = rp_client("tunnel", method, "%s:%s" % (ipsk, bob), server.port, echo.port)
    round_trip(t_alice.port, size=4096)
    round_trip(t_bob.port, size=4096)
    held = socket.create_connection(("127.0.0.1", t_alice.port), timeout=10)
    held.sendall(b"before")
    assert h.recv_exact(held, 6) == b"before"
    with open(server.cfg_path) as f:
        cfg = json.load(f)
    cfg["users"] = [u for u in cfg["users"] if u["name"] != "bob"]
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    server.signal(signal.SIGHUP)
    # users only: applied live (test_live.py has the rest)
    assert h.wait_for(lambda: "reload applied live" in server.output(), 10), \
        server.output()[-800:]
    assert refused(t_bob.port), "a removed user started a session"
    round_trip(t_alice.port, size=4096)
    held.sendall(b"after")
    assert h.recv_exact(held, 5) == b"after", "the reload broke alice's open connection"
    held.close()


class ResponseSwapper:
    """Stands between a client and a SIP022 server: the first connection is relayed and the
    server's response recorded; later connections get that recorded response, whose echoed
    request salt is the first request's (SIP022 section 3.1.3: the client must refuse it)."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.recorded = b""
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        # Relays (and records) until a response was recorded: wait_tcp's probe of the tunnel
        # makes a connection here too, with no response.
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._swap if self.done.is_set() else self._first,
                             args=(c,), daemon=True).start()

    def _first(self, c):
        u = socket.create_connection(("127.0.0.1", self.server_port), timeout=10)
        c.settimeout(20)
        u.settimeout(20)

        def up():
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    u.sendall(d)
                u.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=up, daemon=True)
        t.start()
        recorded = b""
        try:
            while True:
                d = u.recv(65536)
                if not d:
                    break
                recorded += d
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join(20)
        if recorded and not self.done.is_set():
            self.recorded = recorded
            self.done.set()
        c.close()
        u.close()

    def _swap(self, c):
        c.settimeout(10)
        try:
            c.recv(65536)
            c.sendall(self.recorded)
            c.recv(65536)  # until the client closes
        except OSError:
            pass
        c.close()


def test_sip022_client_refuses_a_response_echoing_another_salt():
    echo = h.TcpEcho()
    method = "2022-blake3-aes-128-gcm"
    key = psk(method)
    server = rp_server(method, key)
    swapper = ResponseSwapper(server.port)
    client_cfg = {"metrics_address": "127.0.0.1:%d" % h.free_port(), "workers": 1}
    tunnel = rp_client("tunnel", method, key, swapper.port, echo.port, **client_cfg)
    tunnel.mport = int(client_cfg["metrics_address"].rsplit(":", 1)[1])
    wait_workers(tunnel, 1)
    payload = h.pattern(300)
    first = h.transfer("127.0.0.1", tunnel.port, payload, timeout=30)
    assert first == payload, "through the recorder: %r" % first[:40]
    assert swapper.done.wait(10) and swapper.recorded, "nothing recorded"
    before = failed_handshakes(tunnel)
    got = bytearray()
    s = socket.create_connection(("127.0.0.1", tunnel.port), timeout=30)
    try:
        # The client may refuse the response and close (with a reset, as our request is unread)
        # before sendall is done: a refusal too. Only bytes relayed back mean it accepted, so
        # whatever arrived before an error is kept; the loop ends at EOF, an error, a timeout
        # or the whole payload echoed.
        s.sendall(payload)
        while len(got) < len(payload):
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    finally:
        s.close()
    assert got == b"", "the client relayed a response bound to another request: %r" % got[:40]
    assert h.wait_for(lambda: failed_handshakes(tunnel) > before, 30), metrics(tunnel)


# ---- UDP (sections 3.2 and 4.1) ----

def udp_sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def udp_exchange(sock, dest, data, timeout=2.0, tries=3):
    """Sends data and returns the first answer (None after tries timeouts: UDP may drop)."""
    sock.settimeout(timeout)
    for _ in range(tries):
        sock.sendto(data, dest)
        try:
            return sock.recv(65536)
        except socket.timeout:
            continue
    return None


def udp_round_trips(port, sizes=(1, 100, 1400, 30000), wrap=None, unwrap=None):
    s = udp_sock()
    for n in sizes:
        data = h.pattern(n, n)
        got = udp_exchange(s, ("127.0.0.1", port), wrap(data) if wrap else data)
        if got is not None and unwrap:
            got = unwrap(got)
        assert got == data, "a datagram of %d bytes came back as %r" % (n, (got or b"")[:20])
    s.close()


def test_sip022_udp_reuseproxy_server_with_ss2022ref_tunnel_every_method():
    ref_binary()
    echo = h.UdpEcho()
    for method in METHODS:
        key = psk(method)
        server = rp_server(method, key, mode="tcp_and_udp")
        tunnel = ref_tunnel_udp(method, key, server.port, echo.port)
        udp_round_trips(tunnel.port)
    echo.stop()


def test_sip022_udp_ss2022ref_server_with_reuseproxy_tunnel_and_local_every_method():
    from test_udp import socks5_udp_associate, socks5_udp_header, socks5_udp_parse
    ref_binary()
    echo = h.UdpEcho()
    for method in METHODS:
        key = psk(method)
        server = ref_server(method, key, udp=True)
        tunnel = rp_client("tunnel", method, key, server.port, echo.port, mode="tcp_and_udp")
        udp_round_trips(tunnel.port)
        local = rp_client("local", method, key, server.port, mode="tcp_and_udp")
        ctl, relay = socks5_udp_associate("127.0.0.1", local.port)
        head = socks5_udp_header("127.0.0.1", echo.port)
        s = udp_sock()
        for n in (1, 1400):
            data = h.pattern(n, n)
            got = udp_exchange(s, relay, head + data)
            assert got is not None and socks5_udp_parse(got) == ("127.0.0.1", echo.port, data), \
                "%s: SOCKS5 UDP answer %r" % (method, (got or b"")[:24])
        s.close()
        ctl.close()
    echo.stop()


def test_sip022_udp_eih_two_users_and_an_unknown_one_both_ways():
    ref_binary()
    echo = h.UdpEcho()
    for method in AES:
        ipsk, alice, bob = psk(method), psk(method), psk(method)
        server = rp_server(method, ipsk, users=[("alice", alice), ("bob", bob)],
                           mode="tcp_and_udp")
        for upsk in (alice, bob):
            udp_round_trips(ref_tunnel_udp(method, "%s:%s" % (ipsk, upsk), server.port,
                                           echo.port).port, sizes=(10, 1400))
        stranger = ref_tunnel_udp(method, "%s:%s" % (ipsk, psk(method)), server.port, echo.port)
        s = udp_sock()
        assert udp_exchange(s, ("127.0.0.1", stranger.port), b"who", timeout=1.0) is None, \
            "an unknown user's datagram was answered"
        s.close()
        ref = ref_server(method, ipsk, users=[("alice", alice), ("bob", bob)], udp=True)
        for upsk in (alice, bob):
            tunnel = rp_client("tunnel", method, "%s:%s" % (ipsk, upsk), ref.port, echo.port,
                               mode="tcp_and_udp")
            udp_round_trips(tunnel.port, sizes=(10, 1400))
        assert "udp session" in ref.output() and "user=bob" in ref.output(), ref.output()[-800:]
    echo.stop()


def capture_udp(method, key, target_port, count, payload=b"captured"):
    """count genuine client packets of one session, sealed by a reuseproxy tunnel towards a
    socket of ours standing in for the server."""
    fake = udp_sock()
    fake.settimeout(3.0)
    tunnel = rp_client("tunnel", method, key, fake.getsockname()[1], target_port,
                       mode="udp_only", name="capture")
    app = udp_sock()
    packets = []
    while len(packets) < count:
        burst = min(64, count - len(packets))
        for i in range(burst):
            app.sendto(payload, ("127.0.0.1", tunnel.port))
        for i in range(burst):
            packets.append(fake.recv(65536))
    app.close()
    fake.close()
    tunnel.stop()
    return packets


def test_sip022_udp_replayed_foreign_and_stale_packets_are_dropped():
    echo = h.UdpEcho()
    method = "2022-blake3-aes-128-gcm"
    key = psk(method)
    server = rp_server(method, key, mode="tcp_and_udp", workers=1)
    dest = ("127.0.0.1", server.port)
    session = capture_udp(method, key, echo.port, 4100)
    other = capture_udp(method, key, echo.port, 1)
    s = udp_sock()
    # the newest packet first: it is answered, and its session is this address's
    assert udp_exchange(s, dest, session[-1], tries=1) is not None, "a genuine packet was refused"
    refused = {
        "a replayed packet": session[-1],
        "a packet out of the window (4099 behind)": session[0],
    }
    before = sum(metrics(server)["reuseproxy_udp_dropped_total"].values())
    for what, pkt in refused.items():
        assert udp_exchange(s, dest, pkt, timeout=0.5, tries=1) is None, "%s was answered" % what
    assert h.wait_for(lambda: sum(metrics(server)["reuseproxy_udp_dropped_total"].values())
                      >= before + len(refused), 5), metrics(server)
    # inside the window and never seen: accepted
    assert udp_exchange(s, dest, session[-2], tries=1) is not None
    # another session from the same address is its own association (associations are keyed by
    # client session), not a foreign packet on this one
    assert udp_exchange(s, dest, other[0], tries=1) is not None, "a second session was refused"
    assert h.wait_for(lambda: sum(metrics(server)["reuseproxy_udp_associations"].values()) == 2,
                      5), metrics(server)
    s.close()
    # the replayed packet from another address: refused there too (the replay store)
    s2 = udp_sock()
    assert udp_exchange(s2, dest, session[-2], timeout=0.5, tries=1) is None, \
        "a packet replayed from another address was answered"
    s2.close()
    echo.stop()


class PortSwitcher:
    """A UDP relay between a client and the server that sends its first switch_after datagrams
    from one socket and the rest from another, as a NAT that rebinds the client's mapping: the
    client's session moves to a new source port. Replies are counted per socket and passed
    back to the client. forwarded keeps what it sent, for replaying."""

    def __init__(self, server_port, switch_after):
        self.listen = udp_sock()
        self.port = self.listen.getsockname()[1]
        self.out = [udp_sock(), udp_sock()]
        self.server = ("127.0.0.1", server_port)
        self.switch_after = switch_after
        self.forwarded = []
        self.replies = [0, 0]
        self.client = None
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import select
        socks = [self.listen] + self.out
        while not self.stopped:
            ready, _, _ = select.select(socks, [], [], 0.2)
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65536)
                except OSError:
                    return
                if sock is self.listen:
                    self.client = addr
                    out = self.out[len(self.forwarded) >= self.switch_after]
                    self.forwarded.append(data)
                    out.sendto(data, self.server)
                elif self.client:
                    self.replies[self.out.index(sock)] += 1
                    self.listen.sendto(data, self.client)

    def stop(self):
        self.stopped = True
        self.thread.join(timeout=2)
        for sock in [self.listen] + self.out:
            sock.close()


def test_sip022_udp_session_follows_its_client_to_a_new_address():
    """SIP022 section 3.2: the server keys a UDP association by the client's session id, so a
    client whose source port changes mid-session keeps its association, and replies go to the
    new address; a replayed packet from a third address moves nothing."""
    echo = h.UdpEcho()
    for method in METHODS:
        key = psk(method)
        server = rp_server(method, key, mode="tcp_and_udp", workers=1)
        switcher = PortSwitcher(server.port, 3)
        tunnel = rp_client("tunnel", method, key, switcher.port, echo.port, mode="udp_only")
        app = udp_sock()
        for i in range(6):
            data = b"%s %d" % (method.encode(), i)
            got = udp_exchange(app, ("127.0.0.1", tunnel.port), data)
            assert got == data, "%s: datagram %d came back as %r" % (method, i, got)
        assert switcher.replies[1] > 0, "%s: no reply reached the new address" % method
        assoc = lambda: sum(metrics(server)["reuseproxy_udp_associations"].values())
        assert assoc() == 1, "%s: %d associations for one session" % (method, assoc())
        # a captured packet of the session, sent again from elsewhere: refused, and the
        # session's replies still go to the address its last genuine packet came from
        stranger = udp_sock()
        assert udp_exchange(stranger, ("127.0.0.1", server.port), switcher.forwarded[-1],
                            timeout=0.5, tries=1) is None, "%s: a replayed packet was answered" % method
        before = switcher.replies[1]
        assert udp_exchange(app, ("127.0.0.1", tunnel.port), b"after") == b"after"
        assert switcher.replies[1] > before, "%s: the replay moved the session" % method
        stranger.settimeout(0.3)
        try:
            leaked = stranger.recv(65536)
        except socket.timeout:
            leaked = None
        assert leaked is None, "%s: the stranger got %r" % (method, leaked)
        assert assoc() == 1, metrics(server)
        stranger.close()
        app.close()
        switcher.stop()
        tunnel.stop()
        server.stop()
    echo.stop()
