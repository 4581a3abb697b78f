"""test_relay_limits.py: how a relay ends and what it may hold (issues 13 and 20).

  a reset is not a clean end    a side that resets, or a chunk that fails to open mid-stream,
                                reaches the other side as a reset; a clean EOF stays a FIN
  failed connects are told      a target that refuses, a name that does not resolve, a dead
                                server, a target the policy refuses: logged with the target and
                                the reason (and the key that refused), the client closed at
                                once, the SOCKS5 client given the reply code
Every test runs reuseproxy at both ends (tunnel or SOCKS5 client, and server) on loopback, with
free ports and bounded waits.
"""
import socket
import struct
import threading
import time

import harness as h

M = "aes-128-gcm"
PW = "relay-limits-secret"


# ---- helpers ------------------------------------------------------------------------------------

def start_quietly(cfg, port, name):
    """Starts reuseproxy and waits for its port to listen without connecting to it."""
    p = h.reuseproxy(cfg, name=name, wait=False)
    if not h.wait_for(lambda: h.listening(port), 10, 0.02):
        raise AssertionError("%s did not start: %s" % (name, p.output()[-2000:]))
    time.sleep(0.1)
    return p


def start_server(**kw):
    port = h.free_port()
    cfg = h.server_config(port, method=M, password=PW)
    cfg.update(kw)
    return start_quietly(cfg, port, "server"), port


def start_client(role, server_port, **kw):
    port = h.free_port()
    cfg = {"role": role, "server": "127.0.0.1", "server_port": server_port, "password": PW,
           "method": M, "local_address": "127.0.0.1", "local_port": port, "timeout": 30,
           "workers": 0}
    cfg.update(kw)
    return start_quietly(cfg, port, role), port


def start_tunnel(server_port, target, **kw):
    return start_client("tunnel", server_port, tunnel_address="%s:%d" % target, **kw)


def reset_close(s):
    """Closes s with a RST (SO_LINGER on, timeout 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def outcome(s, timeout):
    """Reads s until its peer ends it: "eof" (FIN), "reset" (RST) or "open" after timeout.
    Returns (how, bytes read)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return "eof", data
            data += d
    except ConnectionResetError:
        return "reset", data
    except socket.timeout:
        return "open", data


class Target:
    """A listener that accepts one connection at a time and keeps it for the test."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]

    def accept(self):
        c, _ = self.sock.accept()
        c.settimeout(10)
        return c

    def close(self):
        self.sock.close()


class Tap:
    """A TCP forwarder between a tunnel and its server: passes bytes both ways and, once
    corrupt() is called, flips one bit of the next bytes the tunnel sends (a chunk damaged in
    flight, after the first flight went through whole)."""

    def __init__(self, server_port):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.server_port = server_port
        self.flip = threading.Event()
        self.up_bytes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def corrupt(self):
        self.flip.set()

    def _serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        u = socket.create_connection(("127.0.0.1", self.server_port), timeout=10)
        threading.Thread(target=self._copy, args=(u, c, False), daemon=True).start()
        self._copy(c, u, True)

    def _copy(self, src, dst, upward):
        src.settimeout(30)
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if upward:
                    if self.flip.is_set():
                        b = bytearray(d)
                        b[len(b) // 2] ^= 0x10
                        d = bytes(b)
                        self.flip.clear()
                    self.up_bytes += len(d)
                dst.sendall(d)
        except OSError:
            for s in (src, dst):
                try:
                    reset_close(s)
                except OSError:
                    pass


# ---- a reset is not a clean end (issue 20 item 6) -----------------------------------------------

def test_client_reset_reaches_the_target_as_a_reset():
    """The client resets its connection to the tunnel mid-upload: the tunnel resets its
    connection to the server, which resets the target's (ECONNRESET there, not a FIN that
    would make the truncated upload look complete)."""
    target = Target()
    try:
        server, sport = start_server()
        tunnel, tport = start_tunnel(sport, ("127.0.0.1", target.port))
        c = socket.create_connection(("127.0.0.1", tport), timeout=10)
        c.sendall(b"a" * 1000)
        t = target.accept()
        assert h.recv_exact(t, 1000) == b"a" * 1000, "the upload's start did not arrive"
        reset_close(c)
        how, data = outcome(t, 10)
        t.close()
        assert how == "reset", "the target saw %s after the client's reset (%d more bytes)" % (
            how, len(data))
    finally:
        target.close()


def test_target_reset_reaches_the_client_as_a_reset():
    """The target resets mid-download: the server resets its connection to the tunnel, which
    resets the client's."""
    target = Target()
    try:
        server, sport = start_server()
        tunnel, tport = start_tunnel(sport, ("127.0.0.1", target.port))
        c = socket.create_connection(("127.0.0.1", tport), timeout=10)
        c.sendall(b"go")
        t = target.accept()
        assert h.recv_exact(t, 2) == b"go"
        t.sendall(b"b" * 1000)
        assert h.recv_exact(c, 1000) == b"b" * 1000, "the download's start did not arrive"
        reset_close(t)
        how, data = outcome(c, 10)
        c.close()
        assert how == "reset", "the client saw %s after the target's reset (%d more bytes)" % (
            how, len(data))
    finally:
        target.close()


def test_clean_eof_stays_a_fin_both_ways():
    """A clean end is passed on as a FIN, in each direction on its own (half-close)."""
    target = Target()
    try:
        server, sport = start_server()
        tunnel, tport = start_tunnel(sport, ("127.0.0.1", target.port))
        c = socket.create_connection(("127.0.0.1", tport), timeout=10)
        c.sendall(b"up")
        c.shutdown(socket.SHUT_WR)
        t = target.accept()
        how, data = outcome(t, 10)
        assert (how, data) == ("eof", b"up"), "the target saw %s, %r" % (how, data)
        t.sendall(b"down")
        t.close()
        how, data = outcome(c, 10)
        c.close()
        assert (how, data) == ("eof", b"down"), "the client saw %s, %r" % (how, data)
    finally:
        target.close()


