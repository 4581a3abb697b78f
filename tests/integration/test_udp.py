"""test_udp.py: the UDP relay (issue 5) against the real binary and Debian's shadowsocks-libev.

Paths, each with 64 flows of 500 datagrams of 1 to 1400 bytes, every delivered payload checked
byte for byte and at least 99.9% delivered:
  ss-tunnel -u (libev) -> reuseproxy server -> UDP echo
  reuseproxy tunnel -> ss-server -u -> UDP echo
  reuseproxy SOCKS5 UDP ASSOCIATE -> ss-server -u -> UDP echo
Behaviours: full-cone replies carry the remote's address; a flow keeps its outbound port;
associations and their sockets go after udp_timeout (traffic either way refreshes them); with
two workers a SIGKILLed worker's loss leaves the other's flows on their ports; garbage gets no
answer and is counted; block_private holds for UDP; domain targets resolve.

Flows are paced in rounds (one datagram per flow, then wait for the answers) so loopback socket
buffers never overflow; each wait is bounded.
"""
import hashlib
import os
import selectors
import signal
import socket
import struct
import time
import urllib.request

import harness
from harness import free_port, reuseproxy, server_config, ss_libev, wait_for, wait_tcp

METHOD = "aes-256-gcm"
PASSWORD = "integration-secret"
FLOWS = 64
DATAGRAMS = 500
MAX_PAYLOAD = 1400


# ---- Payloads and flows ---------------------------------------------------------------------

def payload(flow, seq):
    """The datagram flow sends as its seq-th: 1 to 1400 reproducible bytes (seq 0 is 1 byte,
    seq 1 is 1400 bytes, the rest spread in between)."""
    if seq == 0:
        size = 1
    elif seq == 1:
        size = MAX_PAYLOAD
    else:
        h = hashlib.sha256(b"size-%d-%d" % (flow, seq)).digest()
        size = 1 + int.from_bytes(h[:4], "big") % MAX_PAYLOAD
    return harness.pattern(size, seed=flow * 100003 + seq)


class Flow:
    """One client socket and what it still waits for."""

    def __init__(self, index, sock, dest, wrap=None, unwrap=None):
        self.index, self.sock, self.dest = index, sock, dest
        self.wrap = wrap or (lambda p: p)
        self.unwrap = unwrap or (lambda d: d)
        self.pending = {}       # seq -> payload not yet echoed
        self.current = None
        self.delivered = 0
        self.corrupt = 0

    def send(self, seq):
        p = payload(self.index, seq)
        self.pending[seq] = p
        self.current = seq
        self.sock.sendto(self.wrap(p), self.dest)

    def receive(self, data):
        """Matches an answer to the datagram waited for (or a late one). True when the current
        datagram arrived."""
        p = self.unwrap(data)
        if p is not None and self.pending.get(self.current) == p:
            del self.pending[self.current]
            self.delivered += 1
            return True
        for seq, q in list(self.pending.items()):
            if p is not None and q == p:
                del self.pending[seq]
                self.delivered += 1
                return False
        self.corrupt += 1
        return False


