"""test_ports.py: many ports in one instance (issue 15).

A server lists several ports, with libev's "port_password" ({"8381": "pw1", ...}, the file's
method for all) or the server role's "servers" (shadowsocks-rust's shape, each entry its own
method, password or users, and mode). The master holds each port's SO_REUSEPORT slot sockets;
every worker serves every port with that port's keys. Here: three port_password ports, each used
through Debian's ss-tunnel with its own password and counted under its own port= label; a
password of another port gets the probe treatment; a "servers" list with a SIP004 port (users)
and a SIP022 port; a binary upgrade (SIGUSR2) keeps every port; configuration errors name
FILE:LINE:COLUMN.
"""
import base64
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import harness as h
import test_probe as tp
import test_process as tpr
import test_sip022 as ts
import test_users as tu

M = "aes-256-gcm"
SIZE = 256 * 1024


def ss_tunnel(server_port, password, target_port):
    tu.need_ss_tunnel()
    return tu.ss_tunnel(server_port, password, target_port)


def start(cfg, ports, workers=2):
    """Starts cfg (with a metrics address) and waits until every port of ports accepts."""
    cfg.setdefault("metrics_address", "127.0.0.1:%d" % h.free_port())
    for k, v in {"timeout": 30, "block_private": False, "verbose": 1}.items():
        cfg.setdefault(k, v)
    cfg["workers"] = workers
    p = h.reuseproxy(cfg, wait=False, name="ports-server")
    for port in ports:
        try:
            h.wait_tcp("127.0.0.1", port, timeout=20)
        except AssertionError:
            raise AssertionError("port %d does not accept: %s" % (port, p.output()[-2000:]))
    p.mport = int(cfg["metrics_address"].rsplit(":", 1)[1])
    return p


def port_password_server(n=3, workers=2, **kw):
    ports = [h.free_port() for _ in range(n)]
    cfg = {"server": "127.0.0.1", "method": M,
           "port_password": {str(port): "pw-%d-secret" % i for i, port in enumerate(ports)}}
    cfg.update(kw)
    p = start(cfg, ports, workers)
    p.ports = ports
    return p


def port_metrics(server):
    """{(series, port): sum over the workers} of the per-port series."""
    url = "http://127.0.0.1:%d/metrics" % server.mport
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'(reuseproxy_port_\w+)\{worker="\d+",port="(\d+)"\} (\d+)$', line)
        if m:
            key = (m.group(1), int(m.group(2)))
            out[key] = out.get(key, 0) + int(m.group(3))
    return out


def echo_through(port, data):
    got = tu.echo_through(port, data)
    assert got == data, "%d of %d bytes came back intact" % (len(got), len(data))


def test_ports_port_password_three_ports_each_its_password():
    """Three port_password ports, 2 workers: each port relays for an ss-tunnel with its own
    password, byte for byte, and its bytes and connections are counted under its port label
    only."""
    echo = h.TcpEcho()
    server = port_password_server()
    for i, port in enumerate(server.ports):
        tport = ss_tunnel(port, "pw-%d-secret" % i, echo.port)
        echo_through(tport, h.pattern(SIZE * (i + 1), i))

    def counted():
        got = port_metrics(server)
        return all(got.get(("reuseproxy_port_bytes_in_total", port), 0) >= SIZE * (i + 1) and
                   got.get(("reuseproxy_port_bytes_out_total", port), 0) >= SIZE * (i + 1) and
                   got.get(("reuseproxy_port_connections_total", port), 0) >= 1
                   for i, port in enumerate(server.ports))
    assert h.wait_for(counted, 10), "not every port was counted: %r" % port_metrics(server)
    got = port_metrics(server)
    # each port's bytes are its own: the third carried three times the first's
    first = got[("reuseproxy_port_bytes_in_total", server.ports[0])]
    assert first < 2 * SIZE, "port %d counted %d bytes of the others'" % (server.ports[0], first)
    assert {k[1] for k in got} == set(server.ports), got
    tu.assert_clean(server)


