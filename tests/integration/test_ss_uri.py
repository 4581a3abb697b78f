"""test_ss_uri.py: SIP002 links end to end (issue 16): the URI a server prints with
--print-uri, imported by a local role with -s ss://... and by a tunnel with "server_url",
carries traffic (also with a plugin: the URI names the client's end, which the local runs); a
bad URI stops the start with the reason."""
import subprocess

import harness as h


def _print_uri(cfg):
    r = subprocess.run([h.BINARY, "-c", h.write_config(cfg), "--print-uri"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return r.returncode, r.stdout.decode().strip(), r.stderr.decode()


def test_printed_uri_imported_by_local_and_tunnel():
    echo = h.TcpEcho()
    for method, password in (("aes-256-gcm", "uri-test-secret with space"),
                             ("chacha20-ietf-poly1305", "p@ss:w/rd+=?#%")):
        port = h.free_port()
        scfg = h.server_config(port, method=method, password=password)
        rc, uri, err = _print_uri(scfg)
        assert rc == 0 and uri.startswith("ss://") and uri.endswith("@127.0.0.1:%d" % port), \
            (rc, uri, err)
        h.reuseproxy(scfg, name="server")
        lport = h.free_port()
        h.reuseproxy({"role": "local", "local_address": "127.0.0.1", "local_port": lport,
                      "workers": 0}, ["-s", uri], name="local")
        data = h.pattern(5000)
        s = h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
        s.settimeout(30)
        s.sendall(data)
        assert h.recv_exact(s, len(data)) == data
        s.close()
        tport = h.free_port()
        h.reuseproxy({"role": "tunnel", "local_address": "127.0.0.1", "local_port": tport,
                      "workers": 0, "tunnel_address": "127.0.0.1:%d" % echo.port,
                      "server_url": uri}, name="tunnel")
        assert h.transfer("127.0.0.1", tport, data, timeout=30) == data


def test_printed_uri_with_plugin_imported_by_local():
    """A server behind simple-obfs prints a URI whose plugin parameter names the client's end
    (obfs-local;obfs=http, without the server's options); a local given that URI alone runs
    obfs-local, and its connections go through it (held by the plugin, to the server's port)."""
    import test_plugin
    test_plugin._need("obfs-server", "obfs-local")
    echo = h.TcpEcho()
    port = h.free_port()
    scfg = h.server_config(port, method="aes-256-gcm", password="uri-plugin-secret", workers=1,
                           plugin="obfs-server", plugin_opts="obfs=http")
    rc, uri, err = _print_uri(scfg)
    assert rc == 0 and uri.endswith("@127.0.0.1:%d/?plugin=obfs-local%%3Bobfs%%3Dhttp" % port), \
        (rc, uri, err)
    h.reuseproxy(scfg, name="server")
    lport = h.free_port()
    local = h.reuseproxy({"role": "local", "local_address": "127.0.0.1", "local_port": lport,
                          "workers": 1}, ["-s", uri], name="local")

    def connect():
        return h.socks5_connect("127.0.0.1", lport, "127.0.0.1", echo.port)
    assert test_plugin._echo_soon(connect), local.output()[-2000:]
    held = connect()
    held.settimeout(30)
    held.sendall(b"through the plugin")
    assert h.recv_exact(held, 18) == b"through the plugin"
    assert test_plugin._plugin_connects_to(local, port), "the connection bypassed obfs-local"
    held.close()
    echo.stop()


def test_bad_uri_stops_the_start():
    r = subprocess.run([h.BINARY, "--role", "local", "-l", str(h.free_port()),
                        "-s", "ss://YWVzLTI1Ni1nY206cHc@127.0.0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 1
    assert "not a SIP002 URI" in r.stderr.decode() and "no \":port\"" in r.stderr.decode(), \
        r.stderr.decode()
    rc, uri, err = _print_uri(h.server_config(h.free_port(), server="0.0.0.0"))
    assert rc == 1 and "wildcard address" in err, (rc, uri, err)


def _print_uri_on_a_terminal(cfg, *extra):
    """--print-uri with stdout on a pseudo-terminal: (exit status, text written)."""
    import os
    import pty
    import select
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([h.BINARY, "-c", h.write_config(cfg), "--print-uri"] + list(extra),
                             stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = None
        out = b""
        deadline = 200  # x 0.1 s
        while deadline > 0:
            deadline -= 1
            if not select.select([master], [], [], 0.1)[0]:
                if p.poll() is not None:
                    break
                continue
            try:
                d = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not d:
                break
            out += d
        rc = p.wait(timeout=20)
        p.stderr.close()
        return rc, out.decode().replace("\r\n", "\n")
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def test_print_uri_draws_a_qr_code_on_a_terminal_only():
    """On a terminal --print-uri adds the URI's QR code (libqrencode): an odd square of modules
    (21 + 4k plus a 4-module quiet zone each side) in UTF-8 half blocks, two rows a line, the
    quiet zone light. --no-qr, or stdout not a terminal: the URI alone."""
    r = subprocess.run([h.BINARY, "--version"], stdout=subprocess.PIPE, timeout=20)
    if b"QR codes (--print-uri): libqrencode" not in r.stdout:
        raise h.Skip("this build has no libqrencode (configure --with-qrencode, "
                     "Debian libqrencode-dev)")
    cfg = h.server_config(h.free_port(), method="aes-256-gcm", password="qr-test-secret")
    rc, uri, err = _print_uri(cfg)
    assert rc == 0 and "\n" not in uri and uri.startswith("ss://"), (rc, uri, err)
    rc, out = _print_uri_on_a_terminal(cfg, "--no-qr")
    assert rc == 0 and out == uri + "\n", (rc, out)
    rc, out = _print_uri_on_a_terminal(cfg)
    lines = out.split("\n")
    assert rc == 0 and lines[0] == uri and lines[-1] == "", (rc, out[:300])
    rows = [ln.replace("\x1b[97;40m", "").replace("\x1b[0m", "") for ln in lines[1:-1]]
    size = len(rows[0])
    assert size % 4 == 1 and (size - 8 - 21) % 4 == 0 and 29 <= size <= 185, size
    assert len(rows) == (size + 1) // 2, (len(rows), size)
    assert all(len(row) == size and set(row) <= set(" \u2580\u2584\u2588") for row in rows), rows
    # the quiet zone: two lines of full blocks on top, four columns of them left and right
    assert rows[0] == rows[1] == "\u2588" * size, rows[:2]
    assert all(row[:4] == row[-4:] == "\u2588" * 4 for row in rows[:-1]), rows
    # the top-left finder pattern right after the quiet zone: its dark top row over a row dark
    # at both ends and light between (ISO/IEC 18004 section 6.3.3)
    assert rows[2][4:11] == " " + "\u2584" * 5 + " ", rows[2]
