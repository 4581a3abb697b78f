"""test_udp_assoc.py: UDP associations (issue 13, item 2):
  - SOCKS5 UDP ASSOCIATE works whichever worker holds the control connection: each gets a UDP
    socket of its own, named in the reply (RFC 1928 section 6).
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