def udp_socket(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


def run_rounds(flows, count, round_timeout=0.5, first_seq=0):
    """count rounds: every flow sends one datagram, then the answers are collected (at most
    round_timeout seconds per round). Stops early once the run cannot pass any more (a corrupt
    answer, or more than 0.1% lost), so a broken relay fails fast. Returns (sent, delivered,
    corrupt)."""
    sel = selectors.DefaultSelector()
    for f in flows:
        sel.register(f.sock, selectors.EVENT_READ, f)
    lost_budget = len(flows) * count // 1000
    try:
        for seq in range(first_seq, first_seq + count):
            if any(f.corrupt for f in flows) or \
                    sum(len(f.pending) for f in flows) > lost_budget:
                break
            waiting = set()
            for f in flows:
                f.send(seq)
                waiting.add(f.index)
            deadline = time.monotonic() + round_timeout
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for key, _ in sel.select(left):
                    f = key.data
                    while True:
                        try:
                            data = f.sock.recv(65536)
                        except BlockingIOError:
                            break
                        if f.receive(data):
                            waiting.discard(f.index)
    finally:
        sel.close()
    sent = sum(len(f.pending) + f.delivered for f in flows)
    return sent, sum(f.delivered for f in flows), sum(f.corrupt for f in flows)


def check_delivery(flows, sent, delivered, corrupt):
    """Every answer intact, and at least 99.9% of the full run's datagrams answered."""
    assert corrupt == 0, "%d answers did not match what was sent" % corrupt
    planned = len(flows) * DATAGRAMS
    ratio = delivered / float(planned)
    assert ratio >= 0.999, "only %d of %d datagrams came back (%.3f%%; %d sent)" % (
        delivered, planned, 100 * ratio, sent)


class RecordingEcho(harness.UdpEcho):
    """The harness echo, also remembering which peer sent each flow's tagged datagrams
    (payloads b"F<flow>:..."), so a test can see a flow's outbound port."""

    def __init__(self, host="127.0.0.1"):
        self.flow_peers = {}
        self.peer_log = []
        super().__init__(host)

    def _serve(self):
        while not self.stopped:
            try:
                d, a = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            self.peers.add(a)
            if d.startswith(b"F") and b":" in d[:8]:
                flow = int(d[1:d.index(b":")])
                self.flow_peers.setdefault(flow, []).append(a)
            self.peer_log.append(a)
            try:
                self.sock.sendto(d, a)
            except OSError:
                pass


def tagged(flow, seq):
    return b"F%d:%d:" % (flow, seq) + harness.pattern(64 + seq % 32, seed=flow)


def exchange(sock, dest, data, timeout=1.0, wrap=None):
    """Sends one datagram and waits for one answer (None on timeout)."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    sock.sendto(wrap(data) if wrap else data, dest)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None
    finally:
        sock.setblocking(False)


def silent(sock, timeout=0.4):
    """True when nothing arrives on sock within timeout."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        sock.recv(65536)
        return False
    except socket.timeout:
        return True
    finally:
        sock.setblocking(False)


# ---- Peers ----------------------------------------------------------------------------------

def udp_server(**kw):
    """reuseproxy as a shadowsocks server with UDP on, block_private off (targets are on
    loopback)."""
    port = free_port()
    cfg = server_config(port, method=METHOD, password=PASSWORD, mode="tcp_and_udp",
                        block_private=False)
    cfg.update(kw)
    return reuseproxy(cfg), port


def ss_tunnel_to(server_port, target_port, password=PASSWORD):
    """libev's ss-tunnel with UDP on, forwarding to 127.0.0.1:target_port."""
    port = free_port()
    p = ss_libev("ss-tunnel", ["-s", "127.0.0.1", "-p", str(server_port), "-b", "127.0.0.1",
                               "-l", str(port), "-k", password, "-m", METHOD, "-u",
                               "-L", "127.0.0.1:%d" % target_port])
    wait_tcp("127.0.0.1", port)
    return p, port


def ss_server():
    port = free_port()
    p = ss_libev("ss-server", ["-s", "127.0.0.1", "-p", str(port), "-k", PASSWORD, "-m",
                               METHOD, "-u"])
    wait_tcp("127.0.0.1", port)
    return p, port


def client_config(role, server_port, **kw):
    cfg = {"role": role, "server": "127.0.0.1", "server_port": server_port,
           "password": PASSWORD, "method": METHOD, "local_address": "127.0.0.1",
           "local_port": free_port(), "mode": "tcp_and_udp", "timeout": 30, "workers": 0}
    cfg.update(kw)
    return cfg


# ---- SOCKS5 UDP ASSOCIATE (RFC 1928 sections 4, 6, 7) ------------------------------------------

def socks5_udp_associate(host, port):
    """Opens a control connection and asks for UDP ASSOCIATE. Returns (tcp socket, relay
    address)."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"\x05\x01\x00")
    assert harness.recv_exact(s, 2) == b"\x05\x00", "SOCKS5 method selection refused"
    s.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    rep = harness.recv_exact(s, 4)
    assert rep[:2] == b"\x05\x00", "UDP ASSOCIATE refused: %r" % rep
    if rep[3] == 1:
        addr = socket.inet_ntop(socket.AF_INET, harness.recv_exact(s, 4))
    elif rep[3] == 4:
        addr = socket.inet_ntop(socket.AF_INET6, harness.recv_exact(s, 16))
    else:
        raise AssertionError("unexpected ATYP %d in the reply" % rep[3])
    bport = struct.unpack("!H", harness.recv_exact(s, 2))[0]
    if addr in ("0.0.0.0", "::"):
        addr = host
    return s, (addr, bport)


def socks5_udp_header(ip, port, frag=0):
    return b"\x00\x00" + bytes([frag]) + b"\x01" + socket.inet_aton(ip) + struct.pack("!H", port)


def socks5_udp_parse(data):
    """(ip, port, payload) of a SOCKS5 UDP datagram with an IPv4 address, or None."""
    if len(data) < 10 or data[:3] != b"\x00\x00\x00" or data[3] != 1:
        return None
    return socket.inet_ntoa(data[4:8]), struct.unpack("!H", data[8:10])[0], data[10:]


# ---- Introspection ------------------------------------------------------------------------------

def udp_ports_of(pid):
    """Local ports of the UDP sockets process pid holds (from /proc/pid/fd and /proc/net/udp*)."""
    inodes = harness.socket_inodes_of(pid)
    ports = set()
    for cols in harness.proc_net_rows("udp", "udp6"):
        if len(cols) > 9 and int(cols[9]) in inodes:
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def metric_sum(mport, name):
    """Sum over workers of a counter from the master's Prometheus endpoint."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=3) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        if name in series.split("{")[0]:
            total += float(value)
    return total


def close_all(flows):
    for f in flows:
        f.sock.close()


# ---- Tests ----------------------------------------------------------------------------------------

def test_udp_ss_tunnel_through_reuseproxy_server():
    """ss-tunnel -u -> reuseproxy server -> echo: 64 x 500, intact; each flow keeps one
    outbound port for its whole life (so the echo sees exactly 64 peers)."""
    echo = harness.UdpEcho()
    try:
        _, sport = udp_server(udp_timeout=60)
        _, tport = ss_tunnel_to(sport, echo.port)
        flows = [Flow(i, udp_socket(), ("127.0.0.1", tport)) for i in range(FLOWS)]
        sent, delivered, corrupt = run_rounds(flows, DATAGRAMS)
        check_delivery(flows, sent, delivered, corrupt)
        assert len(echo.peers) == FLOWS, \
            "%d outbound addresses for %d flows: a flow changed port" % (len(echo.peers), FLOWS)
        close_all(flows)
    finally:
        echo.stop()


def test_udp_reuseproxy_tunnel_to_ss_server():
    """reuseproxy tunnel -> ss-server -u -> echo: 64 x 500, intact, one port per flow."""
    echo = harness.UdpEcho()
    try:
        _, sport = ss_server()
        cfg = client_config("tunnel", sport, tunnel_address="127.0.0.1:%d" % echo.port)
        reuseproxy(cfg)
        flows = [Flow(i, udp_socket(), ("127.0.0.1", cfg["local_port"])) for i in range(FLOWS)]
        sent, delivered, corrupt = run_rounds(flows, DATAGRAMS)
        check_delivery(flows, sent, delivered, corrupt)
        assert len(echo.peers) == FLOWS, "%d echo peers for %d flows" % (len(echo.peers), FLOWS)
        close_all(flows)
    finally:
        echo.stop()


def test_udp_reuseproxy_socks5_to_ss_server():
    """SOCKS5 UDP ASSOCIATE on reuseproxy -> ss-server -u -> echo: 64 x 500; every answer
    carries the echo's address in its SOCKS5 header and the payload intact."""
    echo = harness.UdpEcho()
    try:
        _, sport = ss_server()
        cfg = client_config("local", sport)
        reuseproxy(cfg)
        head = socks5_udp_header("127.0.0.1", echo.port)

        def unwrap(d):
            r = socks5_udp_parse(d)
            if r is None or r[:2] != ("127.0.0.1", echo.port):
                return None
            return r[2]

        flows, controls = [], []
        for i in range(FLOWS):
            ctl, relay = socks5_udp_associate("127.0.0.1", cfg["local_port"])
            # each association's own socket (RFC 1928 section 6), on the address asked
            assert relay[0] == "127.0.0.1" and relay[1] not in (0, cfg["local_port"]), \
                "bound address %r" % (relay,)
            controls.append(ctl)
            flows.append(Flow(i, udp_socket(), relay, wrap=lambda p: head + p, unwrap=unwrap))
        sent, delivered, corrupt = run_rounds(flows, DATAGRAMS)
        check_delivery(flows, sent, delivered, corrupt)
        assert len(echo.peers) == FLOWS, "%d echo peers for %d flows" % (len(echo.peers), FLOWS)
        close_all(flows)
        for c in controls:
            c.close()
    finally:
        echo.stop()


def test_udp_socks5_association_lives_with_its_control_connection():
    """Datagrams need a live UDP ASSOCIATE from their IP; fragments are dropped; closing the
    control connection frees the association and its socket."""
    echo = harness.UdpEcho()
    try:
        _, sport = ss_server()
        cfg = client_config("local", sport)
        p = reuseproxy(cfg)
        relay = ("127.0.0.1", cfg["local_port"])
        head = socks5_udp_header("127.0.0.1", echo.port)
        s = udp_socket()
        assert exchange(s, relay, head + b"no association") is None, "served without ASSOCIATE"
        fd0 = harness.fd_count(p.pid)
        ctl, relay = socks5_udp_associate(*relay)
        assert exchange(s, relay, socks5_udp_header("127.0.0.1", echo.port, frag=1) + b"x") is None, \
            "a fragment was relayed"
        answer = exchange(s, relay, head + b"hello")
        assert answer is not None and socks5_udp_parse(answer) == ("127.0.0.1", echo.port, b"hello"), \
            "bad answer %r" % (answer,)
        assert harness.fd_count(p.pid) > fd0 + 1, "no outbound socket for the association"
        ctl.close()
        assert wait_for(lambda: harness.fd_count(p.pid) == fd0, 3.0), \
            "fds %d, expected %d after the control connection closed" % (harness.fd_count(p.pid), fd0)
        assert exchange(s, relay, head + b"after close") is None, "served after the close"
        s.close()
    finally:
        echo.stop()


def test_udp_full_cone_reply_from_another_remote():
    """ss-local -u (libev SOCKS5) -> reuseproxy server: after a flow reached the echo, a second
    remote socket sends to the flow's mapped address; the client gets it with that remote's
    address in the SOCKS5 header."""
    echo = harness.UdpEcho()
    try:
        _, sport = udp_server()
        lport = free_port()
        ss_libev("ss-local", ["-s", "127.0.0.1", "-p", str(sport), "-b", "127.0.0.1", "-l",
                              str(lport), "-k", PASSWORD, "-m", METHOD, "-u"])
        wait_tcp("127.0.0.1", lport)
        ctl, relay = socks5_udp_associate("127.0.0.1", lport)
        s = udp_socket()
        head = socks5_udp_header("127.0.0.1", echo.port)
        answer = exchange(s, relay, head + b"open the mapping", timeout=2.0)
        assert answer and socks5_udp_parse(answer) == ("127.0.0.1", echo.port, b"open the mapping"), \
            "bad answer %r" % (answer,)
        assert len(echo.peers) == 1
        mapped = next(iter(echo.peers))
        other_port = echo.other.getsockname()[1]
        for attempt in range(3):
            echo.other.sendto(b"unsolicited from another remote %d" % attempt, mapped)
            s.setblocking(True)
            s.settimeout(1.0)
            try:
                got = socks5_udp_parse(s.recv(65536))
                break
            except socket.timeout:
                got = None
        assert got is not None, "the second remote's datagram never reached the client"
        assert got[:2] == ("127.0.0.1", other_port), \
            "reply names %r, expected the second remote 127.0.0.1:%d" % (got[:2], other_port)
        assert got[2].startswith(b"unsolicited from another remote")
        s.close()
        ctl.close()
    finally:
        echo.stop()


def test_udp_expiry_frees_associations_and_sockets():
    """udp_timeout 2: an idle flow's association and socket go; one kept busy only by a remote's
    datagrams (traffic the other way) stays on its port; at the end the fd count is back to
    where it started."""
    echo = RecordingEcho()
    try:
        p, sport = udp_server(udp_timeout=2)
        _, tport = ss_tunnel_to(sport, echo.port)
        fd0 = harness.fd_count(p.pid)
        dest = ("127.0.0.1", tport)
        flows = [udp_socket() for _ in range(8)]
        for i, s in enumerate(flows):
            assert exchange(s, dest, tagged(i, 0)) == tagged(i, 0), "flow %d got no answer" % i
        assert wait_for(lambda: harness.fd_count(p.pid) == fd0 + 8, 2.0), \
            "fds %d, expected %d with 8 associations" % (harness.fd_count(p.pid), fd0 + 8)
        busy = echo.flow_peers[0][0]
        # 3.2 s of remote -> client traffic on flow 0 only (no client traffic at all).
        end = time.monotonic() + 3.2
        while time.monotonic() < end:
            echo.other.sendto(b"keepalive", busy)
            time.sleep(0.3)
        assert wait_for(lambda: harness.fd_count(p.pid) == fd0 + 1, 2.0), \
            "fds %d, expected %d with one association left" % (harness.fd_count(p.pid), fd0 + 1)
        got = []
        flows[0].setblocking(False)
        while True:
            try:
                got.append(flows[0].recv(65536))
            except BlockingIOError:
                break
        assert got and all(g == b"keepalive" for g in got), "keepalives not relayed: %r" % got[:3]
        assert exchange(flows[0], dest, tagged(0, 1)) == tagged(0, 1)
        assert echo.flow_peers[0][-1] == busy, "the busy flow changed its outbound port"
        assert wait_for(lambda: harness.fd_count(p.pid) == fd0, 4.5), \
            "fds %d, expected %d after every association expired" % (harness.fd_count(p.pid), fd0)
        for s in flows:
            s.close()
    finally:
        echo.stop()


def test_udp_worker_sigkill_keeps_other_workers_flows():
    """Two workers; SIGKILL one: flows of the other keep their outbound port, and every flow
    delivers again within 2 s."""
    echo = RecordingEcho()
    try:
        p, sport = udp_server(workers=2, udp_timeout=60)
        assert wait_for(lambda: len(harness.children_of(p.pid)) == 2, 5.0), "no 2 workers"
        _, tport = ss_tunnel_to(sport, echo.port)
        dest = ("127.0.0.1", tport)
        nflows = 32
        socks = [udp_socket() for _ in range(nflows)]
        for i, s in enumerate(socks):
            assert exchange(s, dest, tagged(i, 0), timeout=2.0) == tagged(i, 0), \
                "flow %d got no answer" % i
        port_of = {i: echo.flow_peers[i][-1][1] for i in range(nflows)}
        workers = harness.children_of(p.pid)
        owned = {w: udp_ports_of(w) for w in workers}
        victim = workers[0]
        survivor = workers[1]
        on_survivor = [i for i in range(nflows) if port_of[i] in owned[survivor]]
        on_victim = [i for i in range(nflows) if port_of[i] in owned[victim]]
        assert len(on_survivor) + len(on_victim) == nflows, "flows not found in either worker"
        assert on_survivor and on_victim, "all flows on one worker: %r" % (
            [len(on_survivor), len(on_victim)])
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        missing = set(range(nflows))
        seq = 1
        while missing and time.monotonic() - t0 < 2.0:
            for i in missing:
                socks[i].sendto(tagged(i, seq), dest)
            end = min(time.monotonic() + 0.2, t0 + 2.0)
            while time.monotonic() < end and missing:
                for i in list(missing):
                    try:
                        d = socks[i].recv(65536)
                    except BlockingIOError:
                        continue
                    if d.startswith(b"F%d:" % i):
                        missing.discard(i)
                time.sleep(0.005)
            seq += 1
        assert not missing, "%d flows did not deliver within 2 s of the SIGKILL: %r" % (
            len(missing), sorted(missing))
        moved = [i for i in on_survivor if echo.flow_peers[i][-1][1] != port_of[i]]
        assert not moved, "flows %r of the surviving worker changed port" % moved
        for s in socks:
            s.close()
    finally:
        echo.stop()


def capture_sealed_packet(target_port, data):
    """A genuine shadowsocks UDP packet for 127.0.0.1:target_port carrying data, sealed by
    libev's ss-tunnel towards a socket of ours standing in for the server."""
    fake = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fake.bind(("127.0.0.1", free_port()))
    fake.settimeout(3.0)
    _, tport = ss_tunnel_to(fake.getsockname()[1], target_port)
    app = udp_socket()
    app.sendto(data, ("127.0.0.1", tport))
    try:
        return fake.recv(65536)
    finally:
        fake.close()
        app.close()


def test_udp_garbage_gets_no_answer_and_is_counted():
    """Random bytes, truncated or altered packets, packets under the wrong key and a replayed
    packet: no answer ever, udp_dropped moves, nothing reaches the target; the genuine packet
    is answered once."""
    echo = harness.UdpEcho()
    try:
        mport = free_port()
        _, sport = udp_server(workers=1, metrics_address="127.0.0.1:%d" % mport)
        wait_tcp("127.0.0.1", mport)
        dropped0 = metric_sum(mport, "udp_dropped")
        raw = udp_socket()
        server = ("127.0.0.1", sport)
        rnd = [os.urandom(n) for n in (0, 1, 16, 31, 32, 48, 49, 100, 1400)]
        for d in rnd:
            raw.sendto(d, server)
        assert silent(raw), "answered random bytes"
        genuine = capture_sealed_packet(echo.port, b"genuine")
        broken = [genuine[:-1], genuine[:40], genuine[:32 + 16],
                  genuine[:50] + bytes([genuine[50] ^ 1]) + genuine[51:],
                  genuine[:-1] + bytes([genuine[-1] ^ 0x80])]
        for d in broken:
            raw.sendto(d, server)
        assert silent(raw), "answered a truncated or altered packet"
        _, wrong = ss_tunnel_to(sport, echo.port, password="not-the-password")
        app = udp_socket()
        app.sendto(b"wrong key", ("127.0.0.1", wrong))
        assert silent(app), "answered under the wrong key"
        assert echo.received == 0, "garbage reached the target"
        ans = exchange(raw, server, genuine, timeout=2.0)
        assert ans is not None and len(ans) == 32 + 7 + len(b"genuine") + 16, \
            "the genuine packet got %r" % (ans,)
        assert echo.received == 1
        raw.sendto(genuine, server)
        assert silent(raw), "a replayed packet was answered"
        assert echo.received == 1, "a replayed packet reached the target"
        expected = len(rnd) + len(broken) + 2
        assert wait_for(lambda: metric_sum(mport, "udp_dropped") - dropped0 >= expected, 3.0), \
            "udp_dropped moved by %d, expected at least %d" % (
                metric_sum(mport, "udp_dropped") - dropped0, expected)
        raw.close()
        app.close()
    finally:
        echo.stop()


def test_udp_replies_leave_from_the_address_the_client_sent_to():
    """A server bound to 0.0.0.0 answers a datagram sent to 127.0.0.2 from 127.0.0.2 (the
    kernel's routed choice towards 127.0.0.1 would be 127.0.0.1, and a client that connect()ed
    its socket to 127.0.0.2 would never see the reply); one sent to 127.0.0.1 still gets its
    answer from 127.0.0.1. The same holds for the tunnel's local side."""
    echo = harness.UdpEcho()
    try:
        sport = free_port()
        cfg = server_config(sport, method=METHOD, password=PASSWORD, mode="tcp_and_udp",
                            block_private=False, server="0.0.0.0", workers=1)
        reuseproxy(cfg)
        for dst in ("127.0.0.2", "127.0.0.1"):
            genuine = capture_sealed_packet(echo.port, b"to " + dst.encode())
            raw = udp_socket()
            raw.settimeout(3.0)
            raw.sendto(genuine, (dst, sport))
            try:
                answer, source = raw.recvfrom(65536)
            except socket.timeout:
                raise AssertionError("no answer to a datagram sent to %s" % dst)
            finally:
                raw.close()
            assert source == (dst, sport), \
                "sent to %s:%d, answered from %s:%d" % (dst, sport, source[0], source[1])
            assert len(answer) == 32 + 7 + len(b"to " + dst.encode()) + 16
        tcfg = client_config("tunnel", sport, local_address="0.0.0.0",
                             tunnel_address="127.0.0.1:%d" % echo.port)
        reuseproxy(tcfg)
        app = udp_socket()
        app.connect(("127.0.0.2", tcfg["local_port"]))
        app.settimeout(3.0)
        app.send(b"through a tunnel on 0.0.0.0")
        try:
            assert app.recv(65536) == b"through a tunnel on 0.0.0.0"
        except socket.timeout:
            raise AssertionError("a client connected to 127.0.0.2 got no answer from the tunnel")
        app.close()
    finally:
        echo.stop()


def test_udp_block_private_refuses_loopback_targets():
    """block_private on: a datagram for a loopback target is dropped, never sent, whether the
    target is an address or a name that resolves to one ("localhost")."""
    echo = harness.UdpEcho()
    try:
        _, sport = udp_server(block_private=True)
        _, tport = ss_tunnel_to(sport, echo.port)
        s = udp_socket()
        assert exchange(s, ("127.0.0.1", tport), b"to loopback", timeout=0.5) is None
        cfg = client_config("local", sport)
        reuseproxy(cfg)
        ctl, relay = socks5_udp_associate("127.0.0.1", cfg["local_port"])
        head = b"\x00\x00\x00\x03\x09localhost" + struct.pack("!H", echo.port)
        assert exchange(s, relay, head + b"by name", timeout=0.5) is None
        assert echo.received == 0, "a blocked target received a datagram"
        s.close()
        ctl.close()
    finally:
        echo.stop()


def test_udp_domain_target_through_reuseproxy_both_sides():
    """reuseproxy SOCKS5 -> reuseproxy server with a domain target: the server resolves
    "localhost" without blocking and answers with the resolved address."""
    echo = harness.UdpEcho()
    try:
        _, sport = udp_server()
        cfg = client_config("local", sport)
        reuseproxy(cfg)
        ctl, relay = socks5_udp_associate("127.0.0.1", cfg["local_port"])
        s = udp_socket()
        name = b"localhost"
        head = b"\x00\x00\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", echo.port)
        for i in range(20):
            answer = exchange(s, relay, head + b"by name %d" % i, timeout=2.0)
            assert answer is not None, "datagram %d by name got no answer" % i
            assert socks5_udp_parse(answer) == ("127.0.0.1", echo.port, b"by name %d" % i), \
                "bad answer %r" % (answer,)
        assert len(echo.peers) == 1
        s.close()
        ctl.close()
    finally:
        echo.stop()


