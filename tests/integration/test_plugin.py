"""test_plugin.py: SIP003 plugins (issue 17) with Debian's simple-obfs (obfs-server, obfs-local:
obfs=http and obfs=tls) and shadowsocks-v2ray-plugin (websocket, and websocket over TLS with a
certificate made here with openssl), against Debian's shadowsocks-libev on the other end:
  ss-tunnel + client plugin -> [plugin -> reuseproxy server workers] -> TCP echo
  [reuseproxy tunnel / SOCKS5 local workers -> plugin] -> server plugin + ss-server -> TCP echo
every payload checked byte for byte. Supervision: the plugin (a child of the master, found by
its PID among the master's children) killed mid-test is restarted and new connections work
within 2 s; a reload keeps it when its settings did not change and restarts it when they did;
a plugin binary that does not exist is a configuration error at a start, a reload (the old
configuration keeps running) and in --check. Skips with the reason when a plugin is absent
(apt-get install simple-obfs shadowsocks-v2ray-plugin)."""
import os
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import free_port, reuseproxy, ss_libev, wait_for

METHOD = "aes-256-gcm"
PASSWORD = "integration-secret"
PAYLOAD = 256 * 1024
# The bound for a killed plugin to be serving again.
RESTART_BOUND = 2.0


def _need(*tools):
    for t in tools:
        if not shutil.which(t):
            raise harness.Skip("%s is not installed (Debian: %s)" % (
                t, {"obfs-server": "simple-obfs", "obfs-local": "simple-obfs",
                    "ss-v2ray-plugin": "shadowsocks-v2ray-plugin"}.get(t, t)))


def _certificate():
    """A self-signed certificate for the name rp.test, made with openssl for this run."""
    _need("openssl")
    cert = os.path.join(harness.TMPDIR, "plugin-cert.pem")
    key = os.path.join(harness.TMPDIR, "plugin-key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=rp.test", "-addext", "subjectAltName=DNS:rp.test", "-keyout", key,
                        "-out", cert], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def _plugin(kind):
    """(server plugin, its options, client plugin, its options) for kind."""
    if kind in ("obfs-http", "obfs-tls"):
        _need("obfs-server", "obfs-local")
        obfs = kind.split("-")[1]
        return ("obfs-server", "obfs=" + obfs, "obfs-local",
                "obfs=%s;obfs-host=www.example.com" % obfs)
    _need("ss-v2ray-plugin")
    if kind == "v2ray-ws":
        return ("ss-v2ray-plugin", "server", "ss-v2ray-plugin", "")
    cert, key = _certificate()
    return ("ss-v2ray-plugin", "server;tls;host=rp.test;cert=%s;key=%s" % (cert, key),
            "ss-v2ray-plugin", "tls;host=rp.test;cert=%s" % cert)


def _plugin_args(name, opts):
    return ["--plugin", name] + (["--plugin-opts", opts] if opts else [])


def _echo_ok(connect, size=PAYLOAD, seed=0):
    """Sends size bytes through connect()'s echo path and reads exactly as many back (libev
    closes both directions at a client's EOF, so no half-close is asked of the path)."""
    import threading
    data = harness.pattern(size, seed)
    s = connect()
    s.settimeout(30)
    sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    sender.start()
    try:
        got = harness.recv_exact(s, len(data))
    finally:
        sender.join(30)
        s.close()
    return got == data


def _echo_soon(connect, timeout=20.0, seed=0):
    """True once a byte-checked echo through connect() succeeds (plugins on both ends take a
    moment to listen)."""
    def attempt():
        try:
            return _echo_ok(connect, 4096, seed)
        except (OSError, AssertionError):
            return False
    return wait_for(attempt, timeout, 0.1)


def _tcp(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=10)


def plugin_pid(master):
    """The master's child that is not a reuseproxy worker, or None."""
    for pid in harness.children_of(master.pid):
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            continue
        if os.path.basename(exe) != os.path.basename(harness.BINARY):
            return pid
    return None


