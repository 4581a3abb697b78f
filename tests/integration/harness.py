"""harness.py: what every integration test needs: free ports, the real reuseproxy binary and
Debian's shadowsocks-libev started on loopback, echo servers, and cleanup by PID.

Every process a test starts is registered and killed by PID when the test ends (never by name).
Every wait is bounded in time.
"""
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

BINARY = None      # set by run.py: path of the built reuseproxy
TMPDIR = None      # set by run.py: a scratch directory for this run
_procs = []        # processes started by the current test


class Skip(Exception):
    """Raised by a test that needs something this machine lacks (root, namespaces, a tool):
    run.py prints "SKIP: <test>: <reason>" and counts it neither as passed nor as failed."""


def free_port(kind="tcp", host="127.0.0.1"):
    """A port that is free for both TCP and UDP on host right now. Chosen below the kernel's
    ephemeral range, so that an outgoing connection cannot take it between this call and the
    bind of whoever uses it."""
    import random
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        low = 32768
    rnd = random.Random(os.getpid() ^ int(time.monotonic() * 1e6))
    for _ in range(1000):
        port = rnd.randrange(10000, max(low, 10001))
        t = socket.socket(fam, socket.SOCK_STREAM)
        u = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            t.bind((host, port))
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


class Proc:
    """A child process with its log file; stopped by PID. stderr: where its stderr goes
    instead of the log file (a descriptor, e.g. a pipe's write end)."""

    def __init__(self, argv, name, env=None, stderr=None):
        self.name = name
        self.log_path = os.path.join(TMPDIR, "%s-%d.log" % (name, len(_procs)))
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.log,
                                  stderr=subprocess.STDOUT if stderr is None else stderr,
                                  stdin=subprocess.DEVNULL, env=e, start_new_session=False)
        self.pid = self.p.pid
        _procs.append(self)

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=5.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.p.kill()
                self.p.wait(timeout=5)
        self.log.close()
        return self.p.returncode

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def cleanup_all():
    """Kills every process the current test started (by PID) and their workers."""
    while _procs:
        p = _procs.pop()
        try:
            kids = children_of(p.pid)
        except OSError:
            kids = []
        p.stop(timeout=3.0)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass


def children_of(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d))
    return sorted(out)


def wait_for(pred, timeout, interval=0.02):
    """Polls pred() until it is true or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def tcp_open(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def proc_net_rows(*tables):
    """The socket rows of /proc/net tables ("tcp", "tcp6", "udp", ...), each split in columns:
    [1] local address:port in hex, [3] state, [9] inode."""
    for table in tables:
        try:
            with open("/proc/net/" + table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            yield line.split()


def socket_inodes_of(pid):
    """Inodes of the sockets among a process's descriptors (from /proc/PID/fd), to match
    against column [9] of proc_net_rows()."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def listening(port):
    """True when a socket listens on TCP port (from /proc/net/tcp*, without connecting)."""
    return any(cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port
               for cols in proc_net_rows("tcp", "tcp6"))


def wait_tcp(host, port, timeout=10.0):
    if not wait_for(lambda: tcp_open(host, port), timeout, 0.05):
        raise AssertionError("nothing listens on %s:%d after %.0fs" % (host, port, timeout))


_config_serial = [0]


def write_config(cfg, name="proxy"):
    _config_serial[0] += 1
    path = os.path.join(TMPDIR, "%s-%d.json" % (name, _config_serial[0]))
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def reuseproxy(cfg, args=(), wait=True, name="reuseproxy", env=None, stderr=None):
    """Starts the built binary on a config dict; waits until its TCP port accepts. stderr: as
    for Proc."""
    path = write_config(cfg)
    # RP_WRAPPER (tests/memcheck): a command put in front, e.g. "valgrind --leak-check=full".
    # It runs in the same process, so PIDs and children stay what the tests expect.
    import shlex
    wrapper = shlex.split(os.environ.get("RP_WRAPPER", ""))
    p = Proc(wrapper + [BINARY, "-c", path] + list(args), name, env=env, stderr=stderr)
    if wrapper:  # the wrapper's own exit work (valgrind's leak check) takes more than 3 s
        stop = p.stop
        p.stop = lambda timeout=5.0: stop(timeout=max(timeout, 60.0))
    p.cfg_path = path
    if wait and cfg.get("mode") != "udp_only":
        role = cfg.get("role", "server")
        if role == "server":
            host = cfg["server"] if isinstance(cfg["server"], str) else cfg["server"][0]
            port = cfg["server_port"]
        else:
            host, port = cfg.get("local_address", "127.0.0.1"), cfg["local_port"]
        try:
            wait_tcp(host, port)
        except AssertionError:
            raise AssertionError("reuseproxy did not start: %s" % p.output()[-2000:])
    elif wait:
        time.sleep(0.3)
    return p


