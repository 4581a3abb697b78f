"""test_udp_assoc.py: UDP associations against attack (issue 13, items 2 and 3):
  - SOCKS5 UDP ASSOCIATE works whichever worker holds the control connection: each gets a UDP
    socket of its own, named in the reply (RFC 1928 section 6);
  - a server's reply captured on the way and sent back to the server by a stranger is refused
    in silence (the server remembers its own reply salts), and a client takes replies only from
    its server's address.
The tap in the reflection tests is a UDP man-in-the-middle of ours standing in for the server's
address, so the test sees every sealed packet.
"""
import time

import harness
from harness import reuseproxy, wait_for
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