def _server_with_plugin(kind, **kw):
    """A reuseproxy server (2 workers) behind the server plugin of kind, and a libev ss-tunnel
    with the client plugin to a TCP echo; returns (master, tunnel port, echo)."""
    splugin, sopts, cplugin, copts = _plugin(kind)
    echo = harness.TcpEcho()
    port, tport = free_port(), free_port()
    cfg = harness.server_config(port, METHOD, PASSWORD, workers=2, plugin=splugin)
    if sopts:
        cfg["plugin_opts"] = sopts
    cfg.update(kw)
    master = reuseproxy(cfg)
    ss_libev("ss-tunnel", ["-s", "127.0.0.1", "-p", str(port), "-k", PASSWORD, "-m", METHOD,
                           "-l", str(tport), "-L", "127.0.0.1:%d" % echo.port]
             + _plugin_args(cplugin, copts))
    return master, tport, echo


def _check_server_role(kind):
    master, tport, echo = _server_with_plugin(kind)
    assert _echo_soon(_tcp(tport)), "no echo through the plugins: %s" % master.output()[-2000:]
    for seed in range(3):
        assert _echo_ok(_tcp(tport), seed=seed), "payload %d differs" % seed
    assert "[plugin]" in master.output() or kind.startswith("v2ray")
    echo.stop()


def test_plugin_server_obfs_http():
    _check_server_role("obfs-http")


def test_plugin_server_obfs_tls():
    _check_server_role("obfs-tls")


def test_plugin_server_v2ray_websocket():
    _check_server_role("v2ray-ws")


def test_plugin_server_v2ray_websocket_tls():
    _check_server_role("v2ray-wss")


# ---- Client roles: reuseproxy's workers connect to the plugin's loopback port -----------------

def _client_with_plugin(kind, role, **kw):
    """A libev ss-server with the server plugin of kind, and a reuseproxy tunnel or SOCKS5
    local (2 workers) with the client plugin; returns (master, local port, echo)."""
    splugin, sopts, cplugin, copts = _plugin(kind)
    echo = harness.TcpEcho()
    port, lport = free_port(), free_port()
    ss_libev("ss-server", ["-s", "127.0.0.1", "-p", str(port), "-k", PASSWORD, "-m", METHOD]
             + _plugin_args(splugin, sopts))
    cfg = {"role": role, "server": "127.0.0.1", "server_port": port, "password": PASSWORD,
           "method": METHOD, "local_address": "127.0.0.1", "local_port": lport, "workers": 2,
           "plugin": cplugin}
    if copts:
        cfg["plugin_opts"] = copts
    if role == "tunnel":
        cfg["tunnel_address"] = "127.0.0.1:%d" % echo.port
    cfg.update(kw)
    master = reuseproxy(cfg)
    master.server_port = port
    return master, lport, echo


def _plugin_connects_to(master, port):
    """True when the master's plugin holds a TCP connection to port (from /proc/net/tcp): the
    traffic goes through it (obfs-server lets plain shadowsocks through too, so an echo alone
    would not tell)."""
    pid = plugin_pid(master)
    inodes = harness.socket_inodes_of(pid) if pid else set()
    return any(cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port and
               int(cols[9]) in inodes for cols in harness.proc_net_rows("tcp", "tcp6"))


def _check_client_roles(kind):
    for role in ("tunnel", "local"):
        master, lport, echo = _client_with_plugin(kind, role)
        if role == "tunnel":
            connect = _tcp(lport)
        else:
            def connect(port=echo.port):
                return harness.socks5_connect("127.0.0.1", lport, "127.0.0.1", port)
        assert _echo_soon(connect), "%s: no echo: %s" % (role, master.output()[-2000:])
        for seed in range(3):
            assert _echo_ok(connect, seed=seed), "%s: payload %d differs" % (role, seed)
        held = connect()
        held.sendall(b"x")
        assert harness.recv_exact(held, 1) == b"x"
        assert _plugin_connects_to(master, master.server_port), \
            "%s: the connection does not go through the plugin" % role
        held.close()
        master.stop()
        echo.stop()


