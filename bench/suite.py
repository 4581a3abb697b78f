#!/usr/bin/env python3
"""suite.py: the benchmark suite (issue 7). Runs reuseproxy and Debian's shadowsocks-libev on
loopback in the same run, alternating, and prints medians with the ratio reuseproxy/libev per
row. bench/run is the entry point: it installs the tools and builds both crypto backends first.

Sections (each can be chosen with --only):
  ceilings  raw loopback TCP (iperf3, no proxy) and AEAD speed per method and backend
  bulk      TCP throughput through tunnel -> server, 1 and 8 streams, every method
  http      short HTTP requests (wrk, Connection: close) through ss-tunnel -> server -> nginx:
            rate, latency, server CPU per request, per balance mode; the stalled worker; and
            each worker's share of connections
  udp       UDP through tunnel -> server -> iperf3 (both directions): the most carried with
            at most 1 % loss, and what arrives when iperf3 sends as fast as it can
  memory    server memory per idle TCP connection and per UDP association

The load and the other end are public tools (iperf3, wrk, nginx; ss-tunnel as the common client
when the server is measured). CPU is read from /proc for the measured processes only. Raw
results and medians go to OUT/results.json and OUT/raw.csv; bench/render.py turns them into
docs/BENCHMARKS.md and its charts.
"""
import argparse
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ["aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
# Shadowsocks 2022 rows: reuseproxy on both ends only (libev has no SIP022), to set against the
# SIP004 rows of the same cipher.
SIP022_METHODS = ["2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305"]
HTTP_METHOD = "chacha20-ietf-poly1305"   # libev's and reuseproxy's default
UDP_METHOD = "aes-256-gcm"
LIBEV = "libev"
GO = "go-shadowsocks2"      # a server row: reuseproxy's tunnel (openssl) -> go-shadowsocks2


class Settings:
    """Durations and counts of a full run; --quick scales them down."""

    def __init__(self, quick):
        self.quick = quick
        self.runs = 1 if quick else 3
        self.iperf_seconds = 1        # measured, after
        self.iperf_omit = 0 if quick else 1   # seconds of warm-up left out
        self.aead_seconds = 0.2 if quick else 0.5
        self.methods = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] if quick \
            else METHODS
        self.sip022_methods = SIP022_METHODS
        self.http_seconds = 2 if quick else 4
        self.stall_seconds = 3 if quick else 4
        self.wrk_connections = 64
        self.udp_seconds = 2
        self.udp_probe_seconds = 1    # each rate a capacity search tries
        self.udp_step = 100           # Mbit/s per direction (24,400 datagrams/s of 512 bytes)
        self.udp_max_rate = 800
        self.idle_connections = 2000 if quick else 10000
        self.udp_associations = 500
        # a run during which other work used more than this many cores is repeated, up to
        # retries times in all (a shared machine: other sessions' tests, package builds)
        self.max_foreign_cores = 0.25
        self.retries = 6 if quick else 30
        self.go = B.go_shadowsocks2_binary()   # None: go-shadowsocks2's rows are skipped


class Recorder:
    """Every measurement, one dict per run; medians per (section, case, subject)."""

    def __init__(self):
        self.raw = []

    def add(self, section, case, subject, run, **metrics):
        rec = {"section": section, "case": case, "subject": subject, "run": run}
        rec.update(metrics)
        self.raw.append(rec)
        return rec

    def medians(self):
        groups = {}
        for r in self.raw:
            groups.setdefault((r["section"], r["case"], r["subject"]), []).append(r)
        out = []
        for (section, case, subject), recs in groups.items():
            m = {"section": section, "case": case, "subject": subject, "runs": len(recs)}
            for k in recs[0]:
                if k in m or k == "run":
                    continue
                vals = [r.get(k) for r in recs]
                if all(isinstance(v, (int, float)) for v in vals if v is not None):
                    m[k] = B.median(vals)
                else:
                    m[k] = vals[-1]
            out.append(m)
        return out


def log(msg):
    print(msg, flush=True)


def ratio(a, b):
    return a / b if a is not None and b else None


def guarded(st, what, measure):
    """Runs measure() (which returns a dict of metrics) and repeats it while other work on the
    machine disturbed it, as far as st.retries allows. Adds foreign_cores and retried."""
    tries = 0
    while True:
        mon = B.Interference()
        m = measure()
        foreign = mon.cores()
        if foreign <= st.max_foreign_cores or st.retries <= 0:
            break
        st.retries -= 1
        tries += 1
        log("  (%s: other work used %.2f cores during the run; repeating it)" % (what, foreign))
    m["foreign_cores"] = round(foreign, 3)
    m["retried"] = tries
    return m


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (digits, v)
    return str(v)


def print_table(title, header, rows):
    log("")
    log(title)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    log("  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w)
                  in enumerate(zip(header, widths))))
    for r in rows:
        log("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w)
                      in enumerate(zip(r, widths))))


# ---- ceilings ----------------------------------------------------------------------------

