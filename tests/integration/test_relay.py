"""test_relay.py: the shadowsocks AEAD TCP relay (issue 3), against Debian's shadowsocks-libev in
both directions and against itself: every method, chunk boundaries, SOCKS5 targets, half-close,
concurrency, and silence towards bad input."""
import hashlib
import os
import random
import socket
import threading
import time

import harness as h

METHODS = ["aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
SIZES = [1, 0x3FFF, 0x4000, 1 << 20, 16 << 20]
PASSWORD = "interop-password"


def roundtrip(connect, data, timeout=60):
    """Sends data over a fresh connection through an echo path and reads exactly len(data)
    bytes back, without half-closing (libev's ss-tunnel and ss-local close both directions at
    the first EOF). Returns the bytes received."""
    s = connect()
    s.settimeout(timeout)
    got = bytearray()
    err = []

    def reader():
        try:
            while len(got) < len(data):
                d = s.recv(min(1 << 20, len(data) - len(got)))
                if not d:
                    break
                got.extend(d)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(data)
    t.join(timeout)
    s.close()
    if err:
        raise AssertionError("read failed after %d bytes: %r" % (len(got), err[0]))
    return bytes(got)


def check_sizes(connect, label):
    for n in SIZES:
        data = h.pattern(n, seed=n)
        got = roundtrip(connect, data)
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            raise AssertionError("%s: %d bytes sent, %d came back, sha256 differs" %
                                 (label, n, len(got)))


def plain(port, host="127.0.0.1"):
    return lambda: socket.create_connection((host, port), timeout=10)


def start_server(method, **kw):
    port = h.free_port()
    h.reuseproxy(h.server_config(port, method=method, password=PASSWORD, **kw))
    return port


def start_rp_local(role, method, server_port, **kw):
    lport = h.free_port()
    cfg = {"role": role, "server": "127.0.0.1", "server_port": server_port,
           "local_address": "127.0.0.1", "local_port": lport, "password": PASSWORD,
           "method": method, "timeout": 30, "workers": 0}
    cfg.update(kw)
    h.reuseproxy(cfg)
    return lport


def start_ss_server(method):
    port = h.free_port()
    h.ss_libev("ss-server", ["-s", "127.0.0.1", "-p", str(port), "-k", PASSWORD, "-m", method,
                             "-t", "30"])
    h.wait_tcp("127.0.0.1", port)
    return port


def test_libev_tunnel_to_reuseproxy_server_every_method():
    echo = h.TcpEcho()
    for m in METHODS:
        sport = start_server(m)
        tport = h.free_port()
        h.ss_libev("ss-tunnel", ["-s", "127.0.0.1", "-p", str(sport), "-l", str(tport),
                                 "-k", PASSWORD, "-m", m, "-L", "127.0.0.1:%d" % echo.port])
        h.wait_tcp("127.0.0.1", tport)
        check_sizes(plain(tport), "ss-tunnel -> reuseproxy server (%s)" % m)
    echo.stop()


def test_reuseproxy_tunnel_to_libev_server_every_method():
    echo = h.TcpEcho()
    for m in METHODS:
        sport = start_ss_server(m)
        tport = start_rp_local("tunnel", m, sport, tunnel_address="127.0.0.1:%d" % echo.port)
        check_sizes(plain(tport), "reuseproxy tunnel -> ss-server (%s)" % m)
    echo.stop()


def test_reuseproxy_socks5_to_libev_server_every_method():
    echo = h.TcpEcho()
    for m in METHODS:
        sport = start_ss_server(m)
        lport = start_rp_local("local", m, sport)
        check_sizes(lambda: h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port),
                    "reuseproxy SOCKS5 -> ss-server (%s)" % m)
    echo.stop()


def test_reuseproxy_to_reuseproxy_every_method():
    echo = h.TcpEcho()
    for m in METHODS:
        sport = start_server(m)
        lport = start_rp_local("local", m, sport)
        check_sizes(lambda: h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port),
                    "reuseproxy SOCKS5 -> reuseproxy server (%s)" % m)
    echo.stop()


def test_key_instead_of_password_interoperates():
    # libev derives the same master key from a password; "key" gives it directly in base64.
    import base64
    key = hashlib.md5(PASSWORD.encode()).digest()
    key += hashlib.md5(key + PASSWORD.encode()).digest()
    echo = h.TcpEcho()
    sport = start_ss_server("aes-256-gcm")
    tport = h.free_port()
    cfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": sport,
           "local_address": "127.0.0.1", "local_port": tport, "method": "aes-256-gcm",
           "key": base64.b64encode(key[:32]).decode(), "workers": 0,
           "tunnel_address": "127.0.0.1:%d" % echo.port}
    h.reuseproxy(cfg)
    data = h.pattern(100000)
    assert roundtrip(plain(tport), data) == data
    echo.stop()


def test_socks5_targets_ipv4_ipv6_and_domain():
    echo4 = h.TcpEcho("127.0.0.1")
    echo6 = h.TcpEcho("::1")
    sport = start_server("chacha20-ietf-poly1305")
    lport = start_rp_local("local", "chacha20-ietf-poly1305", sport)
    data = h.pattern(70000)
    for target, port in (("127.0.0.1", echo4.port), ("::1", echo6.port),
                         ("localhost", echo4.port)):
        got = roundtrip(lambda: h.socks5_connect("127.0.0.1", lport, target, port), data)
        assert got == data, "SOCKS5 target %s: %d of %d bytes" % (target, len(got), len(data))
    echo4.stop()
    echo6.stop()