def test_corrupted_chunk_mid_stream_reaches_the_target_as_a_reset():
    """A chunk damaged in flight after the first flight went through fails to open on the
    server: the target gets a reset, not the FIN of a complete upload."""
    target = Target()
    try:
        server, sport = start_server()
        tap = Tap(sport)
        tunnel, tport = start_tunnel(tap.port, ("127.0.0.1", target.port))
        c = socket.create_connection(("127.0.0.1", tport), timeout=10)
        c.sendall(b"c" * 1000)
        t = target.accept()
        assert h.recv_exact(t, 1000) == b"c" * 1000, "the first flight did not arrive"
        tap.corrupt()
        c.sendall(b"d" * 1000)
        how, data = outcome(t, 10)
        t.close()
        c.close()
        assert not data, "%d bytes of a damaged chunk reached the target" % len(data)
        assert how == "reset", "the target saw %s after a chunk failed to open" % how
    finally:
        target.close()


# ---- failed connects are told (issue 13 item 10) ------------------------------------------------

def socks5_request(lport, host, port, timeout=10):
    """Greeting and CONNECT through the SOCKS5 proxy at lport; returns (socket, reply code) once
    the reply arrived, or (socket, None) when the proxy closed without one."""
    import ipaddress
    s = socket.create_connection(("127.0.0.1", lport), timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    assert h.recv_exact(s, 2) == b"\x05\x00", "SOCKS5 method selection refused"
    try:
        addr = b"\x01" + ipaddress.ip_address(host).packed
    except ValueError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    s.sendall(b"\x05\x01\x00" + addr + port.to_bytes(2, "big"))
    rep = b""
    try:
        while len(rep) < 10:
            d = s.recv(10 - len(rep))
            if not d:
                break
            rep += d
    except (socket.timeout, ConnectionResetError):
        pass
    return s, (rep[1] if len(rep) >= 2 else None)


def closed_promptly(s, what, within=2.5):
    """The proxy closes s (FIN, nothing more to read) within `within` seconds."""
    t0 = time.monotonic()
    how, data = outcome(s, 10)
    took = time.monotonic() - t0
    s.close()
    assert how == "eof", "%s: the client saw %s, not a close" % (what, how)
    assert took <= within, "%s: closed after %.1f s, not at once" % (what, took)
    return data


def log_has(proc, *words, timeout=3.0):
    return h.wait_for(lambda: all(w in proc.output() for w in words), timeout, 0.05)


def test_target_refuses_logged_with_target_and_reason_client_closed_at_once():
    """Server role, nothing listens on the target port: the SOCKS5 client (through a local) is
    closed at once, not after the 30 s timeout, and the server logs the target and the reason
    at the default verbosity."""
    closed_port = h.free_port()
    server, sport = start_server(timeout=30)
    local, lport = start_client("local", sport)
    s, rep = socks5_request(lport, "127.0.0.1", closed_port)
    assert rep == 0, "the local could reach its server, yet answered %r" % rep
    closed_promptly(s, "target refuses")
    assert log_has(server, "127.0.0.1:%d" % closed_port, "Connection refused"), \
        "the server did not log the refused target: %s" % server.output()[-1500:]


def test_unknown_host_logged_client_closed_at_once():
    """Server role, a name the resolver says does not exist: closed at once, and logged with
    the name and the reason."""
    dns = h.FakeDns({})
    try:
        server, sport = start_server(timeout=30, nameserver="127.0.0.1:%d" % dns.port)
        local, lport = start_client("local", sport)
        s, rep = socks5_request(lport, "no-such-host.test", 80)
        closed_promptly(s, "unknown host")
        assert log_has(server, "no-such-host.test:80", "did not resolve"), \
            "the server did not log the unknown host: %s" % server.output()[-1500:]
    finally:
        dns.stop()


def test_block_private_refusal_names_the_key_client_closed_at_once():
    """The first test a newcomer runs (curl through SOCKS5 to a service on 127.0.0.1) against a
    server with the default block_private: the client is closed at once rather than after the
    timeout, and the server's log says block_private refused it and how to allow it."""
    target = Target()
    try:
        server, sport = start_server(timeout=30, block_private=True)
        local, lport = start_client("local", sport)
        s, rep = socks5_request(lport, "127.0.0.1", target.port)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        closed_promptly(s, "refused by block_private")
        assert log_has(server, "127.0.0.1:%d" % target.port, "block_private",
                       '"block_private": false'), \
            "the refusal does not name block_private: %s" % server.output()[-1500:]
    finally:
        target.close()


def test_dead_server_socks5_client_gets_connection_refused_reply():
    """Local role whose server is down: the CONNECT is answered with reply 5 (connection
    refused, RFC 1928 section 6) instead of a success followed by an empty stream, the client
    is closed, and the local logs the server and the reason."""
    dead = h.free_port()
    local, lport = start_client("local", dead)
    t0 = time.monotonic()
    s, rep = socks5_request(lport, "192.0.2.1", 80)
    assert rep == 5, "the SOCKS5 reply code is %r, not 5 (connection refused)" % rep
    closed_promptly(s, "dead server", within=max(0.5, 2.5 - (time.monotonic() - t0)))
    assert log_has(local, "server 127.0.0.1:%d" % dead, "Connection refused"), \
        "the local did not log its dead server: %s" % local.output()[-1500:]