def iperf3_client(port, seconds, streams=1, udp=False, extra=(), omit=0, mark=None):
    """Runs an iperf3 client for `seconds` measured after `omit` seconds left out (TCP's and the
    relays' warm-up: slow start, socket buffers growing, the relay moving to bulk buffers).
    mark(), if given, is called when the measured part starts (CPU counters are read there);
    returns (iperf3's JSON, what mark returned)."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
            "-P", str(streams)]
    if udp:
        argv += ["-u"]
    if omit:
        argv += ["-O", str(omit)]
    argv += list(extra)
    for attempt in range(50):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        marked = None
        try:
            if mark:
                time.sleep(omit + 0.05)   # the client's setup takes a few milliseconds
                marked = mark()
            out, err = p.communicate(timeout=seconds + omit + 30)
        except BaseException:
            p.kill()
            p.wait()
            raise
        try:
            j = json.loads(out)
        except ValueError:
            raise RuntimeError("iperf3 gave no JSON: %s %s" % (out[-500:], err[-500:]))
        # the server may still be closing the previous test (it serves one at a time): it
        # answers "busy", or, reached through the socat relays, resets the control connection
        e = j.get("error", "")
        if ("busy" in e or "control message" in e) and attempt < 49:
            time.sleep(0.1)
            continue
        if "error" in j:
            raise RuntimeError("iperf3: %s" % j["error"])
        break
    return j, marked


def section_ceilings(st, rec, builds):
    log("== ceilings: raw loopback TCP and AEAD speed")
    port = B.free_port()
    srv = B.iperf3_server(port)
    # The same two relay hops as tunnel -> server, without crypto: what any user-space relay
    # pair could reach here (socat copies with read/write through 128 KiB buffers).
    hop2, hop1 = B.free_port(), B.free_port()
    relays = [B.socat_relay(hop2, port), B.socat_relay(hop1, hop2)]
    for run in range(st.runs):
        for streams in (1, 8):
            for case, p in (("loopback", port), ("relay chain", hop1)):
                j, _ = iperf3_client(p, st.iperf_seconds, streams, omit=st.iperf_omit)
                gbps = j["end"]["sum_received"]["bits_per_second"] / 1e9
                rec.add("ceiling", "%s/%d" % (case, streams), case, run, gbps=gbps)
    for p in relays:
        p.stop()
    srv.stop()
    for backend, b in builds.items():
        r = subprocess.run([b["aead_speed"], str(st.aead_seconds)], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("aead_speed (%s) failed: %s" % (backend, r.stderr))
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in METHODS:
                rec.add("aead", parts[0], backend, 0, seal_MBps=float(parts[1]),
                        open_MBps=float(parts[2]))
            elif line.startswith("backend:"):
                b["version"] = line.split("(", 1)[1].split(")", 1)[0] if "(" in line else ""


# ---- bulk --------------------------------------------------------------------------------

def section_bulk(st, rec, builds):
    log("== bulk: TCP throughput (iperf3 through tunnel -> server)")
    ossl, mbed = builds["openssl"]["binary"], builds["mbedtls"]["binary"]
    ip = B.free_port()
    iperf = B.iperf3_server(ip)
    target = "127.0.0.1:%d" % ip
    for method in st.methods + st.sip022_methods:
        procs = []
        sip022 = method in SIP022_METHODS

        def start(p):
            procs.append(p)
            return p

        if sip022:
            section_bulk_sip022(st, rec, builds, method, target, start)
            for p in reversed(procs):
                p.stop()
            continue

        # servers: 2 reuseproxy workers against 2 libev processes (--reuse-port)
        p_o, p_m, p_l = B.free_port(), B.free_port(), B.free_port()
        s_o = start(B.rp_server(ossl, method, p_o, workers=2, name="rp-server-openssl"))
        s_m = start(B.rp_server(mbed, method, p_m, workers=2, name="rp-server-mbedtls"))
        s_l = [start(B.ss_server(method, p_l, reuse_port=True)) for _ in range(2)]
        # tunnels: (local port, [tunnel procs])
        t_lib, t_srv, t_po, t_pm, t_cli = (B.free_port() for _ in range(5))
        tun_lib = [start(B.ss_tunnel(method, p_l, t_lib, target, reuse_port=True))
                   for _ in range(2)]
        tun_srv = [start(B.ss_tunnel(method, p_o, t_srv, target, reuse_port=True))
                   for _ in range(2)]
        tun_po = [start(B.rp_tunnel(ossl, method, p_o, t_po, target, workers=2,
                                    name="rp-tunnel-openssl"))]
        tun_pm = [start(B.rp_tunnel(mbed, method, p_m, t_pm, target, workers=2,
                                    name="rp-tunnel-mbedtls"))]
        tun_cli = [start(B.rp_tunnel(ossl, method, p_l, t_cli, target, workers=2,
                                     name="rp-tunnel-openssl-client"))]
        go = []
        if st.go and method in B.GO_CIPHERS:
            p_g, t_go = B.free_port(), B.free_port()
            s_g = start(B.go_server(st.go, method, p_g))
            tun_go = [start(B.rp_tunnel(ossl, method, p_g, t_go, target, workers=2,
                                        name="rp-tunnel-openssl-go"))]
            go = [GO]
        # subject: (tunnel port, server procs, tunnel procs)
        subjects = {
            LIBEV: (t_lib, s_l, tun_lib),
            "reuseproxy-openssl pair": (t_po, [s_o], tun_po),
            "reuseproxy-mbedtls pair": (t_pm, [s_m], tun_pm),
            "reuseproxy-openssl server": (t_srv, [s_o], tun_srv),
            "reuseproxy-openssl client": (t_cli, s_l, tun_cli),
        }
        if go:
            subjects[GO] = (t_go, [s_g], tun_go)
        plan = [(1, list(subjects)),
                (8, [LIBEV, "reuseproxy-openssl pair", "reuseproxy-mbedtls pair"] + go)]
        for run in range(st.runs):
            for streams, names in plan:
                for name in names:
                    port, servers, tunnels = subjects[name]
                    r = rec.add("bulk", "%s/%d" % (method, streams), name, run,
                                **guarded(st, name, lambda: bulk_measure(st, port, servers,
                                                                         tunnels, streams)))
                    log("  %-24s %d stream%s %-27s %6.2f Gbit/s  server %.2f s/GB  tunnel "
                        "%.2f s/GB" % (method, streams, "s" if streams > 1 else " ", name,
                                       r["gbps"], r["server_cpu_s_per_GB"] or 0,
                                       r["tunnel_cpu_s_per_GB"] or 0))
        for p in reversed(procs):
            p.stop()
    iperf.stop()


def bulk_measure(st, port, servers, tunnels, streams):
    spids = [x for p in servers for x in p.tree()]
    tpids = [x for p in tunnels for x in p.tree()]
    j, (s0, t0) = iperf3_client(port, st.iperf_seconds, streams, omit=st.iperf_omit,
                                mark=lambda: (B.cpu_seconds(spids), B.cpu_seconds(tpids)))
    s1, t1 = B.cpu_seconds(spids), B.cpu_seconds(tpids)
    recv = j["end"]["sum_received"]
    gb = recv["bytes"] / 1e9
    return dict(gbps=recv["bits_per_second"] / 1e9,
                server_cpu_s_per_GB=(s1 - s0) / gb if gb else None,
                tunnel_cpu_s_per_GB=(t1 - t0) / gb if gb else None)


def section_bulk_sip022(st, rec, builds, method, target, start):
    """A SIP022 method: reuseproxy tunnel -> reuseproxy server, both backends."""
    subjects = {}
    for backend in ("openssl", "mbedtls"):
        binary = builds[backend]["binary"]
        sport, tport = B.free_port(), B.free_port()
        server = start(B.rp_server(binary, method, sport, workers=2,
                                   name="rp-server-" + backend))
        tunnel = start(B.rp_tunnel(binary, method, sport, tport, target, workers=2,
                                   name="rp-tunnel-" + backend))
        subjects["reuseproxy-%s pair" % backend] = (tport, [server], [tunnel])
    for run in range(st.runs):
        for streams in (1, 8):
            for name, (port, servers, tunnels) in subjects.items():
                r = rec.add("bulk", "%s/%d" % (method, streams), name, run,
                            **guarded(st, name, lambda: bulk_measure(st, port, servers,
                                                                     tunnels, streams)))
                log("  %-24s %d stream%s %-27s %6.2f Gbit/s  server %.2f s/GB  tunnel "
                    "%.2f s/GB" % (method, streams, "s" if streams > 1 else " ", name,
                                   r["gbps"], r["server_cpu_s_per_GB"] or 0,
                                   r["tunnel_cpu_s_per_GB"] or 0))


# ---- http: rate, latency, CPU per request, the stalled worker, fairness --------------------

def wrk(port, seconds, connections, threads=2):
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", "%ds" % seconds,
            "--latency", "--timeout", "5s", "-H", "Connection: close",
            "-s", os.path.join(HERE, "wrk_report.lua"), "http://127.0.0.1:%d/" % port]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise RuntimeError("wrk gave no summary: %s %s" % (r.stdout[-500:], r.stderr[-500:]))


# The cases of the http section: the client in front of every server, and the SIP022 rows.
SS_TUNNEL_CASE = "2w"            # 2 x ss-tunnel --reuse-port (the "1w" case too)
RP_TUNNEL_CASE = "2w rp-tunnel"  # reuseproxy's tunnel role, openssl, 2 workers
SIP022_CASE = "sip022"           # reuseproxy's tunnel -> reuseproxy's server, per method
SIP022_HTTP = ("aes-256-gcm", "2022-blake3-aes-256-gcm")


class HttpSubject:
    def __init__(self, name, servers, tunnel_port, tunnels, workers, metrics_port=None,
                 case=None, server_port=None):
        self.server_port = server_port
        self.name, self.servers, self.tunnel_port = name, servers, tunnel_port
        self.tunnels, self.workers, self.metrics_port = tunnels, workers, metrics_port
        self.case = case or "%dw" % workers
        # the stall test stops one of two worker processes: go-shadowsocks2 is one process
        self.stallable = workers == 2 and self.case == SS_TUNNEL_CASE and name != GO

    def server_pids(self):
        return [x for p in self.servers for x in p.tree()]

    def victim(self):
        """The process a stall test stops: the worker in slot 1, or libev's second process."""
        if self.metrics_port is None:
            return self.servers[-1].pid
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('reuseproxy_worker_pid{worker="1"}'):
                    return int(float(line.rsplit(" ", 1)[1]))
        return B.children_of(self.servers[0].pid)[-1]


