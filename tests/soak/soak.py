#!/usr/bin/env python3
"""soak.py: reuseproxy under mixed TCP and UDP load for a long time, with a reload (SIGHUP)
every minute and a worker killed (SIGKILL) every two minutes (issue 8). `make soak` runs the
10-minute version; CI runs `--seconds 60`, which reloads every 10 s and kills every 20 s.

    clients --TCP--> reuseproxy tunnel (1 process) --+
    clients --TCP--> reuseproxy SOCKS5 (1 process) --+--> reuseproxy server (master + 2 workers,
    clients --UDP--> reuseproxy tunnel --------------+       TCP and UDP) --> echo (TCP and UDP)

Pass criteria:
  - zero mismatches: every TCP echo returns exactly its bytes (sha256), every UDP answer is a
    datagram that was sent;
  - TCP failures only at a worker kill (connections in flight on the killed worker die with it):
    none at any other time, reloads included;
  - UDP: at most 1% of datagrams unanswered (UDP is lossy; a killed worker loses its flows);
  - flat after warm-up (the first fifth of the run): private RSS (RssAnon) of the long-lived
    processes (tunnel, SOCKS5, master) grows by less than 4 MiB, every worker's stays under
    64 MiB, and once the load stops (and UDP associations expire) every process is back to the
    descriptor count it had idle before the load.

Prints the figures and exits 0 on pass, 1 on failure. --json FILE writes them as JSON too.
"""
import argparse
import hashlib
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

M = "aes-256-gcm"
PW = "soak-secret"
TCP_CLIENTS = 6
UDP_CLIENTS = 2
SIZES = [0, 1, 0x3FFF, 0x4000, 0x4001, 2 * 0x3FFF, 65536]
UDP_TIMEOUT = 5  # associations expire soon after the load, so idle descriptor counts compare


# ---- peers --------------------------------------------------------------------------------------

class Echo:
    """TCP and UDP echo on one loopback port (the tunnel sends both to one address)."""

    def __init__(self):
        self.port = h.free_port()
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(1024)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.stopped = False
        threading.Thread(target=self._tcp, daemon=True).start()
        threading.Thread(target=self._udp, daemon=True).start()

    def _tcp(self):
        while not self.stopped:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_one, args=(c,), daemon=True).start()

    @staticmethod
    def _tcp_one(c):
        c.settimeout(60)
        try:
            while True:
                d = c.recv(262144)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def _udp(self):
        while not self.stopped:
            try:
                d, a = self.udp.recvfrom(65536)
                self.udp.sendto(d, a)
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stopped = True
        self.tcp.close()
        self.udp.close()


def socks5(port):
    return lambda: h.socks5_connect("127.0.0.1", port, "127.0.0.1", SOAK.echo.port, timeout=30)


# ---- load ---------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.tcp_ok = self.tcp_bytes = self.tcp_mismatch = 0
        self.tcp_failures = []          # (time, what)
        self.udp_sent = self.udp_ok = self.udp_lost = self.udp_late = self.udp_mismatch = 0
        self.kills = []                 # times
        self.hups = []


def tcp_exchange(connect, data, timeout=30):
    """Sends data and reads the echo at the same time; half-closes after the last byte.
    Returns what came back before EOF."""
    s = connect()
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    got, sent, deadline = bytearray(), 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for _, ev in sel.select(1.0):
                if ev & selectors.EVENT_WRITE:
                    if sent < len(data):
                        try:
                            sent += s.send(data[sent:sent + 65536])
                        except BlockingIOError:
                            pass
                    if sent == len(data):
                        s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    try:
                        d = s.recv(262144)
                    except BlockingIOError:
                        continue
                    if not d:
                        return bytes(got)
                    got += d
        raise socket.timeout("no EOF after %.0f s (%d of %d bytes back)" % (
            timeout, len(got), len(data)))
    finally:
        sel.close()
        s.close()


def tcp_client(i, paths, stats, stop):
    rnd = random.Random(i)
    n = 0
    while not stop.is_set():
        name, connect = paths[n % len(paths)]
        size = rnd.choice(SIZES) if rnd.random() < 0.3 else int(2 ** rnd.uniform(0, 18))
        data = h.pattern(size, seed=rnd.randrange(1 << 30))
        n += 1
        try:
            got = tcp_exchange(connect, data)
            with stats.lock:
                if hashlib.sha256(got).digest() == hashlib.sha256(data).digest():
                    stats.tcp_ok += 1
                    stats.tcp_bytes += size
                elif len(got) >= len(data) or got != data[:len(got)]:
                    stats.tcp_mismatch += 1
                else:  # cut short: a failure, judged against the kill times later
                    stats.tcp_failures.append((time.monotonic(), "%s: %d of %d bytes" % (
                        name, len(got), size)))
        except (OSError, AssertionError) as e:
            with stats.lock:
                stats.tcp_failures.append((time.monotonic(), "%s: %r" % (name, e)))


