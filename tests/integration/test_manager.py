"""test_manager.py: the ss-manager API (issue 15; manager.h).

A panel speaks shadowsocks-libev's ss-manager protocol (ss-manager(1), "PROTOCOL") to
manager_address, one command per datagram: "add: {...}" and "remove: {...}" answered "ok" or
"err", "ping" answered "stat: {"port": bytes}", "list" (shadowsocks-rust's ssmanager) answered by
the ports with their password and method. Here the panel is a Python client on a unix socket (or
on loopback UDP); the ports it adds are used by Debian's ss-tunnel.
"""
import json
import os
import signal
import socket
import stat
import subprocess

import harness as h
import test_users as tu

M = "aes-256-gcm"
LIST_MAX = 4 << 20  # the longest "list" reply a unix socket gives (MANAGER_UNIX_REPLY_MAX)


class Panel:
    """A ss-manager client: a datagram socket of its own (bound, so that the server can answer)."""

    def __init__(self, address):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(os.path.join(h.TMPDIR, "panel-%d.sock" % id(self)))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        self.address = address
        self.sock.settimeout(20)

    def send(self, text, bufsize=65536):
        self.sock.sendto(text if isinstance(text, bytes) else text.encode(), self.address)
        return self.sock.recv(bufsize).decode()

    def stat(self):
        reply = self.send("ping")
        assert reply.startswith("stat: "), reply
        return {int(k): v for k, v in json.loads(reply[6:]).items()}

    def list(self):
        return json.loads(self.send("list", LIST_MAX))

    def close(self):
        self.sock.close()


def manager_server(method=M, env=None, **kw):
    """A server (2 workers) with the API on a unix socket in the test's directory."""
    port = h.free_port()
    path = os.path.join(h.TMPDIR, "manager.sock")
    cfg = h.server_config(port, method=method, workers=2, manager_address=path, **kw)
    p = h.reuseproxy(cfg, name="manager-server", env=env)
    p.port, p.manager = port, path
    assert h.wait_for(lambda: os.path.exists(path), 10), p.output()[-2000:]
    return p


def check(cfg):
    path = h.write_config(cfg)
    return subprocess.run([h.BINARY, "-c", path, "--check"], capture_output=True, text=True,
                          timeout=60), path


def test_manager_unix_socket_is_mode_0600_and_removed_at_exit():
    """The socket file is the owner's alone (whoever writes to it can add ports and read every
    password); ping and list answer; the file is gone once the server stops."""
    server = manager_server()
    mode = stat.S_IMODE(os.stat(server.manager).st_mode)
    assert mode == 0o600, oct(mode)
    panel = Panel(server.manager)
    assert panel.stat() == {server.port: 0}
    assert panel.list() == []
    panel.close()
    server.stop(timeout=30)
    assert not os.path.exists(server.manager), "the socket file is left behind"


def test_manager_bad_input_changes_nothing():
    """Garbage, bad JSON, an unknown method, the file's own port, a port out of range, a
    removal of a port the API never added: each gets "err", and the server goes on as before
    (the same ports, its file's port still serving)."""
    server = manager_server()
    panel = Panel(server.manager)
    bad = [b"\x00\xff garbage", "add: {\"server_port\": ", "add: {\"server_port\": %d, "
           "\"password\": \"pw-long-enough\", \"method\": \"rc4-md5\"}" % h.free_port(),
           "add: {\"server_port\": %d, \"password\": \"pw-long-enough\"}" % server.port,
           "add: {\"server_port\": 70000, \"password\": \"pw-long-enough\"}",
           "add: {\"server_port\": %d}" % h.free_port(),
           "remove: {\"server_port\": %d}" % h.free_port(), "ping: {}", "hello",
           "add: {\"server_port\": %d, \"password\": \"c2hvcnQ=\", \"method\": "
           "\"2022-blake3-aes-128-gcm\"}" % h.free_port()]  # a PSK of 5 bytes
    for cmd in bad:
        assert panel.send(cmd) == "err", cmd
    # a port another program listens on: the master cannot open it, and nothing changes
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    assert add(panel, busy.getsockname()[1], "api-user-secret") == "err"
    busy.close()
    assert panel.stat() == {server.port: 0}
    assert panel.list() == []
    assert h.tcp_open("127.0.0.1", server.port)
    assert "manager: refused commands" in server.output()
    panel.close()
    tu.assert_clean(server)