def http_measure(st, rec, section, subj, run, seconds, stall_at=None):
    m = guarded(st, subj.name, lambda: http_once(st, subj, seconds, stall_at))
    r = rec.add(section, subj.case if section == "http" else "stall", subj.name, run, **m)
    log("  %-30s %-12s %8.0f req/s  p50 %6.2f  p99 %7.2f  p99.9 %7.2f ms  server %5.1f us/req  "
        "err %d" % (subj.name, subj.case, r["rps"], r["p50_ms"], r["p99_ms"], r["p999_ms"],
                    r["server_cpu_us_per_req"] or 0, r["errors"]))
    return r


def http_once(st, subj, seconds, stall_at):
    spids, tpids = subj.server_pids(), [x for p in subj.tunnels for x in p.tree()]
    before = B.metrics_accepted(subj.metrics_port) if subj.metrics_port else None
    s0, t0 = B.cpu_seconds(spids), B.cpu_seconds(tpids)
    timers = []
    if stall_at is not None:
        victim = subj.victim()
        timers = [threading.Timer(stall_at, os.kill, (victim, signal.SIGSTOP)),
                  threading.Timer(stall_at + 1.0, os.kill, (victim, signal.SIGCONT))]
        for t in timers:
            t.start()
    try:
        j = wrk(subj.tunnel_port, seconds, st.wrk_connections)
    finally:
        for t in timers:
            t.join()
    s1, t1 = B.cpu_seconds(spids), B.cpu_seconds(tpids)
    n = j["requests"]
    m = dict(rps=n / (j["duration_us"] / 1e6), requests=n,
             p50_ms=j["p50_us"] / 1e3, p99_ms=j["p99_us"] / 1e3, p999_ms=j["p999_us"] / 1e3,
             max_ms=j["max_us"] / 1e3,
             errors=sum(v for k, v in j.items() if k.startswith("errors_")),
             server_cpu_us_per_req=(s1 - s0) / n * 1e6 if n else None,
             tunnel_cpu_us_per_req=(t1 - t0) / n * 1e6 if n else None,
             server_cpu_util=(s1 - s0) / (j["duration_us"] / 1e6),
             loadavg=B.loadavg())
    if before is not None:
        after = B.metrics_accepted(subj.metrics_port)
        for w in sorted(after):
            m["accepted_w%d" % w] = after[w] - before.get(w, 0)
    return m