def test_plugin_client_roles_obfs_http():
    _check_client_roles("obfs-http")


def test_plugin_client_roles_obfs_tls():
    _check_client_roles("obfs-tls")


def test_plugin_client_roles_v2ray_websocket():
    _check_client_roles("v2ray-ws")


def test_plugin_client_roles_v2ray_websocket_tls():
    _check_client_roles("v2ray-wss")


# ---- Supervision ------------------------------------------------------------------------------

def test_plugin_killed_is_restarted():
    master, tport, echo = _server_with_plugin("obfs-http")
    assert _echo_soon(_tcp(tport)), master.output()[-2000:]
    for round_ in range(2):
        pid = plugin_pid(master)
        assert pid, "no plugin among the master's children"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: plugin_pid(master) not in (None, pid), 10.0), \
            "the plugin was not restarted: %s" % master.output()[-2000:]
        ok = _echo_soon(_tcp(tport), timeout=10.0, seed=round_ + 1)
        took = time.monotonic() - killed
        assert ok, "no echo after the plugin's restart: %s" % master.output()[-2000:]
        assert took < RESTART_BOUND, "serving again after %.2f s" % took
        time.sleep(2.5)  # lived longer than the crash window: the next death is not "quick"
    assert "plugin obfs-server killed by signal 9" in master.output()
    assert master.alive()
    echo.stop()