def test_manager_on_loopback_udp():
    """manager_address "127.0.0.1:PORT": the same API over UDP."""
    mport = h.free_port("udp")
    port = h.free_port()
    cfg = h.server_config(port, method=M, workers=1, manager_address="127.0.0.1:%d" % mport)
    server = h.reuseproxy(cfg, name="manager-server")
    panel = Panel(("127.0.0.1", mport))
    assert h.wait_for(lambda: panel.send("list") == "[]", 10), server.output()[-2000:]
    assert panel.stat() == {port: 0}
    panel.close()


def test_manager_non_loopback_address_refused_without_allow_remote():
    """A manager_address other hosts can reach is a configuration error naming its
    FILE:LINE:COLUMN, unless manager_allow_remote is true."""
    cfg = h.server_config(h.free_port(), method=M, workers=1,
                          manager_address="0.0.0.0:%d" % h.free_port())
    r, path = check(cfg)
    assert r.returncode == 1, r.stderr
    # write_config() writes one line: the key's column is where json.dump put it
    with open(path) as f:
        column = f.read().index('"manager_address"') + 1
    assert "%s:1:%d: \"manager_address\"" % (path, column) in r.stderr, r.stderr
    assert "is not a loopback address" in r.stderr, r.stderr
    cfg["manager_allow_remote"] = True
    r, _ = check(cfg)
    assert r.returncode == 0, r.stderr


def add(panel, port, password, method=M):
    return panel.send("add: " + json.dumps({"server_port": port, "password": password,
                                            "method": method}))


def test_manager_add_use_ping_list_remove():
    """The API adds a port; Debian's ss-tunnel relays 256 KiB through it, byte-checked; ping
    reports its bytes; list shows it; adding it again is refused; remove closes it: new
    connections are refused, and the file's port serves on."""
    tu.need_ss_tunnel()
    echo = h.TcpEcho()
    server = manager_server()
    panel = Panel(server.manager)
    port = h.free_port()
    assert add(panel, port, "api-user-secret") == "ok", server.output()[-2000:]
    h.wait_tcp("127.0.0.1", port, 30)
    data = h.pattern(256 * 1024, 5)
    assert tu.echo_through(tu.ss_tunnel(port, "api-user-secret", echo.port), data) == data
    assert h.wait_for(lambda: panel.stat().get(port, 0) >= 2 * len(data), 10), panel.stat()
    assert panel.stat()[server.port] == 0  # counted per port
    assert panel.list() == [{"server_port": port, "password": "api-user-secret", "method": M}]
    assert add(panel, port, "another-secret") == "err"
    assert panel.send("remove: " + json.dumps({"server_port": port})) == "ok"
    assert h.wait_for(lambda: not h.tcp_open("127.0.0.1", port), 30), \
        "the removed port still accepts: %s" % server.output()[-2000:]
    assert panel.list() == []
    assert port not in panel.stat()
    assert h.tcp_open("127.0.0.1", server.port)
    panel.close()
    tu.assert_clean(server)


def test_manager_state_restores_ports_after_a_restart():
    """With manager_state, a port added through the API is served again after a stop and a
    start, and listed; the file is the owner's alone."""
    tu.need_ss_tunnel()
    echo = h.TcpEcho()
    state = os.path.join(h.TMPDIR, "manager-state.json")
    server = manager_server(manager_state=state, method="chacha20-ietf-poly1305")
    panel = Panel(server.manager)
    port = h.free_port()
    assert add(panel, port, "kept-secret") == "ok", server.output()[-2000:]
    panel.close()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    server.stop(timeout=30)
    assert not h.wait_for(lambda: h.tcp_open("127.0.0.1", port), 1)
    again = h.reuseproxy(h.server_config(server.port, method="chacha20-ietf-poly1305", workers=2,
                                         manager_address=server.manager, manager_state=state),
                         name="manager-server-again")
    h.wait_tcp("127.0.0.1", port, 30)
    data = h.pattern(64 * 1024, 6)
    assert tu.echo_through(tu.ss_tunnel(port, "kept-secret", echo.port), data) == data
    panel = Panel(server.manager)
    # its own method, not the file's
    assert panel.list() == [{"server_port": port, "password": "kept-secret", "method": M}], \
        again.output()[-2000:]
    panel.close()
    with open(server.log_path, errors="replace") as f:  # the first run's exit, after its stop
        first = f.read()
    assert "runtime error" not in first and "Sanitizer" not in first, first[-3000:]
    tu.assert_clean(again)


