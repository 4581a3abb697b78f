"""test_udp_assoc.py: UDP associations against attack and under limits (issue 13, items 2, 3
and 16):
  - SOCKS5 UDP ASSOCIATE works whichever worker holds the control connection: each gets a UDP
    socket of its own, named in the reply (RFC 1928 section 6);
  - a server's reply captured on the way and sent back to the server by a stranger is refused
    in silence (the server remembers its own reply salts), and a client takes replies only from
    its server's address;
  - a control connection whose association moves no datagram for udp_timeout is closed;
  - associations leave descriptors for TCP when nofile is low.
The tap in the reflection tests is a UDP man-in-the-middle of ours standing in for the server's
address, so the test sees every sealed packet.
"""
import shutil
import socket
import time

import harness
from harness import free_port, reuseproxy, wait_for, wait_tcp
import test_udp as u


def socks5_roundtrip(sock, relay, echo_port, data, attempts=3, timeout=2.0):
    """Sends data through a SOCKS5 UDP relay to the echo; True when it came back intact."""
    head = u.socks5_udp_header("127.0.0.1", echo_port)
    for _ in range(attempts):
        answer = u.exchange(sock, relay, head + data, timeout=timeout)
        if answer is not None:
            return u.socks5_udp_parse(answer) == ("127.0.0.1", echo_port, data)
    return False


def test_udp_socks5_associate_works_with_two_workers():
    """A 2-worker local: 20 UDP ASSOCIATEs, one at a time (each control connection closed
    before the next opens, as one application would), 3 datagrams each, every one echoed.
    Before, the kernel hashed the datagrams of about half of them to the worker without the
    control connection, which dropped them. Each reply names a port of its own on 127.0.0.1."""
    echo = harness.UdpEcho()
    try:
        _, sport = u.ss_server()
        cfg = u.client_config("local", sport, workers=2)
        p = reuseproxy(cfg)
        assert wait_for(lambda: len(harness.children_of(p.pid)) == 2, 5.0), "no 2 workers"
        failed, relays = [], set()
        for i in range(20):
            ctl, relay = u.socks5_udp_associate("127.0.0.1", cfg["local_port"])
            assert relay[0] == "127.0.0.1" and relay[1] != 0, "bound address %r" % (relay,)
            relays.add(relay)
            s = u.udp_socket()
            for k in range(3):
                if not socks5_roundtrip(s, relay, echo.port, b"assoc %d datagram %d" % (i, k),
                                        attempts=2, timeout=1.5):
                    failed.append(i)
                    break
            ctl.close()
            s.close()
            time.sleep(0.05)  # the worker sees the close before the next one opens
        assert not failed, "%d of 20 associations not served: %r" % (len(failed), failed)
        assert len(relays) >= 2, "every association named the same relay address %r" % relays
    finally:
        echo.stop()


def test_udp_socks5_associate_socket_serves_its_client_ip_only():
    """The association's own socket drops datagrams from another IP than the control
    connection's (RFC 1928 section 6), and goes when the control connection closes."""
    echo = harness.UdpEcho()
    try:
        _, sport = u.ss_server()
        cfg = u.client_config("local", sport)
        p = reuseproxy(cfg)
        ctl, relay = u.socks5_udp_associate("127.0.0.1", cfg["local_port"])
        other = u.udp_socket("127.0.0.2")
        head = u.socks5_udp_header("127.0.0.1", echo.port)
        assert u.exchange(other, relay, head + b"from elsewhere") is None, \
            "served a datagram from another IP"
        s = u.udp_socket()
        assert socks5_roundtrip(s, relay, echo.port, b"from the client")
        ctl.close()
        assert wait_for(lambda: relay[1] not in u.udp_ports_of(p.pid), 3.0), \
            "the association's socket outlived its control connection"
        assert echo.received == 1
        other.close()
        s.close()
    finally:
        echo.stop()


def connection_closed(sock, timeout):
    """True when the peer closes sock within timeout seconds (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_udp_socks5_idle_control_connection_closes_after_udp_timeout():
    """udp_timeout 3: a control connection whose association goes quiet, and one that never
    sends, are closed; one whose client keeps sending (every 0.3 s) stays open."""
    echo = harness.UdpEcho()
    try:
        _, sport = u.ss_server()
        cfg = u.client_config("local", sport, udp_timeout=3)
        reuseproxy(cfg)
        quiet, quiet_relay = u.socks5_udp_associate("127.0.0.1", cfg["local_port"])
        never, _ = u.socks5_udp_associate("127.0.0.1", cfg["local_port"])
        busy, busy_relay = u.socks5_udp_associate("127.0.0.1", cfg["local_port"])
        qs, bs = u.udp_socket(), u.udp_socket()
        assert socks5_roundtrip(qs, quiet_relay, echo.port, b"once")
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < 5.0:
            assert socks5_roundtrip(bs, busy_relay, echo.port, b"busy %d" % k), "busy flow lost"
            k += 1
            time.sleep(0.3)
        assert connection_closed(quiet, 8.0), "an idle control connection stayed open"
        assert connection_closed(never, 3.0), "a control connection that never sent stayed open"
        assert not connection_closed(busy, 0.2), "a busy control connection was closed"
        assert socks5_roundtrip(bs, busy_relay, echo.port, b"still served")
        for x in (quiet, never, busy, qs, bs):
            x.close()
    finally:
        echo.stop()


class Tap:
    """A UDP man-in-the-middle standing in for the server: a client sends to .port; each
    datagram goes on to the server from .up, and each server reply comes back through it.
    Nothing moves by itself: the test calls forward_request / forward_reply."""

    def __init__(self, server_port):
        self.front = u.udp_socket()
        self.up = u.udp_socket()
        self.port = self.front.getsockname()[1]
        self.server = ("127.0.0.1", server_port)
        self.client = None

    def forward_request(self, timeout=3.0):
        self.front.settimeout(timeout)
        data, self.client = self.front.recvfrom(65536)
        self.up.sendto(data, self.server)
        return data

    def take_reply(self, timeout=3.0):
        """The server's reply, recorded and not passed on."""
        self.up.settimeout(timeout)
        return self.up.recv(65536)

    def close(self):
        self.front.close()
        self.up.close()