def test_udp_bursts_keep_every_datagram_boundary():
    """reuseproxy tunnel -> reuseproxy server -> echo, one flow sending a burst at once: every
    hop sends runs of datagrams to one peer as UDP GSO sends, so the burst mixes equal sizes,
    shorter ones that may only end a run, and sizes that must start a new one. Every datagram
    must come back whole and alone: none merged, split or lost."""
    echo = harness.UdpEcho()
    try:
        _, sport = udp_server(workers=1)
        cfg = client_config("tunnel", sport, tunnel_address="127.0.0.1:%d" % echo.port)
        reuseproxy(cfg)
        sizes = [1000] * 30 + [200] + [1000] * 10 + [1400, 64] + [64] * 5 + [1] + [1000] * 3
        sent = [harness.pattern(n, seed=9000 + i) for i, n in enumerate(sizes)]
        s = udp_socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        dest = ("127.0.0.1", cfg["local_port"])
        assert exchange(s, dest, b"warm-up", timeout=2.0) == b"warm-up"
        for rnd in range(5):
            for d in sent:
                s.sendto(d, dest)
            got = []
            deadline = time.monotonic() + 3.0
            while len(got) < len(sent) and time.monotonic() < deadline:
                try:
                    got.append(s.recv(65536))
                except BlockingIOError:
                    time.sleep(0.005)
            assert sorted(got) == sorted(sent), \
                "round %d: %d of %d datagrams back, sizes %s" % (
                    rnd, len(got), len(sent), sorted(len(g) for g in got))
        s.close()
    finally:
        echo.stop()