def test_manager_ports_survive_a_sighup():
    """A SIGHUP reads the file again and keeps the API's ports: the port still accepts, and is
    still listed, once the reload is complete."""
    server = manager_server()
    panel = Panel(server.manager)
    port = h.free_port()
    assert add(panel, port, "api-user-secret") == "ok", server.output()[-2000:]
    h.wait_tcp("127.0.0.1", port, 30)
    assert h.wait_for(lambda: server.output().count("reload applied live") == 1, 30)
    server.signal(signal.SIGHUP)  # nothing changed: the workers are replaced
    assert h.wait_for(lambda: server.output().count("reload complete") == 1, 30), \
        server.output()[-2000:]
    assert h.tcp_open("127.0.0.1", port)
    assert [e["server_port"] for e in panel.list()] == [port]
    assert set(panel.stat()) == {server.port, port}
    panel.close()


def test_manager_sends_stat_to_the_panel_every_10_s():
    """As ss-manager does for its panel: the last client that sent a valid command receives
    "stat: {...}" on its own, every 10 seconds."""
    server = manager_server()
    panel = Panel(server.manager)
    assert panel.list() == []
    panel.sock.settimeout(25)
    got = panel.sock.recv(65536).decode()
    assert got.startswith("stat: "), got
    assert json.loads(got[6:]) == {str(server.port): 0}
    panel.close()


def test_manager_ports_and_socket_survive_a_binary_upgrade():
    """SIGUSR2 with manager_state: the new master serves the API's port on the socket it took
    over, answers on the API's socket (which the old master, leaving, does not remove)."""
    import test_process as tpr
    tu.need_ss_tunnel()
    echo = h.TcpEcho()
    server = manager_server(manager_state=os.path.join(h.TMPDIR, "state.json"))
    panel = Panel(server.manager)
    port = h.free_port()
    assert add(panel, port, "api-user-secret") == "ok", server.output()[-2000:]
    tunnel = tu.ss_tunnel(port, "api-user-secret", echo.port)
    assert h.wait_for(lambda: server.output().count("reload applied live") == 1, 30)
    new_pid = tpr.upgrade(server)
    try:
        assert server.wait(20) == 0, "old master: %s" % server.output()[-1500:]
        assert "closing an inherited socket" not in server.output(), server.output()[-1500:]
        data = h.pattern(64 * 1024, 7)
        assert tu.echo_through(tunnel, data) == data
        assert os.path.exists(server.manager)
        assert [e["server_port"] for e in panel.list()] == [port]
    finally:
        panel.close()
        tpr.stop_master(new_pid)


def assert_transfer_intact(stay):
    """test_live.PacedTransfer stay ended, every byte back in order."""
    stay.join(180)
    assert not stay.is_alive(), "the transfer did not end"
    assert stay.error is None, "the transfer broke: %r" % stay.error
    assert stay.got == stay.data, "%d of %d bytes came back intact" % (len(stay.got),
                                                                       len(stay.data))


def test_manager_add_and_remove_are_live():
    """The API's add and remove are applied live: while an 8 MiB transfer through the file's
    port runs (byte-checked), a port is added, Debian's ss-tunnel uses it, then it is removed:
    new connections are refused, its open session closes after drain_timeout; the worker PIDs
    never change."""
    import test_live as tl
    tu.need_ss_tunnel()
    echo = h.TcpEcho()
    server = manager_server(drain_timeout=tl.DRAIN, verbose=1)
    tl.wait_workers(server, 2)
    pids = sorted(h.children_of(server.pid))
    stay = tl.PacedTransfer(tu.ss_tunnel(server.port, "integration-secret", echo.port),
                            seconds=tl.DRAIN + 8)
    stay.start()
    panel = Panel(server.manager)
    port = h.free_port()
    assert add(panel, port, "api-user-secret") == "ok", server.output()[-2000:]
    assert h.wait_for(lambda: "reload applied live to 2 workers" in server.output(), 30), \
        server.output()[-2000:]
    h.wait_tcp("127.0.0.1", port, 30)
    assert sorted(h.children_of(server.pid)) == pids, "the add replaced the workers"
    tunnel = tu.ss_tunnel(port, "api-user-secret", echo.port)
    data = h.pattern(256 * 1024, 8)
    assert tu.echo_through(tunnel, data) == data
    held = tl.held_open(tunnel)
    assert panel.send("remove: " + json.dumps({"server_port": port})) == "ok"
    assert h.wait_for(lambda: server.output().count("reload applied live to 2 workers") == 2,
                      30), server.output()[-2000:]
    assert h.wait_for(lambda: not h.tcp_open("127.0.0.1", port), 10), "the removed port accepts"
    held.sendall(b"still")
    assert h.recv_exact(held, 5) == b"still"
    assert tl.connection_closed(held, tl.DRAIN + 5), "a removed port's session outlived the drain"
    assert_transfer_intact(stay)
    assert sorted(h.children_of(server.pid)) == pids, "the remove replaced the workers"
    panel.close()
    tu.assert_clean(server)