def section_http(st, rec, builds, stall=True):
    log("== http: wrk -> 2 x ss-tunnel --reuse-port -> server -> nginx (Connection: close)")
    binary = builds["openssl"]["binary"]
    method = HTTP_METHOD
    ng = B.free_port()
    web = B.nginx(ng)
    target = "127.0.0.1:%d" % ng
    subjects, procs = [], []
    modes = ["reuseport", "shared", "dispatch"]
    plan = [(w, m) for w in (1, 2) for m in modes]
    if st.quick:
        plan = [(2, m) for m in modes]
    for workers, mode in plan:
        port, mport, tport = B.free_port(), B.free_port(), B.free_port()
        srv = B.rp_server(binary, method, port, workers=workers, balance=mode, metrics=mport)
        tun = [B.ss_tunnel(method, port, tport, target, reuse_port=True) for _ in range(2)]
        procs += [srv] + tun
        subjects.append(HttpSubject("reuseproxy %dw %s" % (workers, mode), [srv], tport, tun,
                                    workers, mport, server_port=port))
    # cpu_affinity (issue 18): worker i on CPU i, each connection to the receiving CPU's worker
    port, mport, tport = B.free_port(), B.free_port(), B.free_port()
    srv = B.rp_server(binary, method, port, workers=2, metrics=mport, cpu_affinity=True)
    tun = [B.ss_tunnel(method, port, tport, target, reuse_port=True) for _ in range(2)]
    procs += [srv] + tun
    subjects.append(HttpSubject("reuseproxy 2w cpu_affinity", [srv], tport, tun, 2, mport,
                                server_port=port))
    for n in ((2,) if st.quick else (1, 2)):
        port, tport = B.free_port(), B.free_port()
        srv = [B.ss_server(method, port, reuse_port=n > 1) for _ in range(n)]
        tun = [B.ss_tunnel(method, port, tport, target, reuse_port=True) for _ in range(2)]
        procs += srv + tun
        subjects.append(HttpSubject("%s %dp" % (LIBEV, n), srv, tport, tun, n,
                                    server_port=port))
    subjects += http_more_subjects(st, binary, target, subjects, procs)
    # warm-up: first connections fault in pages, fill pools and caches
    for s in subjects:
        wrk(s.tunnel_port, 1, 8)
    for run in range(st.runs):
        for s in subjects:
            http_measure(st, rec, "http", s, run, st.http_seconds)
    if stall:
        log("-- the same with one worker stopped (SIGSTOP) for 1 s mid-run")
        two = [s for s in subjects if s.stallable]
        for run in range(st.runs):
            for s in two:
                http_measure(st, rec, "stall", s, run, st.stall_seconds,
                             stall_at=st.stall_seconds / 2 - 0.5)
    for p in reversed(procs):
        p.stop()
    web.stop()


def http_more_subjects(st, binary, target, subjects, procs):
    """The subjects beside the balance modes: go-shadowsocks2 behind ss-tunnel; reuseproxy's
    tunnel role (openssl) as the fast common client in front of libev's 2 processes,
    go-shadowsocks2 and reuseproxy's 2 reuseport workers (the servers of the ss-tunnel rows,
    reached through a second client); and the SIP022 rows (issue 14), reuseproxy on both ends,
    2022-blake3-aes-256-gcm against aes-256-gcm."""
    method = HTTP_METHOD
    servers = {s.name: s for s in subjects if s.case == SS_TUNNEL_CASE}
    more = []

    def rp_tunnel(m, port):
        tport = B.free_port()
        tun = B.rp_tunnel(binary, m, port, tport, target, workers=2, name="rp-tunnel-http")
        procs.append(tun)
        return tport, [tun]

    if st.go and method in B.GO_CIPHERS:
        port, tport = B.free_port(), B.free_port()
        srv = B.go_server(st.go, method, port)
        tun = [B.ss_tunnel(method, port, tport, target, reuse_port=True) for _ in range(2)]
        procs.extend([srv] + tun)
        servers[GO] = HttpSubject(GO, [srv], tport, tun, 2, server_port=port)
        more.append(servers[GO])
    else:
        log("  (go-shadowsocks2: skipped, %s)" % (
            "no %s" % method if st.go else "GO_SHADOWSOCKS2 unset and not on PATH"))
    for name in ("%s 2p" % LIBEV, GO, "reuseproxy 2w reuseport"):
        s = servers.get(name)
        if s:
            tport, tun = rp_tunnel(method, s.server_port)
            more.append(HttpSubject(name, s.servers, tport, tun, 2, s.metrics_port,
                                    RP_TUNNEL_CASE))
    for m in SIP022_HTTP:
        port = B.free_port()
        srv = B.rp_server(binary, m, port, workers=2, name="rp-server-" + m)
        procs.append(srv)
        tport, tun = rp_tunnel(m, port)
        more.append(HttpSubject(m, [srv], tport, tun, 2, None, SIP022_CASE))
    return more


# ---- udp ---------------------------------------------------------------------------------

UDP_LOSS_OK = 1.0          # per cent: a rate is carried when at most this much is lost