def test_ports_another_ports_password_gets_the_probe_treatment():
    """A genuine first packet under port 1's password, sent to port 2, and under a password no
    port has: zero bytes back, a FIN at the timeout, nothing reaches the target; counted as
    failed handshakes of port 2 only."""
    echo = h.TcpEcho()
    server = port_password_server(workers=1, timeout=tp.TIMEOUT)
    packets = [h.record_first_packet(pw, M, echo.port, b"hello", name="recorder")
               for pw in ("pw-0-secret", "not-a-port-password")]
    assert all(len(p) > 32 + 18 for p in packets), "the recorder sent nothing"
    probes = [tp.Probe("wrong port's password", packets[0]), tp.Probe("no port's", packets[1]),
              tp.Probe("random", os.urandom(100))]
    tp.run_probes(server.ports[1], probes, tp.TIMEOUT + tp.LATE + 3)
    assert echo.connections == 0, "%d probes reached the target" % echo.connections
    for p in probes:
        assert not p.received, "%s got %d bytes back" % (p.group, len(p.received))
        assert p.how == "eof", "%s was closed by %s, not a FIN" % (p.group, p.how)
        after = p.closed - p.opened
        assert tp.TIMEOUT - tp.EARLY <= after <= tp.TIMEOUT + tp.LATE, \
            "%s was closed %.2f s after its connect, not at the timeout %d s" % (
                p.group, after, tp.TIMEOUT)
    closes = [p.closed - p.opened for p in probes]
    assert max(closes) - min(closes) <= tp.SPREAD, "closes spread over %.2f s" % (
        max(closes) - min(closes))
    got = port_metrics(server)
    assert got.get(("reuseproxy_port_failed_handshakes_total", server.ports[1]), 0) == 3, got
    assert got.get(("reuseproxy_port_failed_handshakes_total", server.ports[0]), 0) == 0, got
    tu.assert_clean(server)


def test_ports_servers_list_sip004_users_and_sip022():
    """A "servers" list: a SIP004 port whose users are told apart by trial decryption (used by
    ss-tunnel with a user's password) and a SIP022 port, TCP and UDP (used by reuseproxy's own
    tunnel role); 2 workers; each relays with its own keys and neither port takes the other's
    clients."""
    echo = h.TcpEcho()
    p4, p22 = h.free_port(), h.free_port()
    psk = base64.b64encode(os.urandom(16)).decode()
    cfg = {"servers": [
        {"server": "127.0.0.1", "server_port": p4, "method": M,
         "users": [{"name": "alice", "password": "alice-secret"},
                   {"name": "bob", "password": "bob-secret"}]},
        {"server": "127.0.0.1", "server_port": p22, "method": "2022-blake3-aes-128-gcm",
         "password": psk, "mode": "tcp_and_udp"}]}
    server = start(cfg, [p4, p22])
    t4 = ss_tunnel(p4, "bob-secret", echo.port)
    echo_through(t4, h.pattern(SIZE, 4))
    tport = h.free_port()
    h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": p22,
                  "local_address": "127.0.0.1", "local_port": tport, "password": psk,
                  "method": "2022-blake3-aes-128-gcm", "workers": 0,
                  "tunnel_address": "127.0.0.1:%d" % echo.port}, name="rp-tunnel")
    echo_through(tport, h.pattern(SIZE, 22))
    # UDP on the SIP022 port ("mode": "tcp_and_udp"), with that port's key
    uecho = h.UdpEcho()
    uport = h.free_port()
    h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": p22,
                  "local_address": "127.0.0.1", "local_port": uport, "password": psk,
                  "method": "2022-blake3-aes-128-gcm", "workers": 0, "mode": "udp_only",
                  "tunnel_address": "127.0.0.1:%d" % uecho.port}, name="rp-tunnel-udp")
    ts.udp_round_trips(uport, sizes=(1, 100, 1400))
    assert h.wait_for(lambda: 'user "bob"' in server.output(), 5), server.output()[-1500:]
    # the SIP004 user's password on the SIP022 port is nothing to it
    wrong = ss_tunnel(p22, "bob-secret", echo.port)
    before = echo.connections
    try:
        c = socket.create_connection(("127.0.0.1", wrong), timeout=5)
        c.sendall(b"x" * 100)
        got = c.recv(100)
        c.close()
    except OSError:  # a timeout: nothing came back
        got = b""
    assert got == b"" and echo.connections == before, "the SIP022 port served a SIP004 client"
    got = port_metrics(server)
    assert got.get(("reuseproxy_port_bytes_in_total", p4), 0) >= SIZE, got
    assert got.get(("reuseproxy_port_bytes_in_total", p22), 0) >= SIZE, got
    assert got.get(("reuseproxy_port_udp_datagrams_total", p22), 0) >= 3, got
    assert got.get(("reuseproxy_port_udp_datagrams_total", p4), 0) == 0, got
    tu.assert_clean(server)


def test_ports_sigusr2_upgrade_keeps_every_port():
    """After a binary upgrade the new master serves every port on the sockets it took over
    (none closed as unused, none opened anew), with 2 workers."""
    echo = h.TcpEcho()
    server = port_password_server(mode="tcp_and_udp")
    tunnels = [ss_tunnel(port, "pw-%d-secret" % i, echo.port)
               for i, port in enumerate(server.ports)]
    new_pid = tpr.upgrade(server)
    try:
        assert server.wait(20) == 0, "old master: %s" % server.output()[-1500:]
        assert len(h.children_of(new_pid)) == 2
        for i, t in enumerate(tunnels):
            echo_through(t, h.pattern(SIZE, 10 + i))
        assert "closing an inherited socket" not in server.output(), server.output()[-1500:]
    finally:
        tpr.stop_master(new_pid)
    tu.assert_clean(server)


