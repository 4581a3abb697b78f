"""benchlib.py: what every benchmark section needs: free loopback ports, processes started and
stopped by PID, the CPU time and memory of a process tree read from /proc, and the peers of a
measurement (reuseproxy, shadowsocks-libev, go-shadowsocks2, nginx, iperf3) started on loopback.

Nothing here is ever stopped by name: each process this module starts is registered and ended
by its PID (with the workers it forked, found through /proc/*/stat), and every wait is bounded.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

# What the integration tests already do the same way: one copy, in their harness.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from harness import children_of, listening, wait_for  # noqa: E402

PASSWORD = "bench-loopback-only-secret"
# Shadowsocks 2022 methods take a base64 key of their length as the password (loopback only).
SIP022_KEYS = {"2022-blake3-aes-128-gcm": "YmVuY2gtbG9vcGJhY2stMQ==",
               "2022-blake3-aes-256-gcm": "YmVuY2gtbG9vcGJhY2stb25seS1rZXktMzItYnl0ZXM=",
               "2022-blake3-chacha20-poly1305": "YmVuY2gtbG9vcGJhY2stb25seS1rZXktMzItYnl0ZXM="}


def password(method):
    """The password a method takes here: the SIP022 key, or the SIP004 passphrase."""
    return SIP022_KEYS.get(method.lower(), PASSWORD)
TMPDIR = None          # set by setup(): scratch directory of this run
NOFILE = 65536
_procs = []            # every Proc started and not yet stopped


def setup(tmpdir):
    global TMPDIR
    TMPDIR = tmpdir
    os.makedirs(tmpdir, exist_ok=True)


# ---- ports --------------------------------------------------------------------------------

_given = set()


def free_port():
    """A loopback port free for both TCP and UDP now, never handed out before in this run."""
    for _ in range(200):
        port = harness.free_port()
        if port not in _given:
            _given.add(port)
            return port
    raise RuntimeError("no free port")


# ---- processes ----------------------------------------------------------------------------

def raise_nofile():
    """Raises RLIMIT_NOFILE as far as allowed (65536 wanted) for this process and everything it
    starts; NOFILE becomes what was reached, and goes into the servers' configurations."""
    import resource
    global NOFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return NOFILE


class Proc:
    """A child process with its log file, stopped by PID (its own children too)."""

    def __init__(self, argv, name, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(TMPDIR, "%s-%d.log" % (name, len(_procs)))
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def tree(self):
        """This process and its direct children (a reuseproxy master and its workers)."""
        return [self.pid] + children_of(self.pid) if self.alive() else []

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=3.0):
        kids = children_of(self.pid) if self.alive() else []
        if self.alive():
            self.p.send_signal(signal.SIGCONT)   # in case a stall test left it stopped
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        for k in kids:                           # workers that outlived their master
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()
        if self in _procs:
            _procs.remove(self)


def stop_all():
    while _procs:
        _procs[-1].stop()


# ---- /proc readings -----------------------------------------------------------------------

def cpu_seconds(pids):
    """CPU time (user + system) used so far by pids and all their threads, in seconds, from
    schedstat's nanosecond run time (the tick-based utime/stime of /proc/PID/stat is 10 ms)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def memory_kib(pids, field="Pss", shared_anon=None):
    """Sum of a field of /proc/PID/smaps (Pss: shared pages split fairly) over pids. With
    shared_anon=False, MAP_SHARED|MAP_ANONYMOUS mappings ("/dev/zero (deleted)": reuseproxy's
    salt store and counters, made once by the master) are left out; with True, only they are
    counted."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps" % pid) as f:
                lines = f.readlines()
        except OSError:
            continue
        shared = False
        for line in lines:
            head = line.split(None, 1)[0]
            if not head.endswith(":"):          # a mapping's first line: range perms ... path
                shared = "/dev/zero" in line or "SYSV" in line
                continue
            if head == field + ":" and (shared_anon is None or shared == shared_anon):
                total += int(line.split()[1])
    return total