def udp_once(port, servers, tunnels, seconds, rate, omit=0):
    """One iperf3 -u --bidir run at rate (per direction, "0" = as fast as iperf3 sends):
    datagrams/s delivered at both ends, loss, and the proxies' CPU per delivered datagram.
    omit: seconds iperf3 leaves out at the start (the reverse direction loses a few hundred
    datagrams while both ends start, whatever the proxy: 3 % of a 1 s run at 100 Mbit/s)."""
    spids = [x for p in servers for x in p.tree()]
    tpids = [x for p in tunnels for x in p.tree()]
    extra = ["-b", rate, "-l", "512", "--bidir"] + (["-O", str(omit)] if omit else [])
    s0, t0 = B.cpu_seconds(spids), B.cpu_seconds(tpids)
    j, _ = iperf3_client(port, seconds, udp=True, extra=extra)
    s1, t1 = B.cpu_seconds(spids), B.cpu_seconds(tpids)
    sent = lost = 0
    secs = seconds
    for k in ("sum", "sum_bidir_reverse"):
        s = j["end"].get(k)
        if s:
            sent += s["packets"]
            lost += s["lost_packets"]
            secs = s["seconds"]
    got = sent - lost
    # the CPU time covers the omitted second too, which carried as much at the same rate
    carried = got * (secs + omit) / secs if secs else got
    return dict(dgrams_per_s=got / secs, loss_pct=100.0 * lost / sent if sent else None,
                server_cpu_us_per_dgram=(s1 - s0) / carried * 1e6 if got else None,
                tunnel_cpu_us_per_dgram=(t1 - t0) / carried * 1e6 if got else None)


def udp_probe(st, port, servers, tunnels, rate, probes):
    """One rate of a capacity search. A rate that loses too much is tried once more: a single
    scheduling hiccup of a second on this 2-core machine can lose a few per cent at any rate,
    while a rate above capacity loses every time."""
    for _ in range(2):
        m = udp_once(port, servers, tunnels, st.udp_probe_seconds, "%gM" % rate, omit=1)
        probes.append((rate, round(m["loss_pct"] or 0, 2)))
        if m["loss_pct"] is not None and m["loss_pct"] <= UDP_LOSS_OK:
            break
    return m


def udp_capacity(st, port, servers, tunnels):
    """The highest offered rate carried with at most UDP_LOSS_OK % loss (the RFC 2544 notion of
    throughput): up in steps of st.udp_step Mbit/s per direction until a rate loses more, then
    two halvings of the step between the last rate carried and the first one not. Each probe
    runs st.udp_probe_seconds after one second left out. CPU figures are those of the
    highest rate carried (the omitted second counts in them, at the same rate)."""
    good, bad, probes = None, None, []
    rate = st.udp_step
    while rate <= st.udp_max_rate:
        m = udp_probe(st, port, servers, tunnels, rate, probes)
        if m["loss_pct"] is not None and m["loss_pct"] <= UDP_LOSS_OK:
            good = (rate, m)
            rate += st.udp_step
        else:
            bad = rate
            break
    if good and bad:
        lo, hi = good[0], bad
        for _ in range(2):
            mid = (lo + hi) / 2.0
            m = udp_probe(st, port, servers, tunnels, mid, probes)
            if m["loss_pct"] is not None and m["loss_pct"] <= UDP_LOSS_OK:
                good, lo = (mid, m), mid
            else:
                hi = mid
    if not good:
        return dict(dgrams_per_s=0.0, rate_mbit=0.0, loss_pct=None, probes=probes)
    out = dict(good[1])
    out["rate_mbit"] = good[0]
    out["probes"] = probes
    return out


def section_udp(st, rec, builds):
    log("== udp: iperf3 -u --bidir -l 512 through tunnel -> server -> iperf3")
    binary = builds["openssl"]["binary"]
    method = UDP_METHOD
    ip = B.free_port()
    iperf = B.iperf3_server(ip)
    target = "127.0.0.1:%d" % ip
    procs = []
    p_r, p_l = B.free_port(), B.free_port()
    s_r = B.rp_server(binary, method, p_r, workers=2, udp=True)
    s_l = [B.ss_server(method, p_l, reuse_port=True, udp=True) for _ in range(2)]
    t_lib, t_pair, t_srv = B.free_port(), B.free_port(), B.free_port()
    tun_lib = [B.ss_tunnel(method, p_l, t_lib, target, reuse_port=True, udp=True)
               for _ in range(2)]
    tun_pair = [B.rp_tunnel(binary, method, p_r, t_pair, target, workers=2, udp=True)]
    tun_srv = [B.ss_tunnel(method, p_r, t_srv, target, reuse_port=True, udp=True)
               for _ in range(2)]
    procs = [s_r] + s_l + tun_lib + tun_pair + tun_srv
    subjects = {LIBEV: (t_lib, s_l, tun_lib),
                "reuseproxy pair": (t_pair, [s_r], tun_pair),
                "reuseproxy server": (t_srv, [s_r], tun_srv)}
    if st.go and method in B.GO_CIPHERS:   # ss-tunnel -> go-shadowsocks2, as the row above
        p_g, t_go = B.free_port(), B.free_port()
        s_g = B.go_server(st.go, method, p_g, udp=True)
        tun_go = [B.ss_tunnel(method, p_g, t_go, target, reuse_port=True, udp=True)
                  for _ in range(2)]
        procs += [s_g] + tun_go
        subjects[GO] = (t_go, [s_g], tun_go)
    for run in range(st.runs):
        for name, (port, servers, tunnels) in subjects.items():
            r = rec.add("udp", "capacity", name, run, **guarded(
                st, name, lambda: udp_capacity(st, port, servers, tunnels)))
            log("  %-20s carried %9.0f datagrams/s (%g Mbit/s each way, loss %.1f%%)  server "
                "%.2f us/datagram  probes %s" % (
                    name, r["dgrams_per_s"], r["rate_mbit"], r["loss_pct"] or 0,
                    r.get("server_cpu_us_per_dgram") or 0,
                    " ".join("%g:%g%%" % p for p in r["probes"])))
        for name, (port, servers, tunnels) in (() if st.quick else subjects.items()):
            r = rec.add("udp", "overload", name, run, **guarded(
                st, name, lambda: udp_once(port, servers, tunnels, st.udp_seconds, "0")))
            log("  %-20s overload %8.0f datagrams/s  loss %5.1f%%  server %.2f us/datagram" % (
                name, r["dgrams_per_s"], r["loss_pct"] or 0, r["server_cpu_us_per_dgram"] or 0))
    for p in reversed(procs):
        p.stop()
    iperf.stop()