def test_udp_datagrams_wait_for_dns_in_a_bounded_queue():
    """A name the server must look up (through c-ares, answered after 0.5 s): the datagrams sent
    meanwhile wait and then leave in order; at most 32 wait per association, the rest are
    dropped and counted; a name that does not resolve gets no answer."""
    echo = harness.UdpEcho()
    dns = harness.FakeDns({"slow.test": "127.0.0.1", "slow2.test": "127.0.0.1"}, delay=0.5)
    try:
        mport = free_port()
        _, sport = udp_server(workers=1, nameserver="127.0.0.1:%d" % dns.port,
                              metrics_address="127.0.0.1:%d" % mport)
        wait_tcp("127.0.0.1", mport)
        cfg = client_config("local", sport)
        reuseproxy(cfg)
        ctl, relay = socks5_udp_associate("127.0.0.1", cfg["local_port"])

        def by_name(name):
            n = name.encode()
            return b"\x00\x00\x00\x03" + bytes([len(n)]) + n + struct.pack("!H", echo.port)

        s = udp_socket()
        t0 = time.monotonic()
        for i in range(5):
            s.sendto(by_name("slow.test") + b"waiting %d" % i, relay)
        got = []
        s.setblocking(True)
        s.settimeout(3.0)
        while len(got) < 5:
            try:
                got.append(socks5_udp_parse(s.recv(65536)))
            except socket.timeout:
                break
        assert time.monotonic() - t0 >= 0.4, "answered before the name resolved"
        assert got == [("127.0.0.1", echo.port, b"waiting %d" % i) for i in range(5)], \
            "got %r" % got
        dropped0 = metric_sum(mport, "udp_dropped")
        for i in range(40):
            s.sendto(by_name("slow2.test") + b"queued %d" % i, relay)
        got = []
        while True:
            s.settimeout(1.5)
            try:
                got.append(socks5_udp_parse(s.recv(65536))[2])
            except socket.timeout:
                break
        assert got == [b"queued %d" % i for i in range(32)], \
            "expected the first 32 in order, got %d: %r" % (len(got), got[:3])
        s.sendto(by_name("nowhere.test") + b"lost", relay)
        assert silent(s, 1.5), "a name that does not resolve was answered"
        assert wait_for(lambda: metric_sum(mport, "udp_dropped") - dropped0 >= 9, 3.0), \
            "udp_dropped moved by %d, expected 8 queue overflows and 1 lookup failure" % (
                metric_sum(mport, "udp_dropped") - dropped0)
        assert ("slow.test", 1) in dns.queries and ("nowhere.test", 1) in dns.queries
        s.close()
        ctl.close()
    finally:
        dns.stop()
        echo.stop()