def _busy_seconds():
    """CPU time the whole machine spent busy so far (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def _descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def _own_seconds():
    """CPU time of this benchmark: itself, its waited-for children, and every live
    descendant (servers, clients, load generators)."""
    import resource
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime +
            cpu_seconds(_descendants(os.getpid())))


class Interference:
    """How much CPU the rest of the machine used while a measurement ran, in cores (busy
    time of all CPUs minus this benchmark's own, over the wall time). On a shared machine a
    run that other work disturbed can so be told apart, and repeated."""

    def __init__(self):
        self.t0, self.b0, self.o0 = time.monotonic(), _busy_seconds(), _own_seconds()

    def cores(self):
        wall = time.monotonic() - self.t0
        if wall <= 0:
            return 0.0
        foreign = (_busy_seconds() - self.b0) - (_own_seconds() - self.o0)
        return max(0.0, foreign / wall)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---- peers --------------------------------------------------------------------------------

def write_json(obj, name):
    path = os.path.join(TMPDIR, "%s-%d.json" % (name, len(_procs)))
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def _wait_listening(proc, port, what):
    if not wait_for(lambda: listening(port) or not proc.alive(), 10.0, 0.05) or not proc.alive():
        out = proc.output()[-1500:]
        proc.stop()
        raise RuntimeError("%s did not start on port %d:\n%s" % (what, port, out))


def rp_server(binary, method, port, workers=1, balance="reuseport", udp=False, metrics=None,
              name="rp-server", **keys):
    cfg = {"server": "127.0.0.1", "server_port": port, "password": password(method),
           "method": method,
           "timeout": 120, "workers": workers, "balance": balance, "block_private": False,
           "nofile": NOFILE, "drain_timeout": 1, "mode": "tcp_and_udp" if udp else "tcp_only"}
    if metrics:
        cfg["metrics_address"] = "127.0.0.1:%d" % metrics
    cfg.update(keys)  # further keys as they are, e.g. cpu_affinity=True
    p = Proc([binary, "-c", write_json(cfg, name)], name)
    _wait_listening(p, port, name)
    if workers > 0:   # the port answers once one worker accepts; wait for all of them
        wait_for(lambda: len(children_of(p.pid)) >= workers, 5.0)
    return p


def rp_tunnel(binary, method, server_port, local_port, target, workers=1, udp=False,
              name="rp-tunnel"):
    cfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": server_port,
           "local_address": "127.0.0.1", "local_port": local_port, "tunnel_address": target,
           "password": password(method), "method": method, "timeout": 120, "workers": workers,
           "nofile": NOFILE, "drain_timeout": 1, "mode": "tcp_and_udp" if udp else "tcp_only"}
    p = Proc([binary, "-c", write_json(cfg, name)], name)
    _wait_listening(p, local_port, name)
    return p


def ss_server(method, port, reuse_port=False, udp=False, name="ss-server"):
    argv = ["ss-server", "-s", "127.0.0.1", "-p", str(port), "-k", PASSWORD, "-m", method,
            "-t", "120", "-n", str(NOFILE)]
    if reuse_port:
        argv.append("--reuse-port")
    if udp:
        argv.append("-u")
    p = Proc(argv, name)
    _wait_listening(p, port, name)
    return p


def ss_tunnel(method, server_port, local_port, target, reuse_port=False, udp=False,
              name="ss-tunnel"):
    argv = ["ss-tunnel", "-s", "127.0.0.1", "-p", str(server_port), "-b", "127.0.0.1",
            "-l", str(local_port), "-L", target, "-k", PASSWORD, "-m", method, "-t", "120",
            "-n", str(NOFILE)]
    if reuse_port:
        argv.append("--reuse-port")
    if udp:
        argv.append("-u")
    p = Proc(argv, name)
    _wait_listening(p, local_port, name)
    return p


# go-shadowsocks2 (a second SIP004 peer: one Go process, Go's assembly AEAD) names the ciphers
# it has this way; aes-192-gcm and the SIP022 methods it does not have.
GO_CIPHERS = {"aes-128-gcm": "AEAD_AES_128_GCM", "aes-256-gcm": "AEAD_AES_256_GCM",
              "chacha20-ietf-poly1305": "AEAD_CHACHA20_POLY1305"}


def go_shadowsocks2_binary():
    """go-shadowsocks2 from GO_SHADOWSOCKS2=path or PATH, or None (its rows are skipped)."""
    import shutil
    path = os.environ.get("GO_SHADOWSOCKS2") or shutil.which("go-shadowsocks2")
    return path if path and os.access(path, os.X_OK) else None


def go_server(binary, method, port, udp=False, name="go-shadowsocks2"):
    """go-shadowsocks2's server on loopback, GOMAXPROCS 2 (as many threads running Go code as
    reuseproxy has workers and libev processes). The key is derived from PASSWORD as
    libev's and reuseproxy's are (EVP_BytesToKey), so any client here talks to it."""
    argv = [binary, "-s", "ss://%s:%s@127.0.0.1:%d" % (GO_CIPHERS[method], PASSWORD, port)]
    if udp:
        argv.append("-udp")
    p = Proc(argv, name, env=dict(os.environ, GOMAXPROCS="2"))
    _wait_listening(p, port, name)
    return p


NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log error;
worker_rlimit_nofile %(nofile)d;
events { worker_connections 32768; multi_accept on; }
http {
    access_log off;
    keepalive_timeout 300s;
    client_header_timeout 300s;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        default_type text/plain;
        location / { return 200 "reuseproxy benchmark: a small static body\\n"; }
    }
}
"""


def nginx(port):
    d = os.path.join(TMPDIR, "nginx-%d" % port)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port, "nofile": NOFILE})
    p = Proc(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf], "nginx")
    _wait_listening(p, port, "nginx")
    return p


def iperf3_server(port):
    p = Proc(["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"], "iperf3-server")
    _wait_listening(p, port, "iperf3 server")
    return p


def socat_relay(port, to_port):
    """A plain TCP relay (no crypto) from port to to_port: a ceiling for any relay hop."""
    p = Proc(["socat", "-b", "131072", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=512"
              % port, "TCP:127.0.0.1:%d" % to_port], "socat")
    _wait_listening(p, port, "socat")
    return p


def metrics_accepted(port):
    """reuseproxy_accepted_total per worker from a metrics endpoint: {worker: count}."""
    import urllib.request
    out = {}
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("reuseproxy_accepted_total{"):
                w = line.split('worker="', 1)[1].split('"', 1)[0]
                out[int(w)] = int(float(line.rsplit(" ", 1)[1]))
    return out


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
