"""test_live.py: users changed on SIGHUP without replacing the workers (issue 15).

A reload that changes only the users of a server's port is applied live: each worker gets the
new user list over its control channel (control.h) and keeps its sockets, its PID and every
session of a user that did not change. A removed (or re-keyed) user's open sessions are closed
after drain_timeout, their new ones refused at once; an added user works at once. Any other
change still replaces the workers. SIP004 users (trial decryption) and SIP022 EIH users
(SIP023 identity headers) both, with reuseproxy's own tunnel as the client. Ports added and
removed are live too: the master hands the workers an added port's sockets, and a removed
port stops accepting while its open sessions drain (Debian's ss-tunnel as the client)."""
import json
import re
import os
import signal
import socket
import threading
import time

import urllib.request

import harness as h
import test_users as tu
from test_process import metrics, wait_workers
from test_sip022 import psk, refused, round_trip, rp_client, udp_exchange, udp_sock
from test_udp_assoc import connection_closed
from test_users import assert_clean, user_metrics

SIZE = 8 * 1024 * 1024
DRAIN = 2


def server_with(method, users, password=None, **kw):
    port = h.free_port()
    cfg = h.server_config(port, method=method, workers=2, verbose=1, drain_timeout=DRAIN,
                          metrics_address="127.0.0.1:%d" % h.free_port(), **kw)
    if password:
        cfg["password"] = password
    else:
        del cfg["password"]
    cfg["users"] = [{"name": n, "password": k} for n, k in users]
    p = h.reuseproxy(cfg, name="live-server")
    p.port = port
    p.mport = int(cfg["metrics_address"].rsplit(":", 1)[1])
    wait_workers(p, 2)
    return p


def rewrite(server, users=None, **changes):
    """Writes the server's configuration with users (name, password) and changes, SIGHUPs it
    and returns the log's length before, to look for what the reload said after it."""
    with open(server.cfg_path) as f:
        cfg = json.load(f)
    if users is not None:
        cfg["users"] = [{"name": n, "password": k} for n, k in users]
    cfg.update(changes)
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    mark = len(server.output())
    server.signal(signal.SIGHUP)
    return mark


def said(server, mark, text, timeout=20):
    return h.wait_for(lambda: text in server.output()[mark:], timeout)


class PacedTransfer(threading.Thread):
    """SIZE bytes through port, sent in pieces over about `seconds` (so the transfer spans a
    reload and the drain that follows it) and read back; .got holds what came back."""

    def __init__(self, port, seconds, seed=7):
        super().__init__(daemon=True)
        self.data = h.pattern(SIZE, seed)
        self.got = b""
        self.error = None
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.seconds = seconds

    def _send(self):
        piece = len(self.data) // 64
        try:
            for i in range(0, len(self.data), piece):
                self.s.sendall(self.data[i:i + piece])
                time.sleep(self.seconds / 64)
        except OSError as e:
            self.error = e

    def run(self):
        sender = threading.Thread(target=self._send, daemon=True)
        sender.start()
        try:
            self.got = h.recv_exact(self.s, len(self.data))
        except (OSError, AssertionError) as e:
            self.error = e
        sender.join(120)
        self.s.close()


