"""test_master_failure.py: the master under failure (issues 13 and 20): bursts of SIGHUP, reloads
whose new workers cannot start, failed forks, and workers left behind by a dead master. The rule
under test: whatever fails, the master keeps serving with what worked, keeps answering its
signals, and says what is wrong. Every loop is bounded in count and time."""
import json
import os
import signal
import socket
import time

import harness as h

M = "aes-128-gcm"
PW = "master-failure-secret"


def start_master(workers=2, env=None, **kw):
    port = h.free_port()
    cfg = h.server_config(port, method=M, password=PW, workers=workers, **kw)
    p = h.reuseproxy(cfg, env=env)
    p.port, p.cfg = port, cfg
    assert h.wait_for(lambda: len(h.children_of(p.pid)) == workers, 10), \
        "expected %d workers, have %r" % (workers, h.children_of(p.pid))
    return p


def rewrite(p, **changes):
    """Writes p's configuration file again with changes (a value None removes the key)."""
    cfg = dict(p.cfg)
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    with open(p.cfg_path, "w") as f:
        json.dump(cfg, f)
    return cfg


def tunnel(server_port, target_port, password=PW):
    lport = h.free_port()
    cfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": server_port,
           "local_address": "127.0.0.1", "local_port": lport, "password": password, "method": M,
           "workers": 0, "tunnel_address": "127.0.0.1:%d" % target_port}
    h.reuseproxy(cfg, name="tunnel")
    return lport


def echo_ok(port, seed=0, timeout=5):
    """True when one short echo through port comes back intact."""
    data = h.pattern(3000, seed)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    try:
        s.settimeout(timeout)
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got == data
    except OSError:
        return False
    finally:
        s.close()


def count_ok(port, n=20, timeout=5):
    return sum(echo_ok(port, seed=i, timeout=timeout) for i in range(n))


def settled_workers(p, n, timeout=20):
    """Waits until the master has exactly n children (draining ones gone); returns them."""
    h.wait_for(lambda: len(h.children_of(p.pid)) == n, timeout, 0.05)
    return h.children_of(p.pid)


def log_count(p, text):
    return p.output().count(text)


def test_sighup_bursts_leave_exactly_workers_and_rotated_password_applies_everywhere():
    echo = h.TcpEcho()
    p = start_master(2)
    for burst in range(6):
        for _ in range(40):
            os.kill(p.pid, signal.SIGHUP)
            time.sleep(0.003)
        time.sleep(0.2)
    kids = settled_workers(p, 2)
    assert len(kids) == 2, "after SIGHUP bursts the master has %d children: %r" % (len(kids), kids)
    assert p.alive()
    # rotate the password: every new connection must use the new one
    rewrite(p, password="rotated-" + PW)
    done = log_count(p, "reload complete")
    os.kill(p.pid, signal.SIGHUP)
    assert h.wait_for(lambda: log_count(p, "reload complete") > done, 20), "reload never completed"
    kids = settled_workers(p, 2)
    assert len(kids) == 2, "after the rotation the master has %d children: %r" % (len(kids), kids)
    new = tunnel(p.port, echo.port, password="rotated-" + PW)
    old = tunnel(p.port, echo.port, password=PW)
    assert count_ok(new) == 20, "the rotated password failed on some connections"
    # a wrong key is held until the server's probe timeout: a few short tries suffice
    assert count_ok(old, 4, timeout=1) == 0, "the old password is still accepted by some worker"
    echo.stop()

