"""test_replay_upgrade.py: replay protection survives a binary upgrade (issue 13 item 6). The
old master hands its replay store (a memfd) to the new one with the listening sockets, so a first
flight recorded before SIGUSR2 meets silence after it, like any probe."""
import socket

import harness as h
from test_process import PW, M, start_master, stop_master, upgrade


def sent_first_flight_answered(port, packet, echo, before):
    """Sends packet on a fresh connection: True if it reached the echo target (a new connection
    there), False if the server stayed silent and never connected out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(packet)
    reached = h.wait_for(lambda: echo.connections > before, 1.5)
    s.settimeout(0.5)
    try:
        got = s.recv(4096)
    except socket.timeout:
        got = None
    s.close()
    assert reached or not got, "a refused first flight was answered: %r" % got
    return reached


def test_replay_refused_after_binary_upgrade():
    echo = h.TcpEcho()
    p = start_master(2, timeout=3)
    packet = h.record_first_packet(PW, M, echo.port, b"recorded before the upgrade")
    fresh = h.record_first_packet(PW, M, echo.port, b"recorded, first sent after", name="tunnel2")
    assert sent_first_flight_answered(p.port, packet, echo, 0), "the genuine flight failed"
    pid = upgrade(p)
    try:
        assert p.wait(15) == 0, "old master did not hand over: %s" % p.output()[-1000:]
        h.wait_for(lambda: len(h.children_of(pid)) == 2, 5)
        assert "replay store" not in p.output(), "store not handed over: %s" % p.output()[-800:]
        # The new master refuses what the old one saw, and still accepts what it did not.
        assert not sent_first_flight_answered(p.port, packet, echo, 1), \
            "a first flight recorded before the upgrade was accepted again after it"
        assert sent_first_flight_answered(p.port, fresh, echo, 1), "a new flight was refused"
        assert echo.connections == 2, "upstream saw %d connections" % echo.connections
    finally:
        stop_master(pid)
    echo.stop()