def tapped_tunnel(echo):
    """reuseproxy server, a tap in front of it, and a reuseproxy tunnel to the echo through
    the tap. Returns (tap, server address, app socket, tunnel address)."""
    _, sport = u.udp_server(workers=1, udp_timeout=60)
    tap = Tap(sport)
    cfg = u.client_config("tunnel", tap.port, tunnel_address="127.0.0.1:%d" % echo.port)
    reuseproxy(cfg)
    app = u.udp_socket()
    return tap, ("127.0.0.1", sport), app, ("127.0.0.1", cfg["local_port"])


def test_udp_server_refuses_its_own_reply_sent_back():
    """A reply the tap recorded, sent to the server by a stranger: nothing reaches the target
    and nothing answers (before, the server opened its own reply as a request, relayed it and
    answered the stranger, which identified it as a shadowsocks server)."""
    echo = harness.UdpEcho()
    try:
        tap, server, app, tunnel = tapped_tunnel(echo)
        app.sendto(b"hello", tunnel)
        tap.forward_request()
        reply = tap.take_reply()
        tap.front.sendto(reply, tap.client)
        app.settimeout(3.0)
        assert app.recv(65536) == b"hello", "the tapped path does not work"
        assert echo.received == 1
        stranger = u.udp_socket()
        for _ in range(3):
            stranger.sendto(reply, server)
        assert u.silent(stranger, 1.0), "the server answered its own reflected reply"
        time.sleep(0.2)
        assert echo.received == 1, "the reflected reply was relayed to the target"
        stranger.close()
        app.close()
        tap.close()
    finally:
        echo.stop()


def test_udp_client_takes_replies_only_from_its_server():
    """A reply the tap held back, sent to the tunnel's outbound socket by a stranger, never
    reaches the app; the same reply from the server's address does."""
    echo = harness.UdpEcho()
    try:
        tap, _, app, tunnel = tapped_tunnel(echo)
        app.sendto(b"hello", tunnel)
        tap.forward_request()
        reply = tap.take_reply()
        stranger = u.udp_socket()
        stranger.sendto(reply, tap.client)
        assert u.silent(app, 1.0), "the tunnel took a reply from another address than its server's"
        tap.front.sendto(reply, tap.client)
        app.settimeout(3.0)
        assert app.recv(65536) == b"hello", "the genuine reply from the server was not taken"
        stranger.close()
        app.close()
        tap.close()
    finally:
        echo.stop()


def limited_reuseproxy(cfg, nofile):
    """reuseproxy under prlimit --nofile=N:N (prlimit execs it: the PID is reuseproxy's)."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        raise harness.Skip("no prlimit (util-linux)")
    path = harness.write_config(cfg)
    p = harness.Proc([prlimit, "--nofile=%d:%d" % (nofile, nofile), harness.BINARY, "-c", path],
                     "reuseproxy")
    try:
        wait_tcp("127.0.0.1", cfg["server_port"])
    except AssertionError:
        raise AssertionError("reuseproxy did not start: %s" % p.output()[-2000:])
    return p


def test_udp_associations_leave_descriptors_for_tcp():
    """nofile 64 and the default udp_max_associations: 60 UDP flows, then 8 TCP connections at
    once through the same server all echo (before, the associations took every descriptor and
    TCP accepts failed with EMFILE); the lowered cap is said at start."""
    uecho, techo = harness.UdpEcho(), harness.TcpEcho()
    try:
        sport = free_port()
        cfg = harness.server_config(sport, method=u.METHOD, password=u.PASSWORD,
                                    mode="tcp_and_udp", udp_timeout=60)
        p = limited_reuseproxy(cfg, 64)
        assert wait_for(lambda: "at most" in p.output() and "nofile 64" in p.output(), 3.0), \
            "the lowered association cap was not logged: %s" % p.output()[-1000:]
        ucfg = u.client_config("tunnel", sport, tunnel_address="127.0.0.1:%d" % uecho.port,
                               mode="udp_only")
        reuseproxy(ucfg)
        dest = ("127.0.0.1", ucfg["local_port"])
        flows = [u.udp_socket() for _ in range(60)]
        for i, s in enumerate(flows):
            u.exchange(s, dest, u.tagged(i, 0), timeout=1.0)
        tcfg = u.client_config("tunnel", sport, tunnel_address="127.0.0.1:%d" % techo.port,
                               mode="tcp_only")
        reuseproxy(tcfg)
        conns = [socket.create_connection(("127.0.0.1", tcfg["local_port"]), timeout=5)
                 for _ in range(8)]
        for i, c in enumerate(conns):
            c.sendall(b"tcp %d" % i)
        for i, c in enumerate(conns):
            c.settimeout(5.0)
            try:
                got = harness.recv_exact(c, len(b"tcp %d" % i))
            except (socket.timeout, AssertionError, OSError) as e:
                raise AssertionError("TCP connection %d got no echo: %r" % (i, e))
            assert got == b"tcp %d" % i
        assert p.alive()
        for x in flows + conns:
            x.close()
    finally:
        uecho.stop()
        techo.stop()