def udp_client(i, port, stats, stop):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(1.0)
    rnd = random.Random(1000 + i)
    history = {}
    seq = 0
    while not stop.is_set():
        body = h.pattern(rnd.randint(1, 1400), seed=rnd.randrange(1 << 30))
        msg = struct.pack("!II", i, seq) + body
        history[seq] = msg
        if len(history) > 4096:
            history.pop(min(history))
        s.sendto(msg, ("127.0.0.1", port))
        with stats.lock:
            stats.udp_sent += 1
        answered = False
        deadline = time.monotonic() + 1.0
        while not answered and time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            with stats.lock:
                if d == msg:
                    stats.udp_ok += 1
                    answered = True
                elif len(d) >= 8 and history.get(struct.unpack("!II", d[:8])[1]) == d:
                    stats.udp_late += 1
                else:
                    stats.udp_mismatch += 1
        if not answered:
            with stats.lock:
                stats.udp_lost += 1
        seq += 1
        time.sleep(0.005)
    s.close()


# ---- measurement --------------------------------------------------------------------------------

def rss_kib(pid, field="RssAnon"):
    """Resident memory of pid in KiB. RssAnon (private heap and stacks) is what a leak grows;
    VmRSS also counts the replay store, 64 MiB of shared memory by default that each worker maps
    in whole at start (older kernels: page by page as salts arrive), which would hide a leak."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fds(pid):
    try:
        return h.fd_count(pid)
    except OSError:
        return None


class Soak:
    pass


SOAK = Soak()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--hup-every", type=float, default=None, help="default: seconds / 10")
    ap.add_argument("--kill-every", type=float, default=None, help="default: seconds / 5")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    hup_every = args.hup_every or max(10.0, args.seconds / 10)
    kill_every = args.kill_every or max(20.0, args.seconds / 5)
    warmup = max(10.0, args.seconds / 5)

    h.BINARY = os.path.abspath(args.binary)
    h.TMPDIR = tempfile.mkdtemp(prefix="rp-soak-")
    failures = []
    figures = {"seconds": args.seconds, "hup_every": hup_every, "kill_every": kill_every}
    stats = Stats()
    stop = threading.Event()
    try:
        SOAK.echo = echo = Echo()
        sport, mport = h.free_port(), h.free_port()
        master = h.reuseproxy(h.server_config(
            sport, method=M, password=PW, workers=2, mode="tcp_and_udp", timeout=60,
            drain_timeout=10, udp_timeout=UDP_TIMEOUT, metrics_address="127.0.0.1:%d" % mport),
            name="server")
        assert h.wait_for(lambda: len(h.children_of(master.pid)) == 2, 10), "no workers"
        tport, lport = h.free_port(), h.free_port()
        client = {"server": "127.0.0.1", "server_port": sport, "password": PW, "method": M,
                  "local_address": "127.0.0.1", "timeout": 60, "workers": 0}
        tunnel = h.reuseproxy(dict(client, role="tunnel", local_port=tport, mode="tcp_and_udp",
                                   udp_timeout=UDP_TIMEOUT,
                                   tunnel_address="127.0.0.1:%d" % echo.port), name="tunnel")
        local = h.reuseproxy(dict(client, role="local", local_port=lport), name="local")
        time.sleep(1.0)
        long_lived = {"tunnel": tunnel.pid, "local": local.pid, "master": master.pid}
        idle_fds = {k: fds(p) for k, p in long_lived.items()}
        idle_worker_fds = max(fds(w) for w in h.children_of(master.pid))
        figures["idle_fds"] = dict(idle_fds, worker=idle_worker_fds)

        paths = [("tunnel", lambda: socket.create_connection(("127.0.0.1", tport), timeout=30)),
                 ("socks5", socks5(lport))]
        threads = [threading.Thread(target=tcp_client, args=(i, paths, stats, stop))
                   for i in range(TCP_CLIENTS)]
        threads += [threading.Thread(target=udp_client, args=(i, tport, stats, stop))
                    for i in range(UDP_CLIENTS)]
        for t in threads:
            t.start()

        t0 = time.monotonic()
        next_hup, next_kill, next_sample = t0 + hup_every, t0 + kill_every, t0
        samples = []
        rnd = random.Random(7)
        while time.monotonic() - t0 < args.seconds:
            now = time.monotonic()
            if now >= next_kill:
                kids = h.children_of(master.pid)
                if kids:
                    victim = rnd.choice(kids)
                    stats.kills.append(time.monotonic())
                    os.kill(victim, signal.SIGKILL)
                next_kill += kill_every
            if now >= next_hup:
                stats.hups.append(time.monotonic())
                master.signal(signal.SIGHUP)
                next_hup += hup_every
            if now >= next_sample:
                sample = {"t": round(now - t0, 1)}
                for k, p in long_lived.items():
                    sample[k] = (rss_kib(p), fds(p), rss_kib(p, "VmRSS"))
                sample["workers"] = {w: (rss_kib(w), fds(w)) for w in h.children_of(master.pid)}
                samples.append(sample)
                next_sample += 5
            if not master.alive() or not tunnel.alive() or not local.alive():
                failures.append("a process died")
                break
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(60)

        # ---- verdicts
        explained = lambda t: any(k - 0.2 <= t <= k + 3.0 for k in stats.kills)  # noqa: E731
        unexplained = [w for t, w in stats.tcp_failures if not explained(t)]
        figures.update({
            "tcp_ok": stats.tcp_ok, "tcp_mib": round(stats.tcp_bytes / 1048576, 1),
            "tcp_mismatch": stats.tcp_mismatch, "tcp_failures": len(stats.tcp_failures),
            "tcp_failures_unexplained": len(unexplained), "udp_sent": stats.udp_sent,
            "udp_ok": stats.udp_ok, "udp_lost": stats.udp_lost, "udp_late": stats.udp_late,
            "udp_mismatch": stats.udp_mismatch, "hups": len(stats.hups),
            "kills": len(stats.kills)})
        if stats.tcp_mismatch or stats.udp_mismatch:
            failures.append("mismatches: TCP %d, UDP %d" % (stats.tcp_mismatch,
                                                            stats.udp_mismatch))
        if unexplained:
            failures.append("%d TCP failures away from any worker kill, e.g. %s" % (
                len(unexplained), unexplained[:3]))
        if stats.tcp_ok < 100:
            failures.append("only %d TCP exchanges completed" % stats.tcp_ok)
        if stats.udp_sent and stats.udp_lost > stats.udp_sent / 100:
            failures.append("%d of %d datagrams unanswered" % (stats.udp_lost, stats.udp_sent))

        after_warmup = [s for s in samples if s["t"] >= warmup]
        if after_warmup:
            figures["rss_kib"] = {}
            for k in long_lived:
                series = [s[k][0] for s in after_warmup if s[k][0] is not None]
                growth = (max(series) - series[0]) / 1024
                figures["rss_kib"][k] = {"after_warmup": series[0], "max": max(series),
                                         "end": series[-1], "vmrss_end": after_warmup[-1][k][2]}
                if growth >= 4:
                    failures.append("%s RSS grew by %.1f MiB after warm-up" % (k, growth))
            worker_max = max((v[0] or 0) for s in after_warmup for v in s["workers"].values())
            figures["rss_kib"]["worker_max"] = worker_max
            if worker_max >= 64 * 1024:
                failures.append("a worker reached %.1f MiB RSS" % (worker_max / 1024))

        # idle again: old workers drained, UDP associations expired, every descriptor back
        h.wait_for(lambda: len(h.children_of(master.pid)) == 2, 15, 0.1)
        time.sleep(UDP_TIMEOUT + 2.0)
        end_fds = {k: fds(p) for k, p in long_lived.items()}
        end_worker_fds = max(fds(w) or 0 for w in h.children_of(master.pid))
        figures["end_fds"] = dict(end_fds, worker=end_worker_fds)
        for k in long_lived:
            if end_fds[k] != idle_fds[k]:
                failures.append("%s holds %s descriptors idle, %s before the load" % (
                    k, end_fds[k], idle_fds[k]))
        if end_worker_fds > idle_worker_fds:
            failures.append("a worker holds %d descriptors idle, %d before the load" % (
                end_worker_fds, idle_worker_fds))
        figures["samples"] = samples
    except AssertionError as e:
        failures.append(str(e))
    finally:
        stop.set()
        h.cleanup_all()
        try:
            SOAK.echo.stop()
        except AttributeError:
            pass

    summary = {k: v for k, v in figures.items() if k != "samples"}
    for k, v in summary.items():
        print("soak: %s = %s" % (k, v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    if failures:
        for f in failures:
            print("FAIL: soak: %s" % f)
        return 1
    print("PASS: soak (%.0f s, %d TCP exchanges, %d datagrams, %d reloads, %d worker kills)" % (
        args.seconds, stats.tcp_ok, stats.udp_sent, len(stats.hups), len(stats.kills)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