def test_plugin_missing_binary_is_a_configuration_error():
    port = free_port()
    cfg = harness.server_config(port, METHOD, PASSWORD, workers=1,
                                plugin="no-such-plugin-rp")
    path = harness.write_config(cfg)
    want = "\"plugin\": \"no-such-plugin-rp\" is not an executable file in any directory of PATH"
    r = subprocess.run([harness.BINARY, "-c", path, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and want in r.stderr.decode(), r.stderr
    assert (path + ":1:") in r.stderr.decode(), r.stderr
    p = reuseproxy(cfg, wait=False, name="start")
    assert p.wait(10) == 1, "a start with a missing plugin must exit 1"
    assert want in p.output(), p.output()
    # reload: the running configuration (with a real plugin) keeps running
    master, tport, echo = _server_with_plugin("obfs-http")
    assert _echo_soon(_tcp(tport)), master.output()[-2000:]
    before = plugin_pid(master)
    good = open(master.cfg_path).read()
    with open(master.cfg_path, "w") as f:
        f.write(good.replace('"obfs-server"', '"no-such-plugin-rp"'))
    master.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused" in master.output(), 10.0), master.output()[-2000:]
    assert want in master.output()
    assert plugin_pid(master) == before and master.alive()
    assert _echo_ok(_tcp(tport), seed=5)
    echo.stop()


def test_plugin_reload_keeps_or_restarts_it():
    master, tport, echo = _server_with_plugin("obfs-http")
    assert _echo_soon(_tcp(tport)), master.output()[-2000:]
    first = plugin_pid(master)
    text = open(master.cfg_path).read()
    with open(master.cfg_path, "w") as f:  # a change that is not the plugin's
        f.write(text.replace('"timeout": 30', '"timeout": 31'))
    master.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload complete" in master.output(), 10.0), master.output()[-2000:]
    assert plugin_pid(master) == first, "the plugin was restarted for an unrelated change"
    assert _echo_ok(_tcp(tport), seed=6)
    with open(master.cfg_path, "w") as f:  # the plugin's own options: obfs=http, still
        f.write(text.replace('"obfs=http"', '"obfs=http;fast-open"'))
    master.signal(signal.SIGHUP)
    assert wait_for(lambda: plugin_pid(master) not in (None, first), 10.0), \
        master.output()[-2000:]
    assert "plugin settings changed: restarting obfs-server" in master.output()
    assert _echo_soon(_tcp(tport), timeout=10.0, seed=7), master.output()[-2000:]
    assert master.stop() == 0
    assert plugin_pid(master) is None
    echo.stop()


# ---- The SIP003 environment, privileges, stopping and giving up -------------------------------

FORWARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sip003_forward.py")


def _forward_server(**kw):
    """A reuseproxy server (2 workers) whose plugin is sip003_forward.py; returns (master, port,
    path of the plugin's report)."""
    import sys
    report = os.path.join(harness.TMPDIR, "sip003-%d.json" % free_port())
    port = free_port()
    cfg = harness.server_config(port, METHOD, PASSWORD, workers=2, plugin=sys.executable,
                                plugin_opts="server;x=1",
                                plugin_args=[FORWARD, report, "extra arg"])
    cfg.update(kw)
    master = reuseproxy(cfg)
    assert wait_for(lambda: os.path.exists(report), 10.0), master.output()[-2000:]
    import json
    with open(report) as f:
        return master, port, json.load(f), report


def test_plugin_gets_the_sip003_environment():
    master, port, rep, _ = _forward_server()
    env = rep["env"]
    assert env["SS_REMOTE_HOST"] == "127.0.0.1" and env["SS_REMOTE_PORT"] == str(port), env
    assert env["SS_LOCAL_HOST"] == "127.0.0.1", env
    lport = int(env["SS_LOCAL_PORT"])
    assert lport != port and harness.listening(lport), env  # the workers listen there
    assert env["SS_PLUGIN_OPTIONS"] == "server;x=1", env
    assert rep["argv"][1:] == ["extra arg"], rep["argv"]
    assert wait_for(lambda: "[plugin] sip003_forward: " in master.output(), 10.0), \
        master.output()[-2000:]
    # the workers' TCP slot sockets are on the loopback port, not the public one
    for w in harness.children_of(master.pid):
        if w == plugin_pid(master):
            continue
        inodes = harness.socket_inodes_of(w)
        ports = {int(c[1].rsplit(":", 1)[1], 16) for c in harness.proc_net_rows("tcp", "tcp6")
                 if c[3] == "0A" and int(c[9]) in inodes}
        assert ports == {lport}, "worker %d listens on %s" % (w, ports)


def _not_close_on_exec(pid):
    """pid's descriptors above stderr without close-on-exec (O_CLOEXEC, 02000000 octal, in
    /proc/PID/fdinfo's "flags", proc(5)), each with what it is."""
    found = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = [ln.split()[1] for ln in f if ln.startswith("flags:")][0]
            what = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue  # closed meanwhile
        if int(fd) > 2 and not int(flags, 8) & 0o2000000:
            found.append("%s -> %s" % (fd, what))
    return found


def test_plugin_inherits_no_descriptor_with_shared_store():
    """The plugin is exec'd by the master, and a binary upgrade execs the master itself: with
    shared_store set (the master and each worker hold a Redis connection, which hiredis opens
    without close-on-exec), the plugin has only stdin, stdout and stderr, and every other
    descriptor of the master and its workers is close-on-exec."""
    from test_shared_store import lacks_hiredis, start_redis
    if lacks_hiredis():
        raise harness.Skip("this build has no hiredis (configure --with-hiredis, libhiredis-dev)")
    _, rport = start_redis()
    # sleep(1) as the plugin: it opens nothing of its own, so what it holds was inherited
    cfg = harness.server_config(free_port(), METHOD, None, workers=2, plugin="sleep",
                                plugin_args=["600"], shared_store="redis://127.0.0.1:%d" % rport,
                                users=[{"name": "alice", "password": "alice-secret"}])
    master = reuseproxy(cfg, wait=False)  # the public port is the plugin's, and sleep's none
    # the master and both workers
    assert wait_for(lambda: master.output().count("shared_store: connected") >= 3, 20.0), \
        master.output()[-2000:]
    plugin = plugin_pid(master)
    assert plugin, "no plugin among the master's children"
    fds = sorted(int(fd) for fd in os.listdir("/proc/%d/fd" % plugin))
    assert fds == [0, 1, 2], "the plugin inherited %s" % [
        "%d -> %s" % (fd, os.readlink("/proc/%d/fd/%d" % (plugin, fd))) for fd in fds[3:]]
    for pid in [master.pid] + [w for w in harness.children_of(master.pid) if w != plugin]:
        leaks = _not_close_on_exec(pid)
        assert not leaks, "process %d keeps across exec: %s" % (pid, leaks)


def test_plugin_runs_as_user():
    """As the workers, the plugin gives root up for "user"."""
    if os.geteuid() != 0:
        raise harness.Skip("needs root to switch users")
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    master, tport, echo = _server_with_plugin("obfs-http", user="nobody")
    assert _echo_soon(_tcp(tport)), master.output()[-2000:]
    with open("/proc/%d/status" % plugin_pid(master)) as f:
        uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
    assert all(int(u) == nobody for u in uids), uids
    echo.stop()


def test_plugin_that_keeps_dying_is_given_up():
    # /bin/false: found in PATH, exits at once; restarts after 0.1, 0.2, 0.4, 0.8, 1.6 s
    cfg = harness.server_config(free_port(), METHOD, PASSWORD, workers=1, plugin="false")
    p = reuseproxy(cfg, wait=False)
    started = time.monotonic()
    assert p.wait(60) == 1, "the master did not give up: %s" % p.output()[-2000:]
    took = time.monotonic() - started
    out = p.output()
    assert "plugin false died 6 times in a row within 2 s of starting: giving up" in out, out
    assert out.count("plugin false started") == 6, out
    assert took >= 0.1 + 0.2 + 0.4 + 0.8 + 1.6, "restarted without backoff (%.2f s)" % took


def test_plugin_stopped_with_sigkill_when_it_ignores_sigterm():
    import sys
    cfg = harness.server_config(free_port(), METHOD, PASSWORD, workers=1, plugin=sys.executable,
                                plugin_args=["-c", "import signal, time; signal.signal("
                                             "signal.SIGTERM, signal.SIG_IGN); print('up', "
                                             "flush=True); time.sleep(120)"])
    p = reuseproxy(cfg, wait=False)
    assert wait_for(lambda: "[plugin] up" in p.output(), 10.0), p.output()[-2000:]
    pid = plugin_pid(p)
    p.signal(signal.SIGTERM)
    assert p.wait(30) == 0, p.output()[-2000:]
    assert "plugin still running 5 s after SIGTERM: killing it" in p.output()
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


# ---- UDP: directly, or through the plugin with "plugin_mode": "tcp_and_udp" ---------------------

def _udp_echo_ok(port, n=20, seed=0):
    """n byte-checked datagrams through the UDP path at 127.0.0.1:port, each retried a few
    times (UDP may drop); True when every one came back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        for i in range(n):
            data = harness.pattern(100 + i * 37, seed * 1000 + i)
            for _ in range(10):
                s.sendto(data, ("127.0.0.1", port))
                try:
                    if s.recv(65536) == data:
                        break
                except socket.timeout:
                    continue
            else:
                return False
        return True
    finally:
        s.close()


def _udp_bound_by(pid, port):
    inodes = harness.socket_inodes_of(pid)
    return any(int(c[1].rsplit(":", 1)[1], 16) == port and int(c[9]) in inodes
               for c in harness.proc_net_rows("udp", "udp6"))


def test_plugin_udp_goes_directly_without_tcp_and_udp():
    """Server role: the workers' UDP slot sockets stay on the public address, the plugin
    (obfs, TCP only) never sees UDP; a reuseproxy tunnel's UDP goes to the server directly."""
    _need("obfs-server", "obfs-local")
    uecho = harness.UdpEcho()
    port, tport = free_port(), free_port()
    server = reuseproxy(harness.server_config(port, METHOD, PASSWORD, workers=2,
                                              mode="tcp_and_udp", plugin="obfs-server",
                                              plugin_opts="obfs=http"))
    workers = [w for w in harness.children_of(server.pid) if w != plugin_pid(server)]
    assert workers and all(_udp_bound_by(w, port) for w in workers), \
        "the workers' UDP sockets are not on the public port"
    client = reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": port,
                         "password": PASSWORD, "method": METHOD, "local_port": tport,
                         "mode": "tcp_and_udp", "workers": 1, "plugin": "obfs-local",
                         "plugin_opts": "obfs=http;obfs-host=www.example.com",
                         "tunnel_address": "127.0.0.1:%d" % uecho.port}, name="tunnel")
    assert _udp_echo_ok(tport), "no UDP echo: %s" % client.output()[-1500:]
    uecho.stop()


