"""test_check.py: `--check` and a real start agree. Each case is a configuration (file and
command line); `reuseproxy --check` and a start on the very same input must both accept it
(the start then listens) or both refuse it with the same message."""
import subprocess

import harness

# How long a refused start may take to exit, and an accepted one to listen.
EXIT_TIMEOUT = 10.0


def _error_line(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("reuseproxy: ")]
    return lines[0] if lines else None


def _check(path, args):
    r = subprocess.run([harness.BINARY, "-c", path, "--check"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=EXIT_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _agree(cfg, args=(), accepted=True, contains=None):
    """Runs --check, then a start, on cfg and args; asserts they agree and returns the
    refusal message (None when accepted)."""
    path = harness.write_config(cfg)
    rc, out, err = _check(path, args)
    p = harness.Proc([harness.BINARY, "-c", path] + list(args), "start")
    if rc == 0:
        assert "configuration OK" in out, out
        host = cfg.get("server", "127.0.0.1")
        port = cfg["server_port"] if cfg.get("role", "server") == "server" else cfg["local_port"]
        ok = harness.wait_for(lambda: harness.tcp_open(host, port) or not p.alive(),
                              EXIT_TIMEOUT, 0.05)
        assert ok and p.alive(), ("--check said OK but the start failed: %s"
                                  % p.output()[-1500:])
        assert accepted, "expected a refusal, both accepted"
        p.stop()
        return None
    status = p.wait(EXIT_TIMEOUT)
    assert status is not None, "--check refused (%s) but the start is running" % err.strip()
    assert status != 0, "--check refused but the start exited with 0"
    want, got = _error_line(err), _error_line(p.output())
    assert want and want == got, "--check said %r, the start said %r" % (want, got)
    assert not accepted, "expected acceptance, both refused: %s" % want
    if contains:
        assert contains in want, "%r not in %r" % (contains, want)
    return want


def _server(**kw):
    cfg = harness.server_config(harness.free_port(), **kw)
    return cfg


def test_check_and_start_accept_a_plain_server():
    _agree(_server())


def test_check_and_start_accept_a_method_in_capitals():
    _agree(_server(method="AES-256-GCM"))


def test_check_and_start_refuse_metrics_host_name_on_command_line():
    mport = harness.free_port()
    msg = _agree(_server(workers=1), ["--metrics", "localhost:%d" % mport], accepted=False,
                 contains="\"metrics_address\": expected an IP address and a port")
    assert "localhost:%d" % mport in msg


def test_check_and_start_refuse_metrics_host_name_in_file():
    cfg = _server(workers=1, metrics_address="localhost:%d" % harness.free_port())
    msg = _agree(cfg, accepted=False, contains="\"metrics_address\": expected an IP address")
    # FILE:LINE:COLUMN, as every message about a key read from the file
    assert msg.split(": ", 2)[1].count(":") >= 2, msg


def test_check_and_start_accept_metrics_ip_literal():
    _agree(_server(workers=1), ["--metrics", "127.0.0.1:%d" % harness.free_port()])


def test_check_and_start_refuse_bad_nameserver():
    _agree(_server(nameserver="not-an-ip"), accepted=False, contains="\"nameserver\": expected")


def test_check_and_start_refuse_bad_base64_key():
    cfg = _server()
    del cfg["password"]
    cfg["key"] = "not base64!"
    _agree(cfg, accepted=False, contains="\"key\": expected base64")


def test_check_and_start_refuse_sip022_password_of_wrong_length():
    cfg = _server(method="2022-blake3-aes-256-gcm", password="AAECAwQFBgcICQoLDA0ODw==")
    _agree(cfg, accepted=False,
           contains="\"password\": decodes to 16 bytes, but 2022-blake3-aes-256-gcm needs a key "
                    "of 32 bytes")


def test_genkey_prints_a_key_of_the_method():
    import base64
    for method, length in (("2022-blake3-aes-128-gcm", 16), ("2022-BLAKE3-aes-256-gcm", 32),
                           ("2022-blake3-chacha20-poly1305", 32)):
        r = subprocess.run([harness.BINARY, "--genkey", method], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=EXIT_TIMEOUT, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        key = r.stdout.decode().strip()
        assert len(base64.b64decode(key, validate=True)) == length, key
    r = subprocess.run([harness.BINARY, "--genkey", "rc4-md5"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=EXIT_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and b"--genkey: expected one of" in r.stderr


def test_check_and_start_refuse_plugin_key():
    _agree(_server(plugin="obfs-server"), accepted=False,
           contains="\"plugin\": plugins are not supported yet")


def test_check_and_start_refuse_tunnel_address_without_port():
    cfg = {"server": "127.0.0.1", "server_port": harness.free_port(), "password": "x",
           "method": "aes-256-gcm", "role": "tunnel", "local_port": harness.free_port(),
           "tunnel_address": "8.8.8.8", "workers": 0}
    _agree(cfg, accepted=False, contains="\"tunnel_address\": expected")


def test_check_and_start_accept_a_tunnel():
    cfg = {"server": "127.0.0.1", "server_port": harness.free_port(), "password": "x",
           "method": "aes-256-gcm", "role": "tunnel", "local_port": harness.free_port(),
           "tunnel_address": "example.com:53", "workers": 0}
    _agree(cfg)


def test_check_and_start_refuse_bad_local_address():
    cfg = {"server": "127.0.0.1", "server_port": harness.free_port(), "password": "x",
           "method": "aes-256-gcm", "role": "local", "local_port": harness.free_port(),
           "local_address": "127.0.0.1:80", "workers": 0}
    _agree(cfg, accepted=False, contains="\"local_address\": expected an IP address or a host")