def udp_fd_count(pid):
    """How many of pid's descriptors are UDP sockets (their inodes in /proc/net/udp, udp6)."""
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            inodes.update(line.split()[9] for line in f.readlines()[1:])
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        n += link.startswith("socket:[") and link[8:-1] in inodes
    return n


def test_udp_full_table_evicts_least_recently_used():
    """udp_max_associations 4 and 10 flows: the table never holds more than 4 associations (nor
    their sockets), evictions are counted, and an evicted flow is served again when it comes
    back."""
    echo = RecordingEcho()
    try:
        mport = free_port()
        p, sport = udp_server(workers=1, udp_max_associations=4, udp_timeout=60,
                              metrics_address="127.0.0.1:%d" % mport)
        wait_tcp("127.0.0.1", mport)
        assert wait_for(lambda: len(harness.children_of(p.pid)) == 1, 5.0), "no worker"
        worker = harness.children_of(p.pid)[0]
        _, tport = ss_tunnel_to(sport, echo.port)
        dest = ("127.0.0.1", tport)
        # UDP sockets only: the tunnel's readiness check made a TCP connection through the
        # server (to a port nobody serves) that a slow worker may still hold
        fd0 = udp_fd_count(worker)
        socks = [udp_socket() for _ in range(10)]
        for i, s in enumerate(socks):
            assert exchange(s, dest, tagged(i, 0)) == tagged(i, 0), "flow %d got no answer" % i
            assert udp_fd_count(worker) <= fd0 + 4, "more than 4 association sockets"
        assert udp_fd_count(worker) == fd0 + 4
        # the endpoint answers from a rendering up to 0.2 s old
        assert wait_for(lambda: metric_sum(mport, "udp_evicted") >= 6, 2.0), \
            "evictions not counted"
        assert wait_for(lambda: metric_sum(mport, "udp_associations") == 4, 2.0), \
            "association gauge wrong"
        assert exchange(socks[0], dest, tagged(0, 1)) == tagged(0, 1), "evicted flow not served"
        assert udp_fd_count(worker) == fd0 + 4
        for s in socks:
            s.close()
    finally:
        echo.stop()


