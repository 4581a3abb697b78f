"""test_acl.py: shadowsocks-libev ACL files with libev's meaning (issue 13 item 7). A server
refuses clients by address ([reject_all] + [white_list], [accept_all] + [black_list]); a local or
tunnel role connects to [bypass_list] targets directly and sends [proxy_list] ones through the
server."""
import os
import shutil
import socket

import harness as h

M = "aes-256-gcm"
PW = "acl-integration-secret"


def acl_file(text, name="rules.acl"):
    path = os.path.join(h.TMPDIR, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_server(acl_text):
    port = h.free_port()
    h.reuseproxy(h.server_config(port, method=M, password=PW, acl=acl_file(acl_text)))
    return port


def start_client(role, server_port, acl_text=None, **kw):
    lport = h.free_port()
    cfg = {"role": role, "server": "127.0.0.1", "server_port": server_port,
           "local_address": "127.0.0.1", "local_port": lport, "password": PW, "method": M,
           "timeout": 30, "workers": 0}
    if acl_text is not None:
        cfg["acl"] = acl_file(acl_text, "client.acl")
    cfg.update(kw)
    h.reuseproxy(cfg, name=role)
    return lport


def echo_once(s, data=b"through the acl"):
    """Sends data and returns what comes back before EOF, at most len(data) bytes; b"" when the
    path was closed or reset."""
    s.settimeout(10)
    got = b""
    try:
        s.sendall(data)
        while len(got) < len(data):
            d = s.recv(len(data) - len(got))
            if not d:
                break
            got += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return got


# A started tunnel is probed once (harness.wait_tcp), and that probe is relayed like any client:
# so tests count target connections only where none may happen at all.
def tunnel_roundtrip(server_port, echo):
    tport = start_client("tunnel", server_port, tunnel_address="127.0.0.1:%d" % echo.port)
    return echo_once(socket.create_connection(("127.0.0.1", tport), timeout=10))


def libev_tunnel_roundtrip(server_port, echo):
    """The same through Debian's ss-tunnel, when installed."""
    tport = h.free_port()
    h.ss_libev("ss-tunnel", ["-s", "127.0.0.1", "-p", str(server_port), "-l", str(tport),
                             "-k", PW, "-m", M, "-L", "127.0.0.1:%d" % echo.port])
    h.wait_tcp("127.0.0.1", tport)
    return echo_once(socket.create_connection(("127.0.0.1", tport), timeout=10))


def test_server_reject_all_serves_only_the_white_list():
    echo = h.TcpEcho()
    refused = start_server("[reject_all]\n[white_list]\n10.0.0.0/8\n2001:db8::/32\n")
    assert tunnel_roundtrip(refused, echo) == b"", "a client outside the white list was served"
    if shutil.which("ss-tunnel"):
        assert libev_tunnel_roundtrip(refused, echo) == b"", "ss-tunnel's client was served"
    else:
        print("  ss-tunnel not installed: checked with reuseproxy's tunnel only")
    assert echo.connections == 0, "the refused clients reached the target"
    served = start_server("[reject_all]\n[white_list]\n127.0.0.0/8\n")
    assert tunnel_roundtrip(served, echo) == b"through the acl"
    echo.stop()


def test_server_accept_all_refuses_the_black_list():
    echo = h.TcpEcho()
    refused = start_server("# comment\n[accept_all]\n[black_list]\n  127.0.0.1  # this host\n")
    assert tunnel_roundtrip(refused, echo) == b"", "a black-listed client was served"
    assert echo.connections == 0
    # Without the header the lines still form the black list, as in libev.
    refused = start_server("127.0.0.1\n")
    assert tunnel_roundtrip(refused, echo) == b""
    served = start_server("[accept_all]\n[black_list]\n127.0.0.2\n")
    assert tunnel_roundtrip(served, echo) == b"through the acl"
    echo.stop()


def test_local_bypass_list_connects_directly():
    echo = h.TcpEcho()
    fake = h.TcpEcho()  # stands for the server: counts whether it was contacted
    lport = start_client("local", fake.port, "[proxy_all]\n[bypass_list]\n127.0.0.1\n")
    s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
    assert echo_once(s) == b"through the acl"
    tport = start_client("tunnel", fake.port, "[bypass_list]\n127.0.0.0/8\n",
                         tunnel_address="127.0.0.1:%d" % echo.port)
    assert echo_once(socket.create_connection(("127.0.0.1", tport), timeout=10)) == \
        b"through the acl"
    assert fake.connections == 0, "the server was contacted for a bypassed target"
    fake.stop()
    echo.stop()


def test_local_proxy_list_goes_through_the_server():
    echo = h.TcpEcho()
    fake = h.TcpEcho(mode="sink")  # stands for the server: counts whether it was contacted
    lport = start_client("local", fake.port, "[bypass_all]\n[proxy_list]\n127.0.0.1\n")
    s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
    s.sendall(b"through the acl")
    assert h.wait_for(lambda: fake.connections == 1, 10), "the server was not contacted"
    s.close()
    # (the local role opens nothing before a SOCKS5 request, so this counts ours)
    assert echo.connections == 0, "a proxy-listed target was reached directly"
    fake.stop()
    # And through a real server, end to end.
    sport = start_server("[accept_all]\n")
    lport = start_client("local", sport, "[bypass_all]\n[proxy_list]\n127.0.0.1\n")
    s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
    assert echo_once(s) == b"through the acl"
    echo.stop()


def socks5_reply(lport, addr, port):
    """A SOCKS5 CONNECT (no auth) to addr (the ATYP and address bytes); returns the REP code,
    or None when the port closed without one."""
    s = socket.create_connection(("127.0.0.1", lport), timeout=10)
    try:
        s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00" + addr + port.to_bytes(2, "big"))
        got = h.recv_exact(s, 12)
        assert got[:2] == b"\x05\x00", got
        return got[3]
    except (ConnectionError, AssertionError, OSError):
        return None
    finally:
        s.close()


def test_local_outbound_block_list_refuses_at_once():
    """A local role's [outbound_block_list] refuses a target before it is routed, with SOCKS5
    REP 2 (connection not allowed by ruleset): an IP literal, a name rule, and a bypassed name
    whose resolved address is blocked. Nothing reaches the target or the server."""
    echo = h.TcpEcho()
    fake = h.TcpEcho(mode="sink")  # stands for the server: counts whether it was contacted
    lport = start_client("local", fake.port, "[bypass_list]\n^localhost$\n"
                         "[outbound_block_list]\n127.0.0.0/8\n::1\n^blocked\\.test$\n")
    ip = b"\x01\x7f\x00\x00\x01"
    assert socks5_reply(lport, ip, echo.port) == 2
    assert socks5_reply(lport, b"\x03\x0cblocked.test", echo.port) == 2
    assert socks5_reply(lport, b"\x03\x09localhost", echo.port) == 2
    assert echo.connections == 0, "a blocked target was reached"
    assert fake.connections == 0, "the server was asked for a blocked target"
    fake.stop()
    echo.stop()


def test_check_reports_the_mode_and_refuses_a_bad_line():
    import subprocess
    port = h.free_port()

    def check(text):
        cfg = h.server_config(port, method=M, password=PW, acl=acl_file(text))
        return subprocess.run([h.BINARY, "-c", h.write_config(cfg), "--check"],
                              capture_output=True, text=True, timeout=30)

    r = check("[reject_all]\n[white_list]\n10.0.0.0/8\n")
    assert r.returncode == 0, r.stderr
    assert "mode reject_all: serves only white-listed clients" in r.stdout, r.stdout
    assert "configuration OK" in r.stdout
    r = check("[bypass_list]\n192.0.2.1\n")
    assert r.returncode == 0, r.stderr
    assert "filter clients by address" in r.stderr, r.stderr
    r = check("[reject_all]\n[white_list]\n10.0.0.0/8\n10.0.0.0/33\n")
    assert r.returncode != 0, "an invalid line passed --check"
    assert "rules.acl:4: invalid address or CIDR '10.0.0.0/33'" in r.stderr, r.stderr
    assert "configuration OK" not in r.stdout
