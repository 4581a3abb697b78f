"""test_ss_uri.py: SIP002 links end to end (issue 16): the URI a server prints with
--print-uri, imported by a local role with -s ss://... and by a tunnel with "server_url",
carries traffic; a bad URI stops the start with the reason."""
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


def test_bad_uri_stops_the_start():
    r = subprocess.run([h.BINARY, "--role", "local", "-l", str(h.free_port()),
                        "-s", "ss://YWVzLTI1Ni1nY206cHc@127.0.0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 1
    assert "not a SIP002 URI" in r.stderr.decode() and "no \":port\"" in r.stderr.decode(), \
        r.stderr.decode()
    rc, uri, err = _print_uri(h.server_config(h.free_port(), server="0.0.0.0"))
    assert rc == 1 and "wildcard address" in err, (rc, uri, err)