def test_ports_every_balance_mode_serves_every_port():
    """balance "shared" (one socket per port for all workers) and "dispatch" (the master accepts
    and passes each connection; the worker finds its port from the local address): every port
    relays with its own password."""
    echo = h.TcpEcho()
    for balance in ("shared", "dispatch"):
        server = port_password_server(balance=balance)
        for i, port in enumerate(server.ports):
            t = ss_tunnel(port, "pw-%d-secret" % i, echo.port)
            echo_through(t, h.pattern(SIZE // 4, i))
        got = port_metrics(server)
        for port in server.ports:
            assert got.get(("reuseproxy_port_connections_total", port), 0) >= 1, (balance, got)
        tu.assert_clean(server)
        server.stop()


def test_ports_reload_changes_one_ports_password():
    """SIGHUP with one port's password changed: that port takes the new password and gives the
    old one the probe's silence; the other ports go on with theirs, counters kept."""
    import json
    echo = h.TcpEcho()
    server = port_password_server()
    keep = ss_tunnel(server.ports[0], "pw-0-secret", echo.port)
    echo_through(keep, h.pattern(SIZE, 1))
    with open(server.cfg_path) as f:
        cfg = json.load(f)
    cfg["port_password"][str(server.ports[1])] = "changed-secret"
    with open(server.cfg_path, "w") as f:
        json.dump(cfg, f)
    server.signal(signal.SIGHUP)
    assert h.wait_for(lambda: "reload complete" in server.output(), 20), server.output()[-800:]
    echo_through(ss_tunnel(server.ports[1], "changed-secret", echo.port), h.pattern(SIZE, 2))
    old = ss_tunnel(server.ports[1], "pw-1-secret", echo.port)
    before = echo.connections
    c = socket.create_connection(("127.0.0.1", old), timeout=10)
    c.sendall(b"x" * 100)
    c.settimeout(2)
    try:
        got = c.recv(100)
    except socket.timeout:
        got = b""
    c.close()
    assert got == b"" and echo.connections == before, "the old password still works"
    echo_through(keep, h.pattern(SIZE, 3))
    got = port_metrics(server)
    assert got.get(("reuseproxy_port_bytes_in_total", server.ports[0]), 0) >= 2 * SIZE, got
    tu.assert_clean(server)


def check(cfg_text):
    path = os.path.join(h.TMPDIR, "ports-check-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        f.write(cfg_text)
    r = subprocess.run([h.BINARY, "-c", path, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr.decode(), path


def test_ports_config_errors_name_file_line_column():
    """A bad port key and a port given twice are refused, naming FILE:LINE:COLUMN."""
    rc, err, path = check('{"server": "127.0.0.1", "method": "aes-256-gcm",\n'
                          '  "port_password": {"8381": "pw1", "83x2": "pw2"}}\n')
    assert rc == 1, (rc, err)
    assert '%s:2:3: "port_password": member "83x2": expected a port' % path in err, err
    rc, err, path = check('{"server": "127.0.0.1", "method": "aes-256-gcm",\n'
                          '  "port_password": {"8381": "pw1", "08381": "pw2"}}\n')
    assert rc == 1 and '%s:2:3: "port_password": port 8381 is listed twice' % path in err, err
    rc, err, path = check('{"password": "x1y2z3",\n "servers": [\n'
                          '  {"server": "127.0.0.1", "server_port": 8381},\n'
                          '  {"server": "::1", "server_port": 8381}]}\n')
    assert rc == 1 and '%s:2:2: "servers"[1]: port 8381 is also servers[0]\'s' % path in err, err


def test_ports_more_sockets_than_nofile_is_refused_with_the_reason():
    """40 ports for 2 workers need 160 sockets in the master: with "nofile": 64 the start fails
    at once and says what to raise, instead of at the first EMFILE."""
    ports = [h.free_port() for _ in range(40)]
    cfg = {"server": "127.0.0.1", "method": M, "workers": 2, "nofile": 64,
           "port_password": {str(p): "pw-%d-secret" % p for p in ports}}
    p = h.reuseproxy(cfg, wait=False, name="ports-nofile")
    assert p.wait(20) == 1, p.output()[-1500:]
    assert ('40 listen addresses for 2 worker slots need 160 descriptors in the master' in
            p.output()), p.output()[-1500:]
    assert 'raise "nofile"' in p.output()