def _forward_cfg(report, opts):
    import sys
    return {"plugin": sys.executable, "plugin_args": [FORWARD, report],
            "plugin_opts": opts, "plugin_mode": "tcp_and_udp", "mode": "tcp_and_udp"}


def _forwarded(report):
    try:
        with open(report + ".udp") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def test_plugin_udp_through_plugin_with_tcp_and_udp():
    """"plugin_mode": "tcp_and_udp" (a SIP003u plugin, here sip003_forward.py): on the server
    the workers' UDP moves to the loopback port behind the plugin; on a client the workers send
    UDP to the plugin's port. The plugin counts what it forwarded."""
    uecho = harness.UdpEcho()
    port, tport = free_port(), free_port()
    sreport = os.path.join(harness.TMPDIR, "udp-server-%d.json" % port)
    creport = os.path.join(harness.TMPDIR, "udp-client-%d.json" % port)
    cfg = harness.server_config(port, METHOD, PASSWORD, workers=2)
    cfg.update(_forward_cfg(sreport, "server"))
    server = reuseproxy(cfg)
    ccfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": port, "password": PASSWORD,
            "method": METHOD, "local_port": tport, "workers": 1,
            "tunnel_address": "127.0.0.1:%d" % uecho.port}
    ccfg.update(_forward_cfg(creport, "client"))
    client = reuseproxy(ccfg, name="tunnel")
    assert wait_for(lambda: _udp_echo_ok(tport), 10.0), \
        "no UDP echo: %s\n%s" % (server.output()[-1500:], client.output()[-1500:])
    assert _forwarded(creport) >= 20, "the client's UDP did not go through its plugin"
    assert _forwarded(sreport) >= 20, "the server's UDP did not come through its plugin"
    uecho.stop()