def test_half_close_reply_after_eof_arrives_whole():
    src = h.TcpEcho(mode="source:%d" % (3 << 20))
    sport = start_server("aes-128-gcm")
    tport = start_rp_local("tunnel", "aes-128-gcm", sport,
                           tunnel_address="127.0.0.1:%d" % src.port)
    s = socket.create_connection(("127.0.0.1", tport), timeout=30)
    s.sendall(h.pattern(1 << 20, seed=7))
    s.shutdown(socket.SHUT_WR)
    got = h.recv_all(s)  # ends only at EOF
    s.close()
    assert got == h.pattern(3 << 20), "reply after EOF: %d of %d bytes" % (len(got), 3 << 20)
    src.stop()


def test_half_close_sink_sees_every_byte_then_answers():
    sink = h.TcpEcho(mode="sink")
    sport = start_server("aes-256-gcm")
    lport = start_rp_local("local", "aes-256-gcm", sport)
    data = h.pattern(5 << 20, seed=3)
    got = h.transfer(None, None, data,
                     connect=lambda: h.socks5_connect("127.0.0.1", lport, "127.0.0.1", sink.port))
    assert got.decode() == hashlib.sha256(data).hexdigest()
    sink.stop()


def test_200_concurrent_connections_all_intact():
    echo = h.TcpEcho()
    sport = start_server("aes-128-gcm")
    tport = start_rp_local("tunnel", "aes-128-gcm", sport,
                           tunnel_address="127.0.0.1:%d" % echo.port)
    # starting the tunnel probed its port once, which opened one upstream connection
    h.wait_for(lambda: echo.connections >= 1, 3)
    before = echo.connections
    socks = []
    for i in range(200):
        socks.append(socket.create_connection(("127.0.0.1", tport), timeout=30))
    errors = []

    def one(i, s):
        try:
            data = h.pattern(1000 + 997 * i, seed=i)
            s.sendall(data)
            got = bytearray()
            while len(got) < len(data):
                d = s.recv(65536)
                if not d:
                    break
                got.extend(d)
            if bytes(got) != data:
                errors.append(i)
        except OSError as e:
            errors.append((i, e))
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, "connections that failed: %r" % errors[:10]
    assert echo.connections - before == 200, "upstream saw %d connections" % (
        echo.connections - before)
    echo.stop()


# ---- silence towards bad input ----

def silent_connections(port, payloads, wait):
    """Sends each payload on its own connection; after `wait` seconds every connection must
    still be open and must have received nothing. Returns the sockets (still open)."""
    socks = []
    for p in payloads:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if p:
            s.sendall(p)
        socks.append(s)
    time.sleep(wait)
    for i, s in enumerate(socks):
        s.setblocking(False)
        try:
            d = s.recv(1)
        except BlockingIOError:
            continue
        raise AssertionError("payload %d (%d bytes): got %r instead of silence" %
                             (i, len(payloads[i]), d))
    return socks


def test_probes_meet_silence_random_truncated_flipped_replayed():
    m = "aes-256-gcm"
    echo = h.TcpEcho()
    sport = start_server(m, timeout=4)
    recorded = h.record_first_packet(PASSWORD, m, echo.port, b"hello, recorded world", timeout=30)
    assert len(recorded) > 32 + 34, "recorded only %d bytes" % len(recorded)
    # the recorded packet is valid: the first time it reaches the echo
    s = socket.create_connection(("127.0.0.1", sport), timeout=5)
    s.sendall(recorded)
    assert h.wait_for(lambda: echo.connections == 1, 5), "the valid packet did not connect"
    s.close()
    rnd = random.Random(1)
    payloads = [bytes(rnd.getrandbits(8) for _ in range(n)) for n in range(0, 301)]
    payloads += [recorded[:n] for n in (1, 31, 32, 33, 50, 66, len(recorded) - 1)]
    for pos in (0, 20, 32, 33, 50, 60, len(recorded) - 1):
        b = bytearray(recorded)
        b[pos] ^= 0x40
        payloads.append(bytes(b))
    payloads += [recorded] * 3  # replays
    t0 = time.monotonic()
    socks = silent_connections(sport, payloads, wait=2.0)
    assert echo.connections == 1, "bad input reached upstream: %d connections" % echo.connections
    # ... and all of them are closed by the server at the timeout, not before
    for s in socks:
        s.setblocking(True)
        s.settimeout(10)
    closed = 0
    for s in socks:
        try:
            while s.recv(4096):
                raise AssertionError("data after silence")
            closed += 1
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    elapsed = time.monotonic() - t0
    assert closed == len(socks), "%d of %d closed with FIN" % (closed, len(socks))
    assert elapsed >= 3.0, "closed after %.1fs, before the 4s timeout" % elapsed
    echo.stop()


def test_block_private_refuses_loopback_target_silently():
    echo = h.TcpEcho()
    port = h.free_port()
    h.reuseproxy(h.server_config(port, method="aes-128-gcm", password=PASSWORD,
                                 block_private=True, timeout=3))
    tport = start_rp_local("tunnel", "aes-128-gcm", port,
                           tunnel_address="127.0.0.1:%d" % echo.port)
    s = socket.create_connection(("127.0.0.1", tport), timeout=5)
    s.sendall(b"x" * 100)
    time.sleep(1.0)
    s.setblocking(False)
    try:
        d = s.recv(1)
        assert d == b"", "got data from a blocked target"
    except BlockingIOError:
        pass
    assert echo.connections == 0, "the server connected to its own loopback"
    s.close()
    echo.stop()