def test_manager_add_remove_cycles_reuse_port_entries():
    """A panel adds and removes the same port 15 times (two passwords in turn, Debian's
    ss-tunnel relaying 64 KiB through it each time) while an 8 MiB transfer through the file's
    port runs, byte-checked. A worker's port table is lowered to 6 entries (the test hook
    $REUSEPROXY_TEST_MAX_PORTS): a removed port's entry is reused once nothing points into it,
    so every cycle is applied live (the worker PIDs never change) and the "port entry" of each
    add stays below 6. One connection is held open across a removal and two more cycles: its
    entry is not reused under it (it still echoes), and it closes after drain_timeout. The
    master's descriptors are as many after the last cycle as after the first."""
    import re
    import test_live as tl
    tu.need_ss_tunnel()
    cap, cycles = 6, 15
    echo = h.TcpEcho()
    server = manager_server(drain_timeout=tl.DRAIN, verbose=1,
                            env={"REUSEPROXY_TEST_MAX_PORTS": str(cap)})
    tl.wait_workers(server, 2)
    pids = sorted(h.children_of(server.pid))
    stay = tl.PacedTransfer(tu.ss_tunnel(server.port, "integration-secret", echo.port),
                            seconds=12)
    stay.start()
    panel = Panel(server.manager)
    port = h.free_port()
    passwords = ["cycle-secret-a", "cycle-secret-b"]
    tunnels = [tu.ss_tunnel(port, pw, echo.port) for pw in passwords]
    data = h.pattern(64 * 1024, 9)
    applied = 0
    held = None

    def command(text):
        nonlocal applied
        assert panel.send(text) == "ok", server.output()[-2000:]
        applied += 1
        assert h.wait_for(lambda: server.output().count("reload applied live to 2 workers")
                          >= applied, 30), server.output()[-3000:]

    for i in range(cycles):
        command("add: " + json.dumps({"server_port": port, "password": passwords[i % 2],
                                      "method": M}))
        h.wait_tcp("127.0.0.1", port, 30)
        assert tu.echo_through(tunnels[i % 2], data) == data, "cycle %d" % i
        if i == 3:
            held = tl.held_open(tunnels[i % 2])
        command("remove: " + json.dumps({"server_port": port}))
        if i == 0:
            fds = h.fd_count(server.pid)
        if i == 5:
            held.sendall(b"still")  # two cycles later: its entry was not given away
            assert h.recv_exact(held, 5) == b"still"
    assert tl.connection_closed(held, tl.DRAIN + 10), "a removed port's session outlived the drain"
    assert h.fd_count(server.pid) == fds, "the master's descriptors grew with the cycles"
    out = server.output()
    entries = [(int(e), int(n), int(c)) for e, n, c in
               re.findall(r"port %d added live \(.*?; port entry (\d+), (\d+) of (\d+) in use\)"
                          % port, out)]
    assert len(entries) == 2 * cycles, out[-3000:]  # each cycle, on each of the 2 workers
    assert all(e < cap and n <= cap and c == cap for e, n, c in entries), entries
    assert_transfer_intact(stay)
    assert sorted(h.children_of(server.pid)) == pids, "a cycle replaced the workers"
    panel.close()
    tu.assert_clean(server)


def prometheus_port_bytes(mport):
    """Each port's bytes both ways over every worker, as the metrics endpoint says."""
    import re
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        text = r.read().decode()
    total = {}
    for port, value in re.findall(
            r'^reuseproxy_port_bytes_(?:in|out)_total\{worker="\d+",port="(\d+)"\} (\d+)$',
            text, re.M):
        total[int(port)] = total.get(int(port), 0) + int(value)
    return total


