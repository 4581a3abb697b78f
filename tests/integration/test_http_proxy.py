"""test_http_proxy.py: the local role's port as an HTTP proxy, next to SOCKS5 and SOCKS4, with
local_users (issue 16). curl is the client (-x http://, --proxy-basic, --socks5 --proxy-user,
--socks4a) and a raw CONNECT from Python; the path is a reuseproxy local -> a reuseproxy or
ss-server server -> a local HTTP server (python's http.server) or an echo server. Bad input
(an 8 KiB request line, a header flood, wrong credentials, a 1 KiB SOCKS4 user id) is each
refused with its protocol's answer, closed, counted in local_refused_total, and nothing reaches
the target."""
import http.server
import os
import shutil
import socket
import struct
import subprocess
import threading
import urllib.request

import harness as h

M = "aes-256-gcm"
PW = "http-proxy-integration-secret"
USERS = [{"name": "alice", "password": "wonder-land"}]


class Origin:
    """A plain HTTP server on loopback that answers every GET with its path and remembers each
    request's line and headers."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen.append((self.requestline, dict(self.headers.items())))
                body = ("origin saw %s" % self.path).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def need_curl():
    if not shutil.which("curl"):
        raise h.Skip("curl is not installed (Debian: apt-get install curl)")


def start_pair(server="reuseproxy", **local_kw):
    """A server (reuseproxy, or Debian's ss-server) and a reuseproxy local in front of it.
    Returns (local port, metrics port)."""
    sport = h.free_port()
    if server == "reuseproxy":
        h.reuseproxy(h.server_config(sport, method=M, password=PW))
    else:
        if not shutil.which("ss-server"):
            raise h.Skip("ss-server is not installed (Debian: shadowsocks-libev)")
        h.ss_libev("ss-server", ["-s", "127.0.0.1", "-p", str(sport), "-k", PW, "-m", M])
        h.wait_tcp("127.0.0.1", sport)
    lport, mport = h.free_port(), h.free_port()
    cfg = {"role": "local", "server": "127.0.0.1", "server_port": sport,
           "local_address": "127.0.0.1", "local_port": lport, "password": PW, "method": M,
           "timeout": 30, "workers": 1, "metrics_address": "127.0.0.1:%d" % mport}
    cfg.update(local_kw)
    h.reuseproxy(cfg, name="local")
    h.wait_tcp("127.0.0.1", mport)
    return lport, mport


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def refused_count(mport):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
        text = r.read().decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("reuseproxy_local_refused_total{"))


def test_http_proxy_curl_get_rewritten_to_origin_form():
    need_curl()
    origin = Origin()
    try:
        lport, _ = start_pair()
        url = "http://127.0.0.1:%d/hello?x=1" % origin.port
        rc, out, err = curl("-x", "http://127.0.0.1:%d" % lport, "-H", "Connection: X-Drop",
                            "-H", "X-Drop: secret", "-H", "X-Keep: 1", url)
        assert rc == 0, err
        assert out == "origin saw /hello?x=1", out
        line, headers = origin.seen[0]
        assert line == "GET /hello?x=1 HTTP/1.1", line
        names = {k.lower() for k in headers}
        assert "x-keep" in names and "host" in names, headers
        for hop in ("proxy-connection", "x-drop", "keep-alive"):
            assert hop not in names, headers
        assert headers.get("Connection") == "close", headers
    finally:
        origin.stop()


def test_http_proxy_keep_alive_second_request_same_and_other_host():
    """One curl run, three URLs on two hosts: the proxy answers one request per connection
    (Connection: close), curl opens the next, every answer comes from the right origin."""
    need_curl()
    a, b = Origin(), Origin()
    try:
        lport, _ = start_pair()
        urls = ["http://127.0.0.1:%d/one" % a.port, "http://127.0.0.1:%d/two" % a.port,
                "http://localhost:%d/three" % b.port]
        rc, out, err = curl("-x", "http://127.0.0.1:%d" % lport, *urls)
        assert rc == 0, err
        assert out == "origin saw /oneorigin saw /twoorigin saw /three", out
        assert [s[0] for s in a.seen] == ["GET /one HTTP/1.1", "GET /two HTTP/1.1"], a.seen
        assert [s[0] for s in b.seen] == ["GET /three HTTP/1.1"], b.seen
    finally:
        a.stop()
        b.stop()


def test_http_connect_raw_through_ss_server():
    echo = h.TcpEcho()
    try:
        lport, _ = start_pair(server="ss-server")
        s = socket.create_connection(("127.0.0.1", lport), timeout=10)
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % echo.port)
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(1)
            assert d, "closed before the CONNECT was answered: %r" % head
            head += d
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n", head
        data = h.pattern(100000)
        s.sendall(data)
        assert h.recv_exact(s, len(data)) == data
        s.close()
    finally:
        echo.stop()


def test_http_proxy_basic_auth_with_curl():
    need_curl()
    origin = Origin()
    try:
        lport, mport = start_pair(local_users=USERS)
        proxy = "http://127.0.0.1:%d" % lport
        url = "http://127.0.0.1:%d/secret" % origin.port
        rc, out, err = curl("-x", proxy, "--proxy-basic", "--proxy-user", "alice:wonder-land",
                            url)
        assert rc == 0 and out == "origin saw /secret", (rc, out, err)
        assert "proxy-authorization" not in {k.lower() for k in origin.seen[0][1]}
        for user in (["--proxy-user", "alice:wrong"], []):
            rc, out, err = curl("-x", proxy, "--proxy-basic", "-o", "/dev/null", "-w",
                                "%{http_code}", *(user + [url]))
            assert out == "407", (rc, out, err)
        assert len(origin.seen) == 1, origin.seen
        assert refused_count(mport) == 2
    finally:
        origin.stop()


def test_socks5_username_password_with_curl():
    need_curl()
    origin = Origin()
    try:
        lport, mport = start_pair(local_users=USERS)
        url = "http://127.0.0.1:%d/s5" % origin.port
        rc, out, err = curl("--socks5", "127.0.0.1:%d" % lport, "--proxy-user",
                            "alice:wonder-land", url)
        assert rc == 0 and out == "origin saw /s5", (rc, out, err)
        rc, out, err = curl("--socks5", "127.0.0.1:%d" % lport, "--proxy-user", "alice:nope", url)
        assert rc != 0, out
        rc, out, err = curl("--socks5", "127.0.0.1:%d" % lport, url)  # offers no auth
        assert rc != 0, out
        assert len(origin.seen) == 1, origin.seen
        assert refused_count(mport) == 2
    finally:
        origin.stop()


def test_socks4_and_socks4a_with_curl():
    need_curl()
    origin = Origin()
    try:
        lport, _ = start_pair()
        for flag, host in (("--socks4", "127.0.0.1"), ("--socks4a", "localhost")):
            url = "http://%s:%d/%s" % (host, origin.port, flag.strip("-"))
            rc, out, err = curl(flag, "127.0.0.1:%d" % lport, url)
            assert rc == 0 and out == "origin saw /" + flag.strip("-"), (flag, rc, out, err)
    finally:
        origin.stop()


def answer_then_eof(lport, data, timeout=15):
    """Sends data, returns everything the port answers until it closes (b"" if it reset)."""
    s = socket.create_connection(("127.0.0.1", lport), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return got


def test_bad_input_refused_counted_nothing_relayed():
    echo = h.TcpEcho()
    try:
        lport, mport = start_pair(local_users=USERS)
        line = b"GET http://127.0.0.1:%d/" % echo.port + b"x" * 9000 + b" HTTP/1.1\r\n\r\n"
        got = answer_then_eof(lport, line)
        assert got.startswith(b"HTTP/1.1 414 "), got[:100]
        flood = (b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % echo.port + b"X-Flood: 1\r\n" * 200
                 + b"\r\n")
        got = answer_then_eof(lport, flood)
        assert got.startswith(b"HTTP/1.1 431 "), got[:100]
        big = (b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % echo.port
               + (b"X-Big: " + b"v" * 4000 + b"\r\n") * 5 + b"\r\n")
        got = answer_then_eof(lport, big)
        assert got.startswith(b"HTTP/1.1 431 "), got[:100]
        # RFC 1929: wrong password -> VER 1 STATUS 1, then close
        auth = b"\x05\x01\x02" + b"\x01\x05alice\x05wrong"
        connect = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", echo.port)
        got = answer_then_eof(lport, auth + connect)
        assert got == b"\x05\x02\x01\x01", got
        # SOCKS4 with a 1 KiB user id: rejected (0x5B), then close
        s4 = b"\x04\x01" + struct.pack("!H", echo.port) + b"\x7f\x00\x00\x01" + b"u" * 1024 + b"\0"
        got = answer_then_eof(lport, s4)
        assert got == b"\x00\x5b" + b"\0" * 6, got
        assert h.wait_for(lambda: refused_count(mport) == 5, 10), refused_count(mport)
        assert echo.connections == 0, "a refused request reached the target"
    finally:
        echo.stop()


def test_connect_to_target_the_server_refuses_relays_nothing():
    """The local role's ACL only routes (bypass or proxy, acl.h): the refusal of a target comes
    from the server (here block_private, a loopback target). The local has answered 200 once the
    server was reached; the server then closes without relaying anything."""
    echo = h.TcpEcho()
    try:
        sport, lport = h.free_port(), h.free_port()
        h.reuseproxy(h.server_config(sport, method=M, password=PW, block_private=True))
        h.reuseproxy({"role": "local", "server": "127.0.0.1", "server_port": sport,
                      "local_address": "127.0.0.1", "local_port": lport, "password": PW,
                      "method": M, "timeout": 30, "workers": 0}, name="local")
        got = answer_then_eof(lport, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nhello" % echo.port)
        assert got == b"HTTP/1.1 200 Connection established\r\n\r\n", got
        assert echo.connections == 0
    finally:
        echo.stop()


def test_connect_to_target_the_local_acl_refuses_answered_at_once():
    """The local role's ACL [outbound_block_list] (acl.h) refuses a target before any server is
    asked: HTTP CONNECT gets 403 with a short body, SOCKS5 REP 2 ("connection not allowed by
    ruleset", RFC 1928 section 6), SOCKS4 0x5B; each counted, nothing relayed, the server never
    contacted. A target outside the list still goes through."""
    echo = h.TcpEcho()
    fake = h.TcpEcho(mode="sink")  # stands for the server: counts whether it was contacted
    try:
        acl = os.path.join(h.TMPDIR, "local-block.acl")
        with open(acl, "w") as f:
            f.write("[outbound_block_list]\n127.0.0.0/8\n^blocked\\.test$\n")
        lport, mport = h.free_port(), h.free_port()
        h.reuseproxy({"role": "local", "server": "127.0.0.1", "server_port": fake.port,
                      "local_address": "127.0.0.1", "local_port": lport, "password": PW,
                      "method": M, "timeout": 30, "workers": 1, "acl": acl,
                      "metrics_address": "127.0.0.1:%d" % mport}, name="local")
        h.wait_tcp("127.0.0.1", mport)
        got = answer_then_eof(lport, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nhello" % echo.port)
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n"), got
        assert b"Content-Length: %d\r\n" % len(body) in head and b"access list" in body, got
        got = answer_then_eof(lport, b"GET http://blocked.test/ HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 403 "), got[:100]
        connect = b"\x05\x01\x00\x03\x0cblocked.test" + struct.pack("!H", echo.port)
        got = answer_then_eof(lport, b"\x05\x01\x00" + connect + b"hello")
        assert got == b"\x05\x00" + b"\x05\x02\x00\x01" + b"\0" * 6, got
        s4 = b"\x04\x01" + struct.pack("!H", echo.port) + b"\x7f\x00\x00\x01" + b"u\0hello"
        got = answer_then_eof(lport, s4)
        assert got == b"\x00\x5b" + b"\0" * 6, got
        assert h.wait_for(lambda: refused_count(mport) == 4, 10), refused_count(mport)
        assert echo.connections == 0 and fake.connections == 0, "a refused request was relayed"
        # not in the list: on to the server as before
        s = socket.create_connection(("127.0.0.1", lport), timeout=10)
        s.sendall(b"CONNECT 192.0.2.1:80 HTTP/1.1\r\n\r\n")
        assert h.wait_for(lambda: fake.connections == 1, 10), "the server was not contacted"
        s.close()
    finally:
        fake.stop()
        echo.stop()


def test_protocol_socks_refuses_http_and_http_refuses_socks():
    echo = h.TcpEcho()
    try:
        lport, _ = start_pair(protocol="socks")
        got = answer_then_eof(lport, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % echo.port)
        assert got == b"", got
        s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
        s.sendall(b"ping")
        assert h.recv_exact(s, 4) == b"ping"
        s.close()
        lport, _ = start_pair(protocol="http")
        got = answer_then_eof(lport, b"\x05\x01\x00")
        assert got == b"", got
    finally:
        echo.stop()


def test_open_local_port_warns_at_check():
    port = h.free_port()
    cfg = {"role": "local", "server": "127.0.0.1", "server_port": h.free_port(),
           "local_address": "0.0.0.0", "local_port": port, "password": PW, "method": M}
    path = h.write_config(cfg)
    r = subprocess.run([h.BINARY, "-c", path, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"anyone on the network can use it" in r.stderr, r.stderr
    cfg["local_users"] = USERS
    path = h.write_config(cfg)
    r = subprocess.run([h.BINARY, "-c", path, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0 and b"anyone on the network" not in r.stderr, r.stderr
