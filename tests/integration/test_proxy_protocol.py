"""test_proxy_protocol.py: the PROXY protocol on server listeners (issue 19). With
"proxy_protocol" every connection starts with a v1 or v2 header from a balancer in
"proxy_protocol_from"; the header's client address is then the one the ACL, the per-source
handshake limit and the logs see. A header from anyone else, a malformed one or none at all is
refused as a probe is: nothing sent, closed at the handshake timeout. Raw headers are written here
byte by byte (HAProxy's proxy-protocol.txt); the last test puts Debian's haproxy in front with
send-proxy-v2 and health checks."""
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

import harness as h

M = "aes-256-gcm"
PW = "proxy-protocol-secret"
TIMEOUT = 3  # the server's handshake timeout: when a refused connection is closed
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src="192.0.2.7", sport=40000, dst=None, dport=8388):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src="192.0.2.7", sport=40000, dst="127.0.0.1", dport=8388, tlvs=b"", local=False):
    if local:
        return SIG + b"\x20\x00" + struct.pack(">H", 0)
    if ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1")
        fam = b"\x21"
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = b"\x11"
    body += struct.pack(">HH", sport, dport) + tlvs
    return SIG + b"\x21" + fam + struct.pack(">H", len(body)) + body


def record_first_packet(target_port, msg=b"hello through a balancer", target_host="127.0.0.1"):
    """What a reuseproxy tunnel sends its server for one connection carrying msg: salt, the
    address header chunk for target_host:target_port (IPv4) and msg's chunk. (The tunnel is not probed
    before use, so the one connection recorded is this one.)"""
    rec = socket.socket()
    rec.bind(("127.0.0.1", 0))
    rec.listen(4)
    tport = h.free_port()
    h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": rec.getsockname()[1],
                  "password": PW, "method": M, "local_address": "127.0.0.1", "local_port": tport,
                  "workers": 0, "tunnel_address": "%s:%d" % (target_host, target_port)},
                 name="recorder", wait=False)
    assert h.wait_for(lambda: h.listening(tport), 10), "the recording tunnel did not start"
    want = 32 + 18 + 7 + 16 + 18 + len(msg) + 16
    c = socket.create_connection(("127.0.0.1", tport), timeout=10)
    c.sendall(msg)
    rec.settimeout(10)
    conn, _ = rec.accept()
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < want and time.monotonic() < deadline:
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        d = conn.recv(65536)
        if not d:
            break
        data += d
    assert len(data) == want, "recorded %d bytes, expected %d" % (len(data), want)
    c.close()
    conn.close()
    rec.close()
    return data


def start(echo, **kw):
    """A server with proxy_protocol (loopback may send headers), a metrics endpoint, and a
    recorded first packet to echo. Replay protection is off so the packet can be sent again."""
    port, mport = h.free_port(), h.free_port()
    cfg = h.server_config(port, method=M, password=PW, timeout=TIMEOUT, proxy_protocol=True,
                          proxy_protocol_from=["127.0.0.0/8", "::1"], replay_protection=False,
                          metrics_address="127.0.0.1:%d" % mport, workers=1)
    cfg.update(kw)
    proc = h.reuseproxy(cfg, args=("-v",))
    packet = record_first_packet(echo.port)
    return proc, port, mport, packet