def server_config(port, method="aes-256-gcm", password="integration-secret", **kw):
    cfg = {"server": "127.0.0.1", "server_port": port, "password": password,
           "method": method, "timeout": 30, "block_private": False, "workers": 0}
    cfg.update(kw)
    return cfg


def ss_libev(tool, args, name=None):
    """Starts one of Debian's shadowsocks-libev programs (ss-server, ss-local, ss-tunnel)."""
    return Proc([tool] + list(args), name or tool)


def record_first_packet(password, method, target_port, data, name="tunnel", **kw):
    """Records a valid first packet: starts a reuseproxy tunnel (workers 0) to target_port whose
    server is a local listener, sends data through it and returns what the tunnel sent that
    listener (salt, address header chunk, data chunk), ready to replay. kw go into its config."""
    rec = socket.socket()
    rec.bind(("127.0.0.1", 0))
    rec.listen(1)
    lport = free_port()
    cfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": rec.getsockname()[1],
           "local_address": "127.0.0.1", "local_port": lport, "password": password,
           "method": method, "workers": 0, "tunnel_address": "127.0.0.1:%d" % target_port}
    cfg.update(kw)
    reuseproxy(cfg, name=name)
    c = socket.create_connection(("127.0.0.1", lport), timeout=10)
    c.sendall(data)
    rec.settimeout(10)
    conn, _ = rec.accept()
    conn.settimeout(1.0)
    packet = b""
    try:
        while True:
            d = conn.recv(65536)
            if not d:
                break
            packet += d
    except socket.timeout:
        pass
    c.close()
    conn.close()
    rec.close()
    return packet


class TcpEcho:
    """A threaded TCP server on loopback. mode "echo" echoes; "sink" counts and hashes what it
    receives and, at EOF, answers the sha256 hex digest; "source:N" sends N pseudo-random bytes
    after the client's EOF (for half-close tests). Counts connections."""

    def __init__(self, host="127.0.0.1", mode="echo"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.mode = mode
        self.connections = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        c.settimeout(60)
        try:
            if self.mode == "echo":
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
                c.shutdown(socket.SHUT_WR)
            elif self.mode == "sink":
                h = hashlib.sha256()
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    h.update(d)
                c.sendall(h.hexdigest().encode())
                c.shutdown(socket.SHUT_WR)
            elif self.mode.startswith("source:"):
                n = int(self.mode.split(":")[1])
                while c.recv(65536):
                    pass
                c.sendall(pattern(n))
                c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


class UdpEcho:
    """A UDP echo on loopback, run in a thread. Counts datagrams. reply_from, when set, is a
    second socket's port used to answer instead (full-cone tests use .other to send from a
    different remote)."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.other = socket.socket(fam, socket.SOCK_DGRAM)
        self.other.bind((host, 0))
        self.received = 0
        self.peers = set()
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                d, a = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            self.peers.add(a)
            try:
                self.sock.sendto(d, a)
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.thread.join(timeout=2)
        self.sock.close()
        self.other.close()


class FakeDns:
    """A DNS server on loopback answering from a table: a name maps to an IPv4 address (an A
    answer, TTL ttl), to "SERVFAIL", or to "DROP" (never answered); other names get NXDOMAIN and
    AAAA questions an empty answer. Each answer leaves after delays.get(name, delay) seconds, so
    a test can hold lookups pending. queries lists (name, qtype) as they came."""

    def __init__(self, table, delay=0.0, delays=None, ttl=60):
        self.table, self.delay, self.delays, self.ttl = table, delay, delays or {}, ttl
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                d, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = self._question(d)
            if q is None:
                continue
            name, qtype, end = q
            self.queries.append((name, qtype))
            if self.table.get(name) == "DROP":
                continue
            t = threading.Timer(self.delays.get(name, self.delay), self._answer,
                                (d[:end], peer, name, qtype))
            t.daemon = True
            t.start()

    @staticmethod
    def _question(d):
        """(name, qtype, end of the question) of a query, or None."""
        if len(d) < 12:
            return None
        i, labels = 12, []
        while i < len(d) and d[i] != 0:
            labels.append(d[i + 1:i + 1 + d[i]].decode("ascii", "replace"))
            i += 1 + d[i]
        if i + 5 > len(d):
            return None
        return ".".join(labels).lower(), struct.unpack("!H", d[i + 1:i + 3])[0], i + 5

    def _answer(self, query, peer, name, qtype):
        ip = self.table.get(name)
        rcode, answer = 0, b""
        if ip == "SERVFAIL":
            rcode = 2
        elif ip is None:
            rcode = 3
        elif qtype == 1:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, self.ttl, 4) + socket.inet_aton(ip)
        head = query[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 1 if answer else 0, 0, 0)
        try:
            self.sock.sendto(head + query[12:] + answer, peer)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        self.thread.join(timeout=2)
        self.sock.close()


def pattern(n, seed=0):
    """n reproducible pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(b"reuseproxy-%d" % seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def echo_ok(port, seed=0, timeout=5):
    """True when one short echo through port (a tunnel to an echo) comes back intact within
    timeout seconds per step."""
    data = pattern(3000, seed)
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


def binary_upgrade(p):
    """Sends the master SIGUSR2 and returns the PID of the new master it starts."""
    p.signal(signal.SIGUSR2)
    new_pid = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not new_pid:
        mm = re.search(r"binary upgrade: started .* as (\d+)", p.output())
        new_pid = int(mm.group(1)) if mm else None
        time.sleep(0.05)
    assert new_pid, "no new master: %s" % p.output()[-1000:]
    return new_pid


def stop_master(pid, timeout=10):
    """Stops a master the harness did not start (one a binary upgrade made), and its workers:
    SIGTERM, up to timeout seconds for it to leave, then SIGKILL to the workers it had."""
    kids = children_of(pid)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), timeout)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass


def socks5_connect(proxy_host, proxy_port, target_host, target_port, timeout=10):
    """Opens a TCP connection through a SOCKS5 proxy (no auth, CONNECT); target_host may be an
    IPv4 or IPv6 literal or a domain name."""
    import ipaddress
    fam = socket.AF_INET6 if ":" in proxy_host else socket.AF_INET
    s = socket.create_connection((proxy_host, proxy_port), timeout=timeout) if fam == socket.AF_INET \
        else socket.create_connection((proxy_host, proxy_port, 0, 0), timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        raise AssertionError("SOCKS5 method selection refused")
    try:
        ip = ipaddress.ip_address(target_host)
        addr = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:
        addr = b"\x03" + bytes([len(target_host)]) + target_host.encode()
    s.sendall(b"\x05\x01\x00" + addr + target_port.to_bytes(2, "big"))
    rep = recv_exact(s, 4)
    if rep[1] != 0:
        raise AssertionError("SOCKS5 request failed with reply %d" % rep[1])
    atyp = rep[3]
    rest = {1: 4, 4: 16}.get(atyp)
    if rest is None:
        rest = recv_exact(s, 1)[0]
    recv_exact(s, rest + 2)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def recv_all(s):
    out = bytearray()
    while True:
        d = s.recv(262144)
        if not d:
            return bytes(out)
        out += d


def transfer(host, port, data, timeout=60, connect=None):
    """Sends data through an echo path and returns what came back (until EOF)."""
    s = connect() if connect else socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    result = {}

    def reader():
        try:
            result["data"] = recv_all(s)
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    if "error" in result:
        raise AssertionError("transfer failed: %r" % result["error"])
    if "data" not in result:
        raise AssertionError("transfer timed out")
    return result["data"]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ---- Metrics ---------------------------------------------------------------------------------

# The per-server series (several servers in the client roles) and the keys server_series gives
# them.
SERVER_SERIES = {"server_up": "up", "server_connections_total": "connections",
                 "server_connect_failures_total": "failures",
                 "server_latency_seconds": "latency",
                 "server_udp_datagrams_sent_total": "udp_sent",
                 "server_udp_datagrams_received_total": "udp_received",
                 "server_udp_associations_total": "udp_associations",
                 "server_udp_failovers_total": "udp_failovers"}


def server_series(port, ns=None):
    """{"host:port": {"up": .., "connections": .., ..}} from the /metrics served on
    127.0.0.1:port, scraped in network namespace ns (a Netns) or on the host."""
    time.sleep(0.3)  # the master answers scrapes from a rendering up to 0.2 s old
    s = ns.socket() if ns else socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        text = recv_all(s).decode()
    finally:
        s.close()
    out = {}
    for m in re.finditer(r'^reuseproxy_(\w+)\{server="([^"]+)"\} (\S+)$', text, re.M):
        if m.group(1) in SERVER_SERIES:
            out.setdefault(m.group(2), {})[SERVER_SERIES[m.group(1)]] = float(m.group(3))
    return out


# ---- Network namespaces made by a test ----------------------------------------------------------

_netns_serial = [0]


class Netns:
    """A network namespace of this test's own (loopback up), deleted by close(). Sockets are
    made inside it from a thread that joined it (socket()); processes run in it by Proc through
    `ip netns exec`, whose PID is the program's (ip execs it). Needs root and iproute2."""

    def __init__(self, tag):
        _netns_serial[0] += 1
        self.name = "rp-%s-%d-%d" % (tag, os.getpid() % 100000, _netns_serial[0])
        self.up = False
        self._run(["ip", "netns", "add", self.name])
        self.up = True
        self.ip("link", "set", "lo", "up")

    @staticmethod
    def available():
        import shutil
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return "needs root and iproute2 (ip netns)"
        return None

    @staticmethod
    def _run(argv, stdin=None):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, input=stdin)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
        return r.stdout

    def ip(self, *args):
        return self._run(["ip", "-n", self.name] + list(args))

    def run(self, *argv, stdin=None):
        return self._run(["ip", "netns", "exec", self.name] + list(argv), stdin=stdin)

    def proc(self, argv, name):
        return Proc(["ip", "netns", "exec", self.name] + list(argv), name)

    def reuseproxy(self, cfg, name="reuseproxy"):
        """The built binary on cfg inside the namespace; waits (bounded) until its first
        port is bound, read from the process's own /proc/PID/net."""
        path = write_config(cfg, name)
        p = self.proc([BINARY, "-c", path], name)
        port = cfg["server_port"] if cfg.get("role", "server") == "server" else cfg["local_port"]
        kind = "udp" if cfg.get("mode") == "udp_only" else "tcp"

        def bound():
            for t in (kind, kind + "6"):
                try:
                    with open("/proc/%d/net/%s" % (p.pid, t)) as f:
                        rows = [line.split() for line in f.readlines()[1:]]
                except OSError:
                    return False
                if any(int(c[1].rsplit(":", 1)[1], 16) == port for c in rows):
                    return True
            return False
        if not wait_for(bound, 10, 0.05) or not p.alive():
            raise AssertionError("%s did not start: %s" % (name, p.output()[-2000:]))
        time.sleep(0.2)  # every worker's slot socket
        return p

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket of this namespace: made by a thread that joined it (setns(2) changes the
        calling thread alone), then usable from any thread."""
        import ctypes
        out = {}

        def make():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    out["error"] = OSError(ctypes.get_errno(), "setns")
                    return
            finally:
                os.close(fd)
            out["sock"] = socket.socket(family, type)
        t = threading.Thread(target=make)
        t.start()
        t.join(10)
        if "sock" not in out:
            raise out.get("error", RuntimeError("setns timed out"))
        return out["sock"]

    def veth_to_host(self, host_if, ns_if, host_cidr, ns_cidr):
        """A veth pair joining the host (host_if, host_cidr) to this namespace (ns_if, ns_cidr);
        it goes with the namespace (deleting one end deletes the pair)."""
        self._run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
                   "netns", self.name])
        self._run(["ip", "addr", "add", host_cidr, "dev", host_if])
        self._run(["ip", "link", "set", host_if, "up"])
        self.ip("addr", "add", ns_cidr, "dev", ns_if)
        self.ip("link", "set", ns_if, "up")

    def veth(self, other, a_if, b_if):
        """A veth pair: a_if here, b_if in other (another Netns)."""
        self.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", other.name)
        self.ip("link", "set", a_if, "up")
        other.ip("link", "set", b_if, "up")

    def close(self):
        if self.up:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
            self.up = False


class NetnsEcho:
    """A TCP echo (and, with udp, a UDP server) on addr:port (0: any free port) inside ns,
    recording every peer's address. The UDP server answers udp_answer(datagram), an echo by
    default."""

    def __init__(self, ns, family, addr, udp=False, port=0, udp_answer=None):
        self.peers, self.udp_peers = [], []
        self.sock = ns.socket(family, socket.SOCK_STREAM)
        self.sock.bind((addr, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.usock = None
        self.udp_answer = udp_answer or (lambda d: d)
        if udp:
            self.usock = ns.socket(family, socket.SOCK_DGRAM)
            self.usock.bind((addr, self.port))
            self.usock.settimeout(0.2)
        self.stopping = False
        self.threads = [threading.Thread(target=self._tcp, daemon=True)]
        if udp:
            self.threads.append(threading.Thread(target=self._udp, daemon=True))
        for t in self.threads:
            t.start()

    def _tcp(self):
        while not self.stopping:
            try:
                c, peer = self.sock.accept()
            except OSError:
                continue
            self.peers.append(peer[0])
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        c.settimeout(30)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def _udp(self):
        while not self.stopping:
            try:
                d, peer = self.usock.recvfrom(65536)
            except OSError:
                continue
            self.udp_peers.append(peer[0])
            self.usock.sendto(self.udp_answer(d), peer)

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(2)
        self.sock.close()
        if self.usock:
            self.usock.close()