def test_plugin_binary_upgrade_hands_over():
    """SIGUSR2: the new master starts its own plugin, which gets the public port once the old
    master has handed over and stopped its plugin (obfs-server binds with SO_REUSEPORT at once;
    v2ray-plugin is restarted until the port is free); new connections then work."""
    for kind in ("obfs-http", "v2ray-ws"):
        _check_upgrade(kind)


def _check_upgrade(kind):
    import re
    master, tport, echo = _server_with_plugin(kind)
    assert _echo_soon(_tcp(tport)), master.output()[-2000:]
    old_plugin = plugin_pid(master)
    master.signal(signal.SIGUSR2)
    mm = wait_for(lambda: re.search(r"binary upgrade: started .* as (\d+)", master.output()), 10.0)
    assert mm, "no new master: %s" % master.output()[-2000:]
    new_pid = int(mm.group(1))
    try:
        assert master.wait(30) == 0, master.output()[-2000:]
        assert not os.path.exists("/proc/%d" % old_plugin) or \
            open("/proc/%d/stat" % old_plugin).read().split()[2] == "Z"

        class New:
            pid = new_pid
        assert wait_for(lambda: plugin_pid(New), 10.0), "the new master runs no plugin"
        assert _echo_soon(_tcp(tport), timeout=15.0, seed=9), master.output()[-3000:]
        assert os.path.exists("/proc/%d" % new_pid), "the new master gave up: %s" % \
            master.output()[-3000:]
    finally:
        harness.stop_master(new_pid, timeout=15.0)
    echo.stop()