def metric(mport, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("reuseproxy_%s{" % name):
            total += int(line.split()[-1])
    return total


def exchange(port, chunks, wait=6.0, src="127.0.0.1", gap=0.0):
    """Sends the chunks (gap seconds apart) and reads until EOF or wait seconds. Returns (bytes,
    seconds from connect to EOF or None)."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(wait)
    t0 = time.monotonic()
    s.connect(("127.0.0.1", port))
    got, closed = b"", None
    try:
        for c in chunks:
            s.sendall(c)
            if gap:
                time.sleep(gap)
        while True:
            d = s.recv(65536)
            if not d:
                closed = time.monotonic() - t0
                break
            got += d
            if len(got) >= 16:  # an answer has come: enough
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = time.monotonic() - t0
    s.close()
    return got, closed


def test_proxy_protocol_v1_v2_headers_then_relay():
    echo = h.TcpEcho()
    try:
        _, port, mport, packet = start(echo)
        headers = {"v1 tcp4": v1(), "v1 tcp6": v1(src="2001:db8::7"),
                   "v1 unknown": b"PROXY UNKNOWN\r\n", "v2 ipv4": v2(),
                   "v2 ipv6": v2(src="2001:db8::7"), "v2 local": v2(local=True),
                   "v2 tlvs": v2(tlvs=b"\x01\x00\x02h2\x04\x00\x03\x00\x00\x00")}
        for name, hdr in headers.items():
            got, _ = exchange(port, [hdr + packet])
            assert len(got) > 0, "%s: no answer after the header" % name
        # the header in pieces, and the first packet only after a pause
        for hdr in (v1(), v2()):
            got, _ = exchange(port, [hdr[:5], hdr[5:9], hdr[9:], packet], gap=0.1)
            assert len(got) > 0, "a header sent in pieces was not read whole"
        assert metric(mport, "proxy_protocol_refused_total") == 0
    finally:
        echo.stop()


def test_proxy_protocol_stranger_or_malformed_is_a_probe():
    echo = h.TcpEcho()
    try:
        # loopback is not a balancer here: a perfect header and packet from it are refused
        _, port, mport, packet = start(echo, proxy_protocol_from=["192.0.2.0/24"])
        # (the harness's check that the port is open was refused too)
        before = metric(mport, "proxy_protocol_refused_total")
        got, closed = exchange(port, [v2() + packet])
        assert got == b"", "a header from outside proxy_protocol_from was served"
        assert closed is not None and closed > TIMEOUT - 0.1, \
            "refused at %r s, not at the handshake timeout like a probe" % closed
        assert metric(mport, "proxy_protocol_refused_total") == before + 1
    finally:
        echo.stop()
    echo = h.TcpEcho()
    try:
        _, port, mport, packet = start(echo)
        before = [metric(mport, n) for n in ("proxy_protocol_refused_total",
                                             "failed_handshakes_total")]
        bad = [b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 1\r\n" + packet,
               SIG + b"\x21\x11\x00\x04abcd" + packet,  # too short for IPv4 addresses
               packet,                                  # no header at all
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
        for i, data in enumerate(bad):
            got, closed = exchange(port, [data])
            assert got == b"", "malformed case %d answered" % i
            assert closed is not None and closed > TIMEOUT - 0.1, \
                "malformed case %d closed at %r s" % (i, closed)
        assert metric(mport, "proxy_protocol_refused_total") == before[0] + len(bad)
        assert metric(mport, "failed_handshakes_total") == before[1] + len(bad)
    finally:
        echo.stop()


def test_proxy_protocol_acl_and_limit_see_the_header_address():
    echo = h.TcpEcho()
    acl = os.path.join(h.TMPDIR, "pp.acl")
    with open(acl, "w") as f:
        f.write("[accept_all]\n[black_list]\n192.0.2.66\n")
    try:
        proc, port, _, packet = start(echo, acl=acl, max_handshakes_per_source=1)
        # the ACL: the black-listed client is closed at once, another client is served
        got, closed = exchange(port, [v1(src="192.0.2.66") + packet])
        assert got == b"" and closed is not None and closed < TIMEOUT - 1, \
            "the header's black-listed address was not refused at once (%r)" % closed
        got, _ = exchange(port, [v2(src="192.0.2.7") + packet])
        assert got, "a client the ACL allows was refused"
        # max_handshakes_per_source counts the header's address: a second connection of
        # 198.51.100.1 in its handshake is closed at once, one of 198.51.100.2 is not, though
        # all come from 127.0.0.1
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.sendall(v2(src="198.51.100.1"))
        time.sleep(0.3)
        _, closed = exchange(port, [v2(src="198.51.100.1", sport=2)], wait=2)
        assert closed is not None and closed < 1.5, "the per-source limit missed the header"
        _, closed = exchange(port, [v2(src="198.51.100.2")], wait=1.0)
        assert closed is None, "another client address was limited with the first"
        held.close()
        # the logs name the header's address
        exchange(port, [v1(src="203.0.113.9") + b"\x00" * 80])
        assert h.wait_for(lambda: "203.0.113.9" in proc.output(), 5), \
            "the log does not name the client's address: %s" % proc.output()[-1500:]
    finally:
        echo.stop()


HAPROXY_CFG = """global
    maxconn 512
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%(front)d
    default_backend be
backend be
    server s1 127.0.0.1:%(server)d send-proxy-v2 check check-send-proxy inter 300ms
"""


def test_proxy_protocol_behind_haproxy_send_proxy_v2():
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                          if os.path.exists("/usr/sbin/haproxy") else None)
    if not haproxy:
        raise h.Skip("haproxy not installed (Debian: apt-get install haproxy)")
    echo = h.TcpEcho()
    acl = os.path.join(h.TMPDIR, "haproxy.acl")
    with open(acl, "w") as f:
        f.write("[black_list]\n127.0.0.5\n")
    try:
        _, port, mport, packet = start(echo, acl=acl, workers=2)
        front = h.free_port()
        path = os.path.join(h.TMPDIR, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(HAPROXY_CFG % {"front": front, "server": port})
        assert subprocess.run([haproxy, "-c", "-q", "-f", path]).returncode == 0
        h.Proc([haproxy, "-db", "-f", path], "haproxy")
        h.wait_tcp("127.0.0.1", front)
        # a tunnel client through haproxy: 256 KiB there and back
        lport = h.free_port()
        h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": front,
                      "local_address": "127.0.0.1", "local_port": lport, "password": PW,
                      "method": M, "workers": 0, "timeout": 30,
                      "tunnel_address": "127.0.0.1:%d" % echo.port}, name="tunnel")
        data = h.pattern(256 * 1024)
        assert h.transfer("127.0.0.1", lport, data) == data
        # haproxy connects from 127.0.0.1 each time; the ACL refuses 127.0.0.5 all the same,
        # because the header says who the client is
        got, closed = exchange(front, [packet], src="127.0.0.5")
        assert got == b"" and closed is not None, "127.0.0.5 was served through haproxy"
        got, _ = exchange(front, [packet], src="127.0.0.6")
        assert got, "127.0.0.6 was not served through haproxy"
        # haproxy's health checks (v2 LOCAL headers) are neither probes nor refusals
        time.sleep(1.0)
        assert metric(mport, "proxy_protocol_refused_total") == 0
    finally:
        echo.stop()