def test_udp_client_roles_drop_garbage():
    """Tunnel: random datagrams sent to its outbound socket (standing for forged server replies)
    never reach the app. SOCKS5: malformed requests from an associated client get nothing back.
    Both keep serving afterwards."""
    echo = harness.UdpEcho()
    try:
        _, sport = ss_server()
        cfg = client_config("tunnel", sport, tunnel_address="127.0.0.1:%d" % echo.port)
        p = reuseproxy(cfg)
        app = udp_socket()
        dest = ("127.0.0.1", cfg["local_port"])
        assert exchange(app, dest, b"first") == b"first"
        outbound = udp_ports_of(p.pid) - {cfg["local_port"]}
        assert outbound, "no outbound socket found"
        forger = udp_socket()
        for port in outbound:
            for n in (0, 1, 20, 48, 49, 200, 1400):
                forger.sendto(os.urandom(n), ("127.0.0.1", port))
        assert silent(app), "a forged reply reached the app"
        assert exchange(app, dest, b"still served") == b"still served"

        lcfg = client_config("local", sport)
        reuseproxy(lcfg)
        ctl, relay = socks5_udp_associate("127.0.0.1", lcfg["local_port"])
        c = udp_socket()
        bad = [b"", b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x09" + b"x" * 10,
               b"\x00\x00\x00\x01\x7f\x00", b"\x00\x00\x00\x03\x00\x00\x50data",
               b"\x01\x00\x00\x01\x7f\x00\x00\x01\x00\x50data", os.urandom(300)]
        for d in bad:
            c.sendto(d, relay)
        assert silent(c), "a malformed SOCKS5 request was answered"
        good = socks5_udp_header("127.0.0.1", echo.port) + b"ok"
        assert socks5_udp_parse(exchange(c, relay, good)) == ("127.0.0.1", echo.port, b"ok")
        for s in (app, forger, c, ctl):
            s.close()
    finally:
        echo.stop()