def held_open(port, what=b"hello"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(what)
    assert h.recv_exact(s, len(what)) == what
    return s


def removal_keeps_the_others(method, users, password=None):
    """The scenario of both protocols: users[0] transfers 8 MiB across a SIGHUP that removes
    users[1], re-keys users[2] and adds a new user; the workers stay."""
    echo = h.TcpEcho()
    server = server_with(method, users, password)
    ident = (password + ":") if password else ""
    tunnels = [rp_client("tunnel", method, ident + k, server.port, echo.port) for _, k in users]
    pids = sorted(h.children_of(server.pid))
    for t in tunnels:
        round_trip(t.port, size=4096)
    stay = PacedTransfer(tunnels[0].port, seconds=DRAIN + 4)
    stay.start()
    gone = held_open(tunnels[1].port)
    rekeyed = held_open(tunnels[2].port)
    time.sleep(0.5)  # the transfer is under way on its worker
    newkey = psk(method) if password else "a-brand-new-password"
    added = ("dave", psk(method) if password else "dave-password")
    mark = rewrite(server, [users[0], (users[2][0], newkey), added])
    assert said(server, mark, "reload applied live to 2 workers"), server.output()[mark:][-1500:]
    assert sorted(h.children_of(server.pid)) == pids, "the reload replaced the workers"
    # at once: the added user works, the removed one and the old key start nothing
    round_trip(rp_client("tunnel", method, ident + added[1], server.port, echo.port).port,
               size=4096)
    round_trip(rp_client("tunnel", method, ident + newkey, server.port, echo.port).port,
               size=4096)
    assert refused(tunnels[1].port), "a removed user started a session"
    assert refused(tunnels[2].port), "the old key of a re-keyed user started a session"
    # the removed user's open session still runs until drain_timeout, then closes
    gone.sendall(b"still")
    assert h.recv_exact(gone, 5) == b"still"
    assert connection_closed(gone, DRAIN + 5), "a removed user's session outlived drain_timeout"
    assert connection_closed(rekeyed, 5), "a re-keyed user's session outlived drain_timeout"
    stay.join(180)
    assert not stay.is_alive(), "the transfer did not end"
    assert stay.error is None, "the kept user's transfer broke: %r" % stay.error
    assert stay.got == stay.data, "%d of %d bytes came back intact" % (len(stay.got), SIZE)
    assert sorted(h.children_of(server.pid)) == pids
    assert h.wait_for(lambda: ("reuseproxy_user_bytes_in_total", users[1][0])
                      not in user_metrics(server), 5), "the removed user's series remain"
    assert ("reuseproxy_user_bytes_in_total", "dave") in user_metrics(server)
    # a worker started later (after a crash) runs the current users from the start
    os.kill(pids[0], signal.SIGKILL)
    assert h.wait_for(lambda: len(h.children_of(server.pid)) == 2 and
                      pids[0] not in h.children_of(server.pid), 10), "no replacement"
    dave = rp_client("tunnel", method, ident + added[1], server.port, echo.port)
    for n in range(6):  # new connections land on both workers
        round_trip(dave.port, seed=n, size=4096)
        assert refused(tunnels[1].port), "a removed user started a session after a restart"
    assert_clean(server)


def test_live_sip004_user_removed_while_another_transfers():
    """SIP004 users: removing bob closes only bob's sessions, after drain_timeout; alice's
    8 MiB transfer across the reload arrives intact on the same workers; carol's new password
    works and her old one is refused; dave, added, works at once."""
    removal_keeps_the_others("aes-256-gcm", [("alice", "alice-password"),
                                              ("bob", "bob-password"),
                                              ("carol", "carol-password")])


def test_live_sip022_eih_user_removed_while_another_transfers():
    """The same with SIP022 users (SIP023 identity headers): the key set changes under the
    identity PSK, which stays."""
    method = "2022-blake3-aes-256-gcm"
    removal_keeps_the_others(method, [("alice", psk(method)), ("bob", psk(method)),
                                      ("carol", psk(method))], password=psk(method))


def test_live_other_changes_still_replace_the_workers():
    """A reload that changes anything but the users (here the timeout, with a user added too)
    replaces every worker as before; so does a reload that changes nothing."""
    echo = h.TcpEcho()
    server = server_with("aes-256-gcm", [("alice", "alice-password")])
    pids = sorted(h.children_of(server.pid))
    mark = rewrite(server, [("alice", "alice-password"), ("bob", "bob-password")], timeout=45)
    assert said(server, mark, '"timeout" changed; replacing the workers'), \
        server.output()[mark:][-1500:]
    assert said(server, mark, "reload complete"), server.output()[mark:][-1500:]
    assert h.wait_for(lambda: not set(h.children_of(server.pid)) & set(pids), 15), \
        "the old workers are still there"
    round_trip(rp_client("tunnel", "aes-256-gcm", "bob-password", server.port,
                         echo.port).port, size=4096)
    pids = sorted(h.children_of(server.pid))
    mark = rewrite(server)
    assert said(server, mark, "nothing changed; replacing the workers"), \
        server.output()[mark:][-1500:]
    assert said(server, mark, "reload complete"), server.output()[mark:][-1500:]
    assert_clean(server)


def test_live_acl_file_rewritten_replaces_the_workers():
    """With "acl", a users-only reload is live while the file stays as it was, and replaces the
    workers (which read the rules at start) when the file was rewritten since."""
    acl = os.path.join(h.TMPDIR, "live.acl")
    with open(acl, "w") as f:
        f.write("[accept_all]\n[black_list]\n192.0.2.1\n")
    server = server_with("aes-256-gcm", [("alice", "alice-password")], acl=acl)
    pids = sorted(h.children_of(server.pid))
    mark = rewrite(server, [("alice", "alice-password"), ("bob", "bob-password")])
    assert said(server, mark, "reload applied live to 2 workers"), server.output()[mark:][-1500:]
    assert sorted(h.children_of(server.pid)) == pids
    time.sleep(0.05)  # a new modification time even on a coarse clock
    with open(acl, "w") as f:
        f.write("[accept_all]\n[black_list]\n192.0.2.2\n")
    mark = rewrite(server, [("bob", "bob-password")])
    assert said(server, mark, 'the "acl" file changed; replacing the workers'), \
        server.output()[mark:][-1500:]
    assert said(server, mark, "reload complete"), server.output()[mark:][-1500:]
    assert_clean(server)


def test_live_sip022_removed_user_udp_association_closes_after_drain():
    """SIP022 users over UDP: after a live reload that removes bob, bob's datagrams find no user
    at once and his association is closed after drain_timeout (not at udp_timeout); alice's
    association goes on answering."""
    method = "2022-blake3-aes-256-gcm"
    echo = h.UdpEcho()
    ipsk, alice, bob = psk(method), psk(method), psk(method)
    server = server_with(method, [("alice", alice), ("bob", bob)], password=ipsk,
                         mode="tcp_and_udp")
    tunnels = [rp_client("tunnel", method, "%s:%s" % (ipsk, k), server.port, echo.port,
                         mode="tcp_and_udp") for k in (alice, bob)]
    socks = [udp_sock(), udp_sock()]

    def answered(n, data=b"ping"):
        return udp_exchange(socks[n], ("127.0.0.1", tunnels[n].port), data) == data

    def associations():
        return sum(metrics(server).get("reuseproxy_udp_associations", {}).values())

    assert answered(0) and answered(1), "no UDP answer before the reload"
    assert h.wait_for(lambda: associations() == 2, 5), metrics(server)
    pids = sorted(h.children_of(server.pid))
    mark = rewrite(server, [("alice", alice)])
    assert said(server, mark, "reload applied live to 2 workers"), server.output()[mark:][-1500:]
    assert not answered(1), "a removed user's datagram was answered"
    assert answered(0), "the kept user's association stopped answering"
    deadline = time.time() + DRAIN + 6
    while time.time() < deadline and associations() > 1:
        assert answered(0), "the kept user's association stopped answering"
        time.sleep(0.5)
    assert associations() == 1, "the removed user's association outlived drain_timeout"
    assert answered(0)
    assert sorted(h.children_of(server.pid)) == pids
    assert_clean(server)


def test_live_users_of_several_ports():
    """A "servers" list of two SIP004 ports with users: a reload that removes bob from the
    second port and adds carol to the first is applied live; carol works on her port only,
    bob is refused, and alice's connection on the first port goes on past drain_timeout."""
    m = "aes-256-gcm"
    echo = h.TcpEcho()
    pa, pb = h.free_port(), h.free_port()

    def entry(port, users):
        return {"server": "127.0.0.1", "server_port": port, "method": m,
                "users": [{"name": n, "password": k} for n, k in users]}

    cfg = {"servers": [entry(pa, [("alice", "alice-pw")]), entry(pb, [("bob", "bob-pw"),
                                                                       ("dora", "dora-pw")])],
           "workers": 2, "verbose": 1, "drain_timeout": DRAIN, "block_private": False,
           "timeout": 30}
    server = h.reuseproxy(cfg, name="live-ports", wait=False)
    h.wait_tcp("127.0.0.1", pa)
    h.wait_tcp("127.0.0.1", pb)
    wait_workers(server, 2)
    pids = sorted(h.children_of(server.pid))
    alice = rp_client("tunnel", m, "alice-pw", pa, echo.port)
    bob = rp_client("tunnel", m, "bob-pw", pb, echo.port)
    round_trip(bob.port, size=4096)
    held = held_open(alice.port)
    cfg["servers"] = [entry(pa, [("alice", "alice-pw"), ("carol", "carol-pw")]),
                      entry(pb, [("dora", "dora-pw")])]
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    mark = len(server.output())
    server.signal(signal.SIGHUP)
    assert said(server, mark, "reload applied live to 2 workers"), server.output()[mark:][-1500:]
    assert refused(bob.port), "a removed user started a session"
    round_trip(rp_client("tunnel", m, "carol-pw", pa, echo.port).port, size=4096)
    assert refused(rp_client("tunnel", m, "carol-pw", pb, echo.port).port), \
        "a user of one port was served on another"
    time.sleep(DRAIN + 1.5)
    held.sendall(b"after")
    assert h.recv_exact(held, 5) == b"after", "the reload broke alice's open connection"
    held.close()
    assert sorted(h.children_of(server.pid)) == pids
    assert_clean(server)


def port_series(server):
    """The port numbers the metrics endpoint has per-port series for."""
    url = "http://127.0.0.1:%d/metrics" % server.mport
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {int(p) for p in re.findall(r'port="(\d+)"', text)}


def test_live_ports_added_and_removed_on_sighup():
    """servers [A, C]: an 8 MiB transfer through A runs (byte-checked) while a SIGHUP adds B,
    which Debian's ss-tunnel then uses, and another removes C: new connections to C are
    refused at once, C's open session closes after drain_timeout, C's series go; both reloads
    are applied live (the worker PIDs never change)."""
    tu.need_ss_tunnel()
    m = tu.M
    echo = h.TcpEcho()
    pa, pb, pc = h.free_port(), h.free_port(), h.free_port()
    mport = h.free_port()

    def entry(port):
        return {"server": "127.0.0.1", "server_port": port, "method": m,
                "password": "pw-%d" % port}

    cfg = {"servers": [entry(pa), entry(pc)], "workers": 2, "verbose": 1,
           "drain_timeout": DRAIN, "block_private": False, "timeout": 30,
           "metrics_address": "127.0.0.1:%d" % mport}
    server = h.reuseproxy(cfg, name="live-add-remove", wait=False)
    server.mport = mport
    h.wait_tcp("127.0.0.1", pa)
    h.wait_tcp("127.0.0.1", pc)
    wait_workers(server, 2)
    pids = sorted(h.children_of(server.pid))
    stay = PacedTransfer(tu.ss_tunnel(pa, "pw-%d" % pa, echo.port), seconds=DRAIN + 8)
    held = held_open(tu.ss_tunnel(pc, "pw-%d" % pc, echo.port))
    stay.start()
    time.sleep(0.5)  # the transfer is under way on its worker

    def reload(ports, count):
        cfg["servers"] = [entry(p) for p in ports]
        with open(server.cfg_path, "w") as f:
            json.dump(cfg, f)
        server.signal(signal.SIGHUP)
        assert h.wait_for(lambda: server.output().count("reload applied live to 2 workers")
                          == count, 30), server.output()[-2500:]
        assert sorted(h.children_of(server.pid)) == pids, "the reload replaced the workers"

    reload([pa, pc, pb], 1)
    data = h.pattern(256 * 1024, 3)
    assert tu.echo_through(tu.ss_tunnel(pb, "pw-%d" % pb, echo.port), data) == data
    assert pb in port_series(server)
    reload([pa, pb], 2)
    assert h.wait_for(lambda: not h.tcp_open("127.0.0.1", pc), 10), "the removed port accepts"
    held.sendall(b"still")  # its open session runs on until drain_timeout
    assert h.recv_exact(held, 5) == b"still"
    assert connection_closed(held, DRAIN + 5), "a removed port's session outlived the drain"
    assert pc not in port_series(server), "the removed port's series remain"
    assert tu.echo_through(tu.ss_tunnel(pb, "pw-%d" % pb, echo.port), data) == data
    stay.join(180)
    assert not stay.is_alive(), "the transfer did not end"
    assert stay.error is None, "the transfer on A broke: %r" % stay.error
    assert stay.got == stay.data, "%d of %d bytes came back intact" % (len(stay.got), SIZE)
    assert sorted(h.children_of(server.pid)) == pids
    assert_clean(server)
