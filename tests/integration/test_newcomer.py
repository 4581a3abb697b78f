"""test_newcomer.py: what a new user meets first (issue 13, items 9, 11 and 12): the command
line's usage and hints, settings the role ignores named at start and in --check, a truncated
file's position, and the documentation's example passwords refused where others can reach
them. Every case runs the real binary; a start is stopped as soon as it has said its piece."""
import subprocess

import harness

# How long a command that should exit at once may take (generous: the machine is loaded).
EXIT_TIMEOUT = 20.0


def _run(args):
    r = subprocess.run([harness.BINARY] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=EXIT_TIMEOUT, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _check(cfg, args=()):
    return _run(["-c", harness.write_config(cfg), "--check"] + list(args))


def _start_output(cfg, args, want):
    """Starts reuseproxy on cfg and args (one process) until it logs want or listens; returns
    what it logged."""
    p = harness.reuseproxy(cfg, args)
    try:
        harness.wait_for(lambda: want in p.output(), EXIT_TIMEOUT, 0.05)
        return p.output()
    finally:
        p.stop()


def _local(servers, **kw):
    cfg = {"role": "local", "server": servers, "server_port": harness.free_port(),
           "local_address": "127.0.0.1", "local_port": harness.free_port(),
           "password": "integration-secret", "method": "aes-256-gcm", "workers": 0}
    cfg.update(kw)
    return cfg


def test_local_role_uses_every_server_in_check_and_at_start():
    """Several servers are no longer "ignored" (issue 16, failover): --check is silent about
    them, and a start probes each, naming one that does not answer."""
    cfg = _local(["127.0.0.1", "127.0.0.2", "127.0.0.3"], server_check_interval=1)
    rc, out, err = _check(cfg)
    assert rc == 0 and "configuration OK" in out, (rc, out, err)
    assert "WARN" not in err and "ignored" not in err, err
    want = "server 127.0.0.2:%d does not answer its probe" % cfg["server_port"]
    assert want in _start_output(cfg, [], want)


def test_tunnel_role_takes_every_server_given_with_s():
    cfg = _local("127.0.0.1", role="tunnel", tunnel_address="127.0.0.1:9")
    rc, out, err = _check(cfg, ["-s", "127.0.0.1", "-s", "127.0.0.2"])
    assert rc == 0 and "WARN" not in err, err


def test_single_server_says_nothing():
    rc, out, err = _check(_local("127.0.0.1"))
    assert rc == 0 and "WARN" not in err, err


def test_server_role_names_local_options_it_ignores():
    cfg = harness.server_config(harness.free_port())
    rc, out, err = _check(cfg, ["-l", "1080", "-b", "127.0.0.1", "-L", "127.0.0.1:53"])
    assert rc == 0 and "configuration OK" in out, (rc, out, err)
    for opt in ("-l", "-b", "-L"):
        assert "%s: ignored in the server role" % opt in err, err
    cfg["local_port"] = 1080
    out = _start_output(cfg, [], "\"local_port\": ignored in the server role")
    assert "\"local_port\": ignored in the server role, which listens on \"server_port\"" in out


def test_truncated_file_reports_a_one_based_column():
    path = harness.write_config({})
    with open(path, "w") as f:
        f.write('{\n  "server": "127.0.0.1",\n  "server_port": 8488,\n')
    rc, out, err = _run(["-c", path, "--check"])
    assert rc == 1, (rc, out, err)
    assert "reuseproxy: %s:3:22: invalid JSON: string or '}' expected near end of file" % path \
        in err, err


def test_no_arguments_prints_the_usage():
    rc, out, err = _run([])
    assert rc == 1, (rc, out, err)
    assert out == "", out
    assert err.startswith("usage: reuseproxy [-c FILE] [options]\n"), err
    assert "man reuseproxy.json" in err, err


def test_unknown_option_gives_one_hint():
    rc, out, err = _run(["--frobnicate"])
    assert rc == 1, (rc, out, err)
    assert err == ("reuseproxy: unknown option \"--frobnicate\"\n"
                   "Try 'reuseproxy --help' for help.\n"), err


def test_help_points_at_the_installed_manual():
    rc, out, err = _run(["--help"])
    assert rc == 0 and err == "", (rc, err)
    assert "man reuseproxy (options" in out and "man reuseproxy.json" in out, out
    assert "docs/CONFIG.md" not in out, out


def test_bad_tag_log_says_what_it_most_likely_means():
    import os
    import socket
    port = harness.free_port()
    p = harness.reuseproxy(harness.server_config(port))
    try:
        # what a client with another password sends looks, to the server, like random bytes
        s = socket.create_connection(("127.0.0.1", port), timeout=EXIT_TIMEOUT)
        s.sendall(os.urandom(200))
        want = "bad tag (wrong password or method, or a probe) from 127.0.0.1:"
        assert harness.wait_for(lambda: want in p.output(), EXIT_TIMEOUT, 0.05), p.output()
        s.close()
    finally:
        p.stop()


def _readme():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "README.md")) as f:
        return f.read()


def test_example_passwords_refused_where_others_can_connect():
    port = str(harness.free_port())
    for password in ("SECRET", "your-password", "CHANGE-ME", "barfoo!", "$PASSWORD"):
        rc, out, err = _run(["-s", "0.0.0.0", "-p", port, "-k", password, "-m", "aes-256-gcm",
                             "--check"])
        assert rc == 1, (password, rc, out, err)
        assert ("reuseproxy: command line: the password \"%s\" is a placeholder, and reuseproxy "
                "would listen on 0.0.0.0" % password.replace("\\", "\\\\")) in err, err
    # the README's command copied without setting $PASSWORD: the shell passes ""
    rc, out, err = _run(["-s", "0.0.0.0", "-p", port, "-k", "", "-m", "aes-256-gcm", "--check"])
    assert rc == 1 and "reuseproxy: -k: expected a non-empty value, got \"\"" in err, err


def test_readme_examples_use_no_literal_password():
    import re
    import shlex
    for line in _readme().splitlines():
        if not line.startswith("reuseproxy ") or " -k " not in line:
            continue
        args = shlex.split(line.split("#")[0], posix=False)
        password = args[args.index("-k") + 1]
        # a literal would be copied as is; the examples take it from a variable
        assert password.strip('"').startswith("$"), line