def test_udp_eviction_cancels_a_pending_lookup():
    """An association evicted while its target name is still being resolved takes its lookup
    with it: the late DNS answer is ignored safely, and the server keeps serving (the name is
    then answered from the cache)."""
    echo = harness.UdpEcho()
    dns = harness.FakeDns({"late.test": "127.0.0.1"}, delay=0.6)
    try:
        p, sport = udp_server(udp_max_associations=1, nameserver="127.0.0.1:%d" % dns.port)
        cfg = client_config("local", sport)
        reuseproxy(cfg)
        ctl, relay = socks5_udp_associate("127.0.0.1", cfg["local_port"])
        a, b = udp_socket(), udp_socket()
        a.sendto(b"\x00\x00\x00\x03\x09late.test" + struct.pack("!H", echo.port) + b"A", relay)
        assert wait_for(lambda: dns.queries, 2.0), "the server did not ask the name"
        by_ip = socks5_udp_header("127.0.0.1", echo.port)
        assert socks5_udp_parse(exchange(b, relay, by_ip + b"B")) == ("127.0.0.1", echo.port, b"B")
        time.sleep(0.8)  # the DNS answer arrives for the evicted association
        assert p.alive(), "the server died"
        assert silent(a, 0.2), "the evicted association's datagram was still sent"
        answer = exchange(a, relay, b"\x00\x00\x00\x03\x09late.test" +
                          struct.pack("!H", echo.port) + b"A again")
        assert socks5_udp_parse(answer) == ("127.0.0.1", echo.port, b"A again"), \
            "bad answer %r" % (answer,)
        for s in (a, b, ctl):
            s.close()
    finally:
        dns.stop()
        echo.stop()