def test_manager_every_port_added_live_is_counted():
    """20 ports added through the API to a server of one port (the old sizing, 2 x ports + 16
    slots, counted only 17 of them): Debian's ss-tunnel relays 16 KiB through each; ping and the
    Prometheus series report each port's bytes (at least the 32 KiB each way it relayed, the
    same figure in both). A port removed and added again starts at zero."""
    tu.need_ss_tunnel()
    echo = h.TcpEcho()
    mport = h.free_port()
    server = manager_server(metrics_address="127.0.0.1:%d" % mport)
    panel = Panel(server.manager)
    ports = []
    while len(ports) < 20:
        p = h.free_port()
        if p not in ports and p != server.port:
            ports.append(p)
    for p in ports:
        assert add(panel, p, "count-%d" % p) == "ok", server.output()[-2000:]
    for p in ports:
        h.wait_tcp("127.0.0.1", p, 30)
    data = h.pattern(16 * 1024, 4)
    for p in ports:
        assert tu.echo_through(tu.ss_tunnel(p, "count-%d" % p, echo.port), data) == data

    def agree():
        stat, prom = panel.stat(), prometheus_port_bytes(mport)
        return all(stat.get(p, 0) >= 2 * len(data) and prom.get(p) == stat[p] for p in ports)

    assert h.wait_for(agree, 20, interval=0.2), (panel.stat(), prometheus_port_bytes(mport))
    again = ports[0]
    assert panel.send("remove: " + json.dumps({"server_port": again})) == "ok"
    assert h.wait_for(lambda: again not in panel.stat(), 20), panel.stat()
    assert h.wait_for(lambda: again not in prometheus_port_bytes(mport), 20)  # cached briefly
    assert add(panel, again, "count-again") == "ok"
    h.wait_tcp("127.0.0.1", again, 30)
    assert h.wait_for(lambda: prometheus_port_bytes(mport).get(again) == 0, 20), \
        prometheus_port_bytes(mport)
    assert panel.stat()[again] == 0
    stat = panel.stat()  # the others' counters are untouched by the remove and re-add
    assert all(stat[p] >= 2 * len(data) for p in ports[1:]), stat
    panel.close()
    tu.assert_clean(server)


def add_many(panel, server, n):
    """Adds n ports through the API, each with a 240-byte password (about 300 bytes of "list"
    each); returns {port: password}. A port another process took meanwhile is replaced."""
    added = {}
    for _ in range(4 * n):
        if len(added) == n:
            break
        p = h.free_port()
        if p in added or p == server.port:
            continue
        pw = ("pw%05d-" % p) * 30
        if add(panel, p, pw) == "ok":
            added[p] = pw
    assert len(added) == n, "only %d ports added: %s" % (len(added), server.output()[-2000:])
    return added


def list_text_length(added):
    """The length of the "list" reply for added: compact JSON, as the server writes it."""
    return len(json.dumps([{"server_port": p, "password": pw, "method": M}
                           for p, pw in added.items()], separators=(",", ":")))


def test_manager_list_longer_than_a_udp_datagram_on_a_unix_socket():
    """240 ports added through the API: their list is about 72,000 bytes, more than the 65,000
    the reply had room for before and more than a UDP datagram holds. On the unix socket the
    list comes whole in one datagram (the endpoint raises its SO_SNDBUF for it), every port
    with its password and method."""
    server = manager_server()
    panel = Panel(server.manager)
    added = add_many(panel, server, 240)
    assert list_text_length(added) > 65507
    got = panel.list()
    assert {e["server_port"]: e["password"] for e in got} == added
    assert all(e["method"] == M for e in got)
    assert h.wait_for(lambda: set(panel.stat()) == set(added) | {server.port}, 30)  # applied
    panel.close()
    tu.assert_clean(server)


def test_manager_list_longer_than_a_udp_datagram_on_udp_is_refused_with_the_reason():
    """The same 240 ports on a loopback UDP manager_address: a list longer than 65,507 bytes
    (the most a UDP datagram holds) answers "err" and the log says why; ping still answers;
    once ports are removed and the list fits, it is answered again."""
    mport = h.free_port("udp")
    port = h.free_port()
    cfg = h.server_config(port, method=M, workers=2, manager_address="127.0.0.1:%d" % mport)
    server = h.reuseproxy(cfg, name="manager-server")
    server.port = port
    panel = Panel(("127.0.0.1", mport))
    assert h.wait_for(lambda: panel.send("list") == "[]", 10), server.output()[-2000:]
    added = add_many(panel, server, 240)
    assert panel.send("list") == "err"
    assert h.wait_for(lambda: "more than a UDP datagram holds (65507): use a unix "
                              "manager_address" in server.output(), 20), server.output()[-2000:]
    assert h.wait_for(lambda: set(panel.stat()) == set(added) | {port}, 30)  # all applied
    for p in list(added)[:30]:
        assert panel.send("remove: " + json.dumps({"server_port": p})) == "ok"
        del added[p]
    assert list_text_length(added) < 65507
    assert {e["server_port"]: e["password"] for e in panel.list()} == added
    panel.close()
    tu.assert_clean(server)