# ---- memory ------------------------------------------------------------------------------

def open_idle(port, count, timeout=60.0):
    """count TCP connections to port, connected and idle. Returns the sockets."""
    import selectors
    socks, pending = [], {}
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    opened = 0
    while (opened < count or pending) and time.monotonic() < deadline:
        while opened < count and len(pending) < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
            sel.register(s, selectors.EVENT_WRITE)
            opened += 1
        for key, _ in sel.select(0.5):
            s = pending.pop(key.fd)
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(s)
            else:
                s.close()
    for s in pending.values():
        sel.unregister(s)
        s.close()
    sel.close()
    return socks


def count_fds(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


def settle(pids, want_fds, timeout):
    """Waits until pids hold want_fds descriptors or their count stops growing for a second."""
    last, still = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count_fds(pids)
        if n >= want_fds:
            return n
        if n != last:
            last, still = n, time.monotonic()
        elif time.monotonic() - still > 1.5:
            return n
        time.sleep(0.1)
    return count_fds(pids)


class UdpSink:
    """The other end of the association test: receives and counts distinct senders."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.senders = set()
        self.stopped = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopped:
            try:
                _, addr = self.sock.recvfrom(2048)
                self.senders.add(addr)
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.t.join(2)
        self.sock.close()


def memory_snapshot(pids):
    return {"pss": B.memory_kib(pids), "rss": B.memory_kib(pids, "Rss"),
            "own": B.memory_kib(pids, shared_anon=False)}


def memory_per(before, after, n, unit):
    """KiB per unit between two snapshots: Pss, Rss, and Pss without the shared mappings
    (reuseproxy's salt store, mapped in whole when a worker starts on Linux 5.14 and later; on
    older kernels it fills page by page as salts arrive)."""
    if not n:
        return {}
    return {"pss_kib_per_" + unit: (after["pss"] - before["pss"]) / n,
            "rss_kib_per_" + unit: (after["rss"] - before["rss"]) / n,
            "own_kib_per_" + unit: (after["own"] - before["own"]) / n}


def udp_associations(port, sink, count, method):
    """Opens count associations on the server at port, through two ss-tunnel -u (libev's tunnel
    keeps at most 256 associations and its server 512, so 2 x 250 stays under both caps).
    Returns (the tunnels, the client sockets); the first 20 associations are a warm-up."""
    tuns = []
    for _ in range(2):
        tp = B.free_port()
        tuns.append((tp, B.ss_tunnel(method, port, tp, "127.0.0.1:%d" % sink.port, udp=True)))
    clients = []

    def add(n):
        for i in range(n):
            tp = tuns[len(clients) % 2][0]
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.bind(("127.0.0.1", 0))
            c.sendto(b"association", ("127.0.0.1", tp))
            clients.append(c)
            if i % 50 == 49:
                time.sleep(0.01)
        B.wait_for(lambda: len(sink.senders) >= len(clients), 10.0, 0.05)
        time.sleep(0.3)
    return tuns, clients, add


def section_memory(st, rec, builds):
    log("== memory: %d idle connections, %d UDP associations through ss-tunnel -> server" % (
        st.idle_connections, st.udp_associations))
    binary = builds["openssl"]["binary"]
    method = HTTP_METHOD
    ng = B.free_port()
    web = B.nginx(ng)
    sink = UdpSink()
    for run in range(1 if st.quick else 2):
        for name in ("reuseproxy", LIBEV):
            # Two server processes and two tunnels: 10,000 connections are 20,000 descriptors
            # in each, more than one process may hold where RLIMIT_NOFILE's hard limit is
            # 20,000 (as on the machine these figures come from).
            port = B.free_port()
            if name == LIBEV:
                servers = [B.ss_server(method, port, reuse_port=True, udp=True)
                           for _ in range(2)]
            else:
                servers = [B.rp_server(binary, method, port, workers=2, udp=True)]
            pids = [x for p in servers for x in p.tree()]
            # UDP first, on a fresh server: memory freed by the TCP test would hide it
            sink.senders.clear()
            tuns, clients, add = udp_associations(port, sink, st.udp_associations, method)
            add(20)
            n0, m0 = len(sink.senders), memory_snapshot(pids)
            add(st.udp_associations - 20)
            n, m1 = len(sink.senders) - n0, memory_snapshot(pids)
            r = rec.add("memory", "udp association", name, run, count=n,
                        **memory_per(m0, m1, n, "assoc"))
            log("  %-12s %6d UDP associations: %.2f KiB Pss each (%.2f without the shared "
                "salt store)" % (name, n, r.get("pss_kib_per_assoc", 0),
                                 r.get("own_kib_per_assoc", 0)))
            for c in clients:
                c.close()
            for _, t in tuns:
                t.stop()
            # Idle TCP. Warm-up: pools, caches, the first heap pages and libev's salt Bloom
            # filter (every salt sets bits all over it) are not per connection.
            tport = B.free_port()
            tuns = [B.ss_tunnel(method, port, tport, "127.0.0.1:%d" % ng, reuse_port=True)
                    for _ in range(2)]
            warm = open_idle(tport, 300)
            settle(pids, count_fds(pids) + 2 * len(warm), 5.0)
            for s in warm:
                s.close()
            time.sleep(1.0)
            fds0, m0 = count_fds(pids), memory_snapshot(pids)
            socks = open_idle(tport, st.idle_connections)
            fds1 = settle(pids, fds0 + 2 * len(socks), 30.0)
            time.sleep(0.5)
            m1 = memory_snapshot(pids)
            held = (fds1 - fds0) // 2
            r = rec.add("memory", "idle tcp", name, run, count=held,
                        **memory_per(m0, m1, held, "conn"))
            log("  %-12s %6d idle connections: %.2f KiB Pss each (%.2f without the shared "
                "salt store), %.2f KiB Rss" % (name, held, r.get("pss_kib_per_conn", 0),
                                                r.get("own_kib_per_conn", 0),
                                                r.get("rss_kib_per_conn", 0)))
            for s in socks:
                s.close()
            for t in tuns:
                t.stop()
            for p in servers:
                p.stop()
    sink.stop()
    web.stop()


# ---- summary tables ------------------------------------------------------------------------

def summary_tables(med, raw):
    by = {(m["section"], m["case"], m["subject"]): m for m in med}

    def get(section, case, subject, key):
        m = by.get((section, case, subject))
        return m.get(key) if m else None

    ceil = [m for m in med if m["section"] == "ceiling"]
    if ceil:
        print_table("Ceilings: loopback TCP without a proxy, and through two plain relays "
                    "(iperf3; socat)", ["case/streams", "Gbit/s"],
                    [[m["case"], fmt(m["gbps"])] for m in sorted(ceil, key=lambda m: m["case"])])
    aead = [m for m in med if m["section"] == "aead"]
    if aead:
        print_table("AEAD speed (bench/aead_speed, 16383-byte chunks)",
                    ["method", "backend", "seal MB/s", "open MB/s"],
                    [[m["case"], m["subject"], fmt(m["seal_MBps"], 0), fmt(m["open_MBps"], 0)]
                     for m in sorted(aead, key=lambda m: (m["subject"], m["case"]))])
    bulk = [m for m in med if m["section"] == "bulk"]
    if bulk:
        rows = []
        for case in sorted({m["case"] for m in bulk}, key=lambda c: (int(c.split("/")[1]), c)):
            base = get("bulk", case, LIBEV, "gbps")
            base_cpu = get("bulk", case, LIBEV, "server_cpu_s_per_GB")
            go, go_cpu = get("bulk", case, GO, "gbps"), get("bulk", case, GO,
                                                           "server_cpu_s_per_GB")
            for m in sorted((m for m in bulk if m["case"] == case),
                            key=lambda m: (m["subject"] != LIBEV, m["subject"])):
                rows.append([case, m["subject"], fmt(m["gbps"]), fmt(ratio(m["gbps"], base)),
                             fmt(ratio(m["gbps"], go)), fmt(m["server_cpu_s_per_GB"], 3),
                             fmt(ratio(m["server_cpu_s_per_GB"], base_cpu)),
                             fmt(ratio(m["server_cpu_s_per_GB"], go_cpu)),
                             fmt(m["tunnel_cpu_s_per_GB"], 3)])
        print_table("TCP bulk throughput (medians; ratios = subject / libev, / go-shadowsocks2)",
                    ["method/streams", "subject", "Gbit/s", "/libev", "/go", "srv CPU s/GB",
                     "/libev", "/go", "tun CPU s/GB"], rows)
    for section, title in (("http", "Short HTTP requests (medians)"),
                           ("stall", "One worker stopped for 1 s mid-run (medians)")):
        ms = [m for m in med if m["section"] == section]
        if not ms:
            continue
        rows = []
        for m in sorted(ms, key=lambda m: (m["case"], m["subject"].startswith(LIBEV),
                                           m["subject"])):
            base_name = "%s %sp" % (LIBEV, m["case"][0]) if section == "http" else "libev 2p"
            if m["case"] == SIP022_CASE:
                base_name = SIP022_HTTP[0]
            base = by.get((section, m["case"], base_name))
            go = by.get((section, m["case"], GO))
            rows.append([m["subject"], m["case"], fmt(m["rps"], 0),
                         fmt(ratio(m["rps"], base and base["rps"])),
                         fmt(ratio(m["rps"], go and go["rps"])),
                         fmt(m["p50_ms"]), fmt(m["p99_ms"]), fmt(m["p999_ms"]),
                         fmt(m["max_ms"], 0), fmt(m["server_cpu_us_per_req"], 1),
                         fmt(ratio(m["server_cpu_us_per_req"],
                                   base and base["server_cpu_us_per_req"])),
                         fmt(ratio(m["server_cpu_us_per_req"],
                                   go and go["server_cpu_us_per_req"])),
                         fmt(m["errors"], 0)])
        print_table(title + "; ratios against libev with as many processes (sip022: against "
                    "aes-256-gcm) and go-shadowsocks2, with the same client",
                    ["subject", "client", "req/s", "/base", "/go", "p50 ms", "p99 ms",
                     "p99.9 ms", "max ms", "srv us/req", "/base", "/go", "errors"], rows)
    fair = fairness(raw)
    if fair:
        print_table("Fairness: each worker's share of accepted connections (all http runs)",
                    ["subject", "connections", "worker 0", "worker 1"],
                    [[f["subject"], f["connections"], "%.1f%%" % f["share_w0"],
                      "%.1f%%" % f["share_w1"]] for f in fair])
    for case, title in (("capacity", "UDP capacity: the most carried with at most %g%% loss "
                                      "(iperf3 -u --bidir -l 512, medians)" % UDP_LOSS_OK),
                        ("overload", "UDP overload (iperf3 -u --bidir -b 0 -l 512, medians)")):
        udp = [m for m in med if m["section"] == "udp" and m["case"] == case]
        if not udp:
            continue
        base = get("udp", case, LIBEV, "dgrams_per_s")
        base_cpu = get("udp", case, LIBEV, "server_cpu_us_per_dgram")
        go = get("udp", case, GO, "dgrams_per_s")
        print_table(title, ["subject", "datagrams/s", "/libev", "/go", "Mbit/s each way",
                            "loss %", "srv us/dgram", "/libev"],
                    [[m["subject"], fmt(m["dgrams_per_s"], 0),
                      fmt(ratio(m["dgrams_per_s"], base)), fmt(ratio(m["dgrams_per_s"], go)),
                      fmt(m.get("rate_mbit"), 1),
                      fmt(m.get("loss_pct"), 1), fmt(m.get("server_cpu_us_per_dgram")),
                      fmt(ratio(m.get("server_cpu_us_per_dgram"), base_cpu))]
                     for m in sorted(udp, key=lambda m: (m["subject"] != LIBEV, m["subject"]))])
    mem = [m for m in med if m["section"] == "memory"]
    if mem:
        rows = []
        for m in sorted(mem, key=lambda m: (m["case"], m["subject"])):
            u = "conn" if m["case"] == "idle tcp" else "assoc"
            base = by.get(("memory", m["case"], LIBEV), {})
            rows.append([m["case"], m["subject"], int(m["count"]),
                         fmt(m.get("pss_kib_per_" + u)),
                         fmt(ratio(m.get("pss_kib_per_" + u), base.get("pss_kib_per_" + u))),
                         fmt(m.get("own_kib_per_" + u)), fmt(m.get("rss_kib_per_" + u))])
        print_table("Server memory per idle connection / UDP association (medians)",
                    ["case", "subject", "count", "KiB Pss", "ratio", "KiB Pss w/o salt store",
                     "KiB Rss"], rows)


def fairness(raw):
    """Each worker's share of the connections accepted over all http runs of a 2-worker
    reuseproxy."""
    out = []
    for name in sorted({r["subject"] for r in raw if r["section"] == "http"
                        and "accepted_w1" in r}):
        w0 = sum(r.get("accepted_w0", 0) for r in raw if r["section"] == "http"
                 and r["subject"] == name)
        w1 = sum(r.get("accepted_w1", 0) for r in raw if r["section"] == "http"
                 and r["subject"] == name)
        if w0 + w1:
            out.append({"subject": name, "connections": w0 + w1,
                        "share_w0": 100.0 * w0 / (w0 + w1), "share_w1": 100.0 * w1 / (w0 + w1)})
    return out


# ---- machine -------------------------------------------------------------------------------

def tool_version(argv, pattern=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    text = (r.stdout + r.stderr).strip().splitlines()
    for line in text:
        if pattern is None or pattern in line:
            return line.strip()
    return text[0].strip() if text else None


def machine_info(builds, go):
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = line.split(":", 1)[1].split()
                flags = " ".join(x for x in ("aes", "pclmulqdq", "avx2", "avx512f", "sha_ni")
                                 if x in have)
                break
    mem = None
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    osr = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osr = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1048576, 1), "kernel": platform.release(), "os": osr,
        "shadowsocks-libev": tool_version(["ss-server", "-h"], "shadowsocks-libev"),
        "iperf3": tool_version(["iperf3", "-v"]), "wrk": tool_version(["wrk", "-v"], "wrk"),
        "nginx": tool_version(["nginx", "-v"]),
        "openssl": builds.get("openssl", {}).get("version"),
        "mbedtls": builds.get("mbedtls", {}).get("version"),
        "reuseproxy": tool_version([builds["openssl"]["binary"], "--version"]),
        "go-shadowsocks2": ("%s (%s)" % (go, tool_version(["go", "version"]) or "go ?")) if go
        else "skipped: GO_SHADOWSOCKS2 unset and not on PATH",
    }


# ---- main ----------------------------------------------------------------------------------

# the sections' names in the records each one writes
SECTION_RECORDS = {"ceilings": ("ceiling", "aead"), "bulk": ("bulk",), "http": ("http", "stall"),
                   "udp": ("udp",), "memory": ("memory",)}
SECTIONS = {"ceilings": section_ceilings, "bulk": section_bulk, "http": section_http,
            "udp": section_udp, "memory": section_memory}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--openssl-build", required=True, help="build directory (libcrypto backend)")
    ap.add_argument("--mbedtls-build", required=True, help="build directory (mbedTLS backend)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--quick", action="store_true", help="a short run (under 2 minutes)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--runs", type=int, help="runs per row (default 3, quick 1)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sections of OUT/results.json; replace only these")
    args = ap.parse_args()

    st = Settings(args.quick)
    if args.runs:
        st.runs = args.runs
    os.makedirs(args.out, exist_ok=True)
    builds = {}
    for backend, d in (("openssl", args.openssl_build), ("mbedtls", args.mbedtls_build)):
        builds[backend] = {"binary": os.path.join(d, "reuseproxy"),
                           "aead_speed": os.path.join(d, "bench", "aead_speed")}
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for s in only:
        if s not in SECTIONS:
            ap.error("unknown section %r" % s)

    B.setup(os.path.join(args.out, "tmp"))
    log("go-shadowsocks2: %s" % (st.go or "skipped (GO_SHADOWSOCKS2 unset and not on PATH)"))
    nofile = B.raise_nofile()
    rec = Recorder()
    started = time.time()
    load0 = B.loadavg()
    timings = {}
    try:
        for s in SECTIONS:
            if s in only:
                t = time.monotonic()
                SECTIONS[s](st, rec, builds)
                timings[s] = round(time.monotonic() - t, 1)
                log("   (%s took %.0f s)" % (s, timings[s]))
    finally:
        B.stop_all()
    kept = {}
    path = os.path.join(args.out, "results.json")
    if args.merge and os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)
        mine = {k for s in only for k in SECTION_RECORDS[s]}
        rec.raw[:0] = [r for r in kept.get("raw", []) if r["section"] not in mine]
        timings = dict(kept.get("timings_s", {}), **timings)
        only = sorted(set(only) | set(kept.get("sections", [])), key=list(SECTIONS).index)
    med = rec.medians()
    result = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
              "merged_from": kept.get("started") if kept else None,
              "quick": st.quick, "runs": st.runs, "sections": only, "timings_s": timings,
              "loadavg_before": load0, "machine": dict(machine_info(builds, st.go), nofile=nofile),
              "settings": {k: v for k, v in vars(st).items()},
              "fairness": fairness(rec.raw), "medians": med, "raw": rec.raw}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    keys = []
    for r in rec.raw:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(os.path.join(args.out, "raw.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rec.raw)
    summary_tables(med, rec.raw)
    log("\nresults: %s (took %.0f s)" % (os.path.join(args.out, "results.json"),
                                         time.time() - started))


if __name__ == "__main__":
    main()
