#!/usr/bin/env python3
"""render.py: turns bench/out/results.json into docs/BENCHMARKS.md and its charts (gnuplot SVG:
docs/bench-throughput.svg, docs/bench-balance.svg, docs/bench-stall.svg).

The tables, ratios, goals and machine description are generated from the results; the analysis
of what limits each figure is bench/notes.md, written by hand from profiles and included as is.

    bench/render.py [--results bench/out/results.json] [--docs docs]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIBEV = "libev"
GO = "go-shadowsocks2"
BULK_SUBJECTS = ["libev", GO, "reuseproxy-openssl pair", "reuseproxy-mbedtls pair",
                 "reuseproxy-openssl server", "reuseproxy-openssl client"]
# the cases of suite.py's http section
BALANCE_CASES = ("1w", "2w")
CLIENTS = (("2w", "ss-tunnel"), ("2w rp-tunnel", "reuseproxy tunnel"))
RP_2W = "reuseproxy 2w reuseport"
SIP022_CASE = "sip022"
SIP022_PAIRS = (("2022-blake3-aes-256-gcm", "aes-256-gcm"),
                ("2022-blake3-chacha20-poly1305", "chacha20-ietf-poly1305"))


def fmt(v, digits=2, suffix=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f%s" % (digits, v, suffix)
    return "%s%s" % (v, suffix)


def ratio(a, b):
    return a / b if a is not None and b else None


def table(header, rows, align=None):
    align = align or ["l"] + ["r"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


class Results:
    def __init__(self, path):
        with open(path) as f:
            self.j = json.load(f)
        self.by = {(m["section"], m["case"], m["subject"]): m for m in self.j["medians"]}

    def get(self, section, case, subject, key):
        m = self.by.get((section, case, subject))
        return m.get(key) if m else None

    def section(self, name):
        return [m for m in self.j["medians"] if m["section"] == name]

    def raw(self, section, case, subject, key):
        return [r.get(key) for r in self.j["raw"] if r["section"] == section
                and r["case"] == case and r["subject"] == subject]


# ---- charts --------------------------------------------------------------------------------

def gnuplot(script, path):
    try:
        r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True,
                           timeout=60)
    except OSError:
        print("render: gnuplot not found; %s not drawn" % path, file=sys.stderr)
        return False
    if r.returncode != 0:
        print("render: gnuplot failed for %s:\n%s" % (path, r.stderr), file=sys.stderr)
        return False
    return True


SVG_HEAD = """set terminal svg size %d,%d dynamic enhanced font "Helvetica,12" \\
    background rgb "white"
set output "%s"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top left horizontal
set xtics nomirror
set ytics nomirror
"""


def chart_throughput(res, path):
    methods = [c.split("/")[0] for c in sorted({m["case"] for m in res.section("bulk")})
               if c.endswith("/1")]
    if not methods:
        return False
    cols = [s for s in ["libev", GO, "reuseproxy-openssl pair", "reuseproxy-openssl server",
                        "reuseproxy-mbedtls pair"]
            if any(res.get("bulk", m + "/1", s, "gbps") for m in methods)]
    lines = ["method " + " ".join('"%s"' % c for c in cols) + ' "AEAD (openssl, seal)"']
    for m in methods:
        vals = [fmt(res.get("bulk", m + "/1", c, "gbps"), 3) for c in cols]
        aead = res.get("aead", m, "openssl", "seal_MBps")
        vals.append(fmt(aead * 8 / 1000, 3) if aead else "NaN")
        lines.append('"%s" %s' % (m, " ".join(v if v != "-" else "NaN" for v in vals)))
    raw = res.get("ceiling", "loopback/1", "loopback", "gbps")
    chain = res.get("ceiling", "relay chain/1", "relay chain", "gbps")
    s = SVG_HEAD % (900, 460, path)
    s += "$data << EOD\n" + "\n".join(lines) + "\nEOD\n"
    s += 'set title "TCP bulk, 1 stream, tunnel -> server (median Gbit/s; log scale)"\n'
    s += 'set ylabel "Gbit/s"\nset logscale y\nset yrange [0.1:100]\n'
    s += "set key below horizontal\n"
    arrows = []
    if raw:
        arrows.append('set arrow from graph 0, first %f to graph 1, first %f nohead lw 2 '
                      'dt 2 lc rgb "#444444" front' % (raw, raw))
        arrows.append('set label "loopback, no proxy: %.1f" at graph 0.01, first %f offset 0,0.7'
                      % (raw, raw))
    if chain:
        arrows.append('set arrow from graph 0, first %f to graph 1, first %f nohead lw 2 '
                      'dt 3 lc rgb "#aa0000" front' % (chain, chain))
        arrows.append('set label "two plain relays (socat): %.1f" at graph 0.01, first %f '
                      'offset 0,0.7 tc rgb "#aa0000"' % (chain, chain))
    s += "\n".join(arrows) + "\n"
    n = len(cols)
    plots = ["$data using %d:xtic(1) title columnheader(%d)" % (i + 2, i + 2)
             for i in range(n)]
    plots.append("$data using %d title columnheader(%d) fs solid 0.3 lc rgb \"#888888\"" % (
        n + 2, n + 2))
    s += "plot " + ", \\\n     ".join(plots) + "\n"
    return gnuplot(s, path)


def chart_balance(res, path):
    ms = [m for m in res.section("http") if m["case"] in BALANCE_CASES]
    if not ms:
        return False
    order = sorted(ms, key=lambda m: (m["case"], m["subject"].startswith(LIBEV), m["subject"]))
    lines = ['subject "requests/s" "p99 (ms)"']
    for m in order:
        lines.append('"%s" %s %s' % (m["subject"].replace("reuseproxy ", "rp ").replace(
                                         "w ", "w\\n").replace("libev ", "libev\\n"),
                                     fmt(m["rps"], 1), fmt(m["p99_ms"], 3)))
    s = SVG_HEAD % (900, 460, path)
    s += "$data << EOD\n" + "\n".join(lines) + "\nEOD\n"
    s += ('set title "Short HTTP requests through 2 ss-tunnel -> server -> nginx '
          '(medians)"\n')
    s += 'set ylabel "requests/s"\nset y2label "p99 latency (ms)"\nset y2tics nomirror\n'
    s += "set yrange [0:*]\nset y2range [0:*]\nset bmargin 4\n"
    s += ("plot $data using 2:xtic(1) title columnheader(2) axes x1y1, \\\n"
          "     $data using 0:3 with linespoints pt 7 ps 1.2 lw 2 lc rgb \"#cc0000\" "
          "title columnheader(3) axes x1y2\n")
    return gnuplot(s, path)


def chart_stall(res, path):
    ms = res.section("stall")
    if not ms:
        return False
    order = sorted(ms, key=lambda m: (m["subject"].startswith(LIBEV), m["subject"]))
    lines = ['subject "p99, no stall" "p99, stalled" "p99.9, stalled"']
    for m in order:
        normal = res.get("http", "2w", m["subject"], "p99_ms")
        lines.append('"%s\\n%.0f req/s" %s %s %s' % (m["subject"].replace("reuseproxy ", "rp "),
                                                     m["rps"], fmt(normal, 3) if normal else "NaN",
                                        fmt(m["p99_ms"], 3), fmt(m["p999_ms"], 3)))
    s = SVG_HEAD % (900, 460, path)
    s += "$data << EOD\n" + "\n".join(lines) + "\nEOD\n"
    s += ('set title "One of two workers stopped (SIGSTOP) for 1 s mid-run: tail latency '
          '(log scale)"\n')
    s += 'set ylabel "ms"\nset logscale y\nset yrange [1:5000]\nset bmargin 4\n'
    s += ("plot $data using 2:xtic(1) title columnheader(2), "
          "$data using 3 title columnheader(3), $data using 4 title columnheader(4)\n")
    return gnuplot(s, path)


# ---- the document ----------------------------------------------------------------------------

def best_peer(res, section, case, key, low=False):
    """The best of libev's and go-shadowsocks2's medians on a row (the lowest if low)."""
    vals = [v for v in (res.get(section, case, s, key) for s in (LIBEV, GO)) if v]
    return (min(vals) if low else max(vals)) if vals else None


def goals_bulk(res):
    """Issue 18: every 1-stream row >= 1.5x the best peer; with 8 streams (CPU-bound here)
    server CPU per GB <= 0.67x the best peer's. SIP022 within 10 % of SIP004 (issue 14)."""
    out, one, eight = [], [], []
    pair = "reuseproxy-openssl pair"
    for m in sorted(res.section("bulk"), key=lambda m: m["case"]):
        if m["subject"] != pair or m["case"].split("/")[0] in dict(SIP022_PAIRS):
            continue
        if m["case"].endswith("/1"):
            r = ratio(m["gbps"], best_peer(res, "bulk", m["case"], "gbps"))
            if r is not None:
                one.append(("%s %.2fx" % (m["case"].split("/")[0], r), r))
        else:
            r = ratio(m["server_cpu_s_per_GB"],
                      best_peer(res, "bulk", m["case"], "server_cpu_s_per_GB", low=True))
            if r is not None:
                eight.append(("%s %.2fx" % (m["case"].split("/")[0], r), r))
    if one:
        out.append(("Throughput >= 1.5x the best peer (libev, go-shadowsocks2) for every method "
                    "(libcrypto backend, 1 stream, reuseproxy on both ends)",
                    ", ".join(t for t, _ in one), min(r for _, r in one) >= 1.5))
    if eight:
        out.append(("8 streams: server CPU per GB <= 0.67x the best peer's",
                    ", ".join(t for t, _ in eight), max(r for _, r in eight) <= 0.67))
    rows = []
    for m22, m4 in SIP022_PAIRS:
        for streams in (1, 8):
            r = ratio(res.get("bulk", "%s/%d" % (m22, streams), pair, "gbps"),
                      res.get("bulk", "%s/%d" % (m4, streams), pair, "gbps"))
            if r is not None:
                rows.append(("%s/%d %.2fx" % (m22, streams, r), r))
    r = ratio(res.get("http", SIP022_CASE, SIP022_PAIRS[0][0], "rps"),
              res.get("http", SIP022_CASE, SIP022_PAIRS[0][1], "rps"))
    if r is not None:
        rows.append(("%s requests/s %.2fx" % (SIP022_PAIRS[0][0], r), r))
    if rows:
        out.append(("SIP022 throughput and requests/s within 10 % of SIP004 with the same cipher "
                    "(reuseproxy on both ends)", ", ".join(t for t, _ in rows),
                    min(r for _, r in rows) >= 0.9))
    return out


def goals_http(res):
    """Issue 18: requests/s >= 1.15x libev's 2 processes and >= 1.5x go-shadowsocks2, server
    CPU per request <= 0.8x libev's, whatever the client."""
    out = []
    for case, client in CLIENTS:
        rp, lb, go = (res.get("http", case, s, "rps") for s in (RP_2W, LIBEV + " 2p", GO))
        if rp and lb:
            out.append(("2 workers, %s: requests/s >= 1.15x libev's 2 processes" % client,
                        "%.0f vs %.0f: %.2fx" % (rp, lb, rp / lb), rp / lb >= 1.15))
        if rp and go:
            out.append(("2 workers, %s: requests/s >= 1.5x go-shadowsocks2" % client,
                        "%.0f vs %.0f: %.2fx" % (rp, go, rp / go), rp / go >= 1.5))
        rc, lc = (res.get("http", case, s, "server_cpu_us_per_req") for s in (RP_2W,
                                                                              LIBEV + " 2p"))
        if rc and lc:
            out.append(("2 workers, %s: server CPU per request <= 0.8x libev's" % client,
                        "%.1f vs %.1f us: %.2fx" % (rc, lc, rc / lc), rc / lc <= 0.8))
    return out


def goals(res):
    """(goal, measured, met) rows for the issues' goals."""
    out = goals_bulk(res) + goals_http(res)
    ru = res.get("udp", "capacity", "reuseproxy pair", "dgrams_per_s")
    lu = best_peer(res, "udp", "capacity", "dgrams_per_s")
    if ru and lu:
        out.append(("UDP datagrams/s >= 1.5x the best peer (the most carried with at most 1 % "
                    "loss)", "%.0f vs %.0f: %.2fx" % (ru, lu, ru / lu), ru / lu >= 1.5))
    rm = res.get("memory", "idle tcp", "reuseproxy", "pss_kib_per_conn")
    lm = res.get("memory", "idle tcp", LIBEV, "pss_kib_per_conn")
    if rm is not None and lm:
        out.append(("Idle-connection memory <= libev's",
                    "%.1f vs %.1f KiB: %.2fx" % (rm, lm, rm / lm), rm <= lm))
    fair = res.j.get("fairness") or []
    if fair:
        worst = max(fair, key=lambda f: abs(f["share_w0"] - 50))
        ok = all(45 <= f["share_w0"] <= 55 for f in fair)
        enough = all(f["connections"] >= 10000 for f in fair)
        out.append(("Each worker's share 45-55% over 10,000 connections",
                    "worst %s: %.1f%% / %.1f%% of %d" % (worst["subject"], worst["share_w0"],
                                                        worst["share_w1"],
                                                        worst["connections"]),
                    ok and enough))
    return out


def machine_section(res):
    m = res.j["machine"]
    rows = [("CPU", "%s, %d cores (%s)" % (m.get("cpu"), m.get("cores"), m.get("cpu_flags"))),
            ("Memory", "%s GiB; RLIMIT_NOFILE %s" % (m.get("memory_gib"), m.get("nofile"))),
            ("OS, kernel", "%s, Linux %s" % (m.get("os"), m.get("kernel"))),
            ("reuseproxy", (m.get("reuseproxy") or "").replace("\n", " ")),
            ("shadowsocks-libev", m.get("shadowsocks-libev")),
            ("go-shadowsocks2", m.get("go-shadowsocks2")),
            ("OpenSSL (libcrypto backend)", m.get("openssl")),
            ("mbedTLS (mbedtls backend)", m.get("mbedtls")),
            ("iperf3", m.get("iperf3")), ("wrk", m.get("wrk")), ("nginx", m.get("nginx"))]
    return table(["", ""], [(a, b or "-") for a, b in rows], ["l", "l"])


def bulk_tables(res):
    bulk = res.section("bulk")
    out = []
    for streams in (1, 8):
        rows = []
        cases = sorted({m["case"] for m in bulk if m["case"].endswith("/%d" % streams)})
        for case in cases:
            base = res.by.get(("bulk", case, LIBEV), {})
            go = res.by.get(("bulk", case, GO), {})
            for subj in BULK_SUBJECTS:
                m = res.by.get(("bulk", case, subj))
                if not m:
                    continue
                rows.append([case.split("/")[0], subj, fmt(m["gbps"]),
                             fmt(ratio(m["gbps"], base.get("gbps")), 2, "x"),
                             fmt(ratio(m["gbps"], go.get("gbps")), 2, "x"),
                             fmt(m["server_cpu_s_per_GB"], 3),
                             fmt(ratio(m["server_cpu_s_per_GB"],
                                       base.get("server_cpu_s_per_GB")), 2, "x"),
                             fmt(ratio(m["server_cpu_s_per_GB"],
                                       go.get("server_cpu_s_per_GB")), 2, "x"),
                             fmt(m["tunnel_cpu_s_per_GB"], 3)])
        if rows:
            out.append("**%d stream%s**\n\n" % (streams, "s" if streams > 1 else "") + table(
                ["method", "client -> server", "Gbit/s", "vs libev", "vs go-shadowsocks2",
                 "server CPU s/GB", "vs libev", "vs go-shadowsocks2", "client CPU s/GB"], rows,
                ["l", "l"] + ["r"] * 7))
    return "\n\n".join(out)


def udp_table(res, case, rate):
    rows = []
    base = res.by.get(("udp", case, LIBEV), {})
    go = res.by.get(("udp", case, GO), {})
    for m in sorted((m for m in res.section("udp") if m["case"] == case),
                    key=lambda m: (m["subject"] != LIBEV, m["subject"])):
        rows.append([m["subject"], fmt(m["dgrams_per_s"], 0),
                     fmt(ratio(m["dgrams_per_s"], base.get("dgrams_per_s")), 2, "x"),
                     fmt(ratio(m["dgrams_per_s"], go.get("dgrams_per_s")), 2, "x")] +
                    ([fmt(m.get("rate_mbit"), 1)] if rate else []) +
                    [fmt(m["loss_pct"], 1), fmt(m.get("server_cpu_us_per_dgram")),
                     fmt(ratio(m.get("server_cpu_us_per_dgram"),
                               base.get("server_cpu_us_per_dgram")), 2, "x"),
                     fmt(m.get("tunnel_cpu_us_per_dgram"))])
    return table(["client -> server", "datagrams/s", "vs libev", "vs go-shadowsocks2"] +
                 (["Mbit/s each way"] if rate else []) +
                 ["loss %", "server CPU us/datagram", "vs libev", "client CPU us/datagram"], rows)


def http_table(res, section):
    ms = [m for m in res.section(section) if section != "http" or m["case"] in BALANCE_CASES]
    rows = []
    for m in sorted(ms, key=lambda m: (m["case"], m["subject"].startswith(LIBEV),
                                       m["subject"])):
        base_name = "%s %sp" % (LIBEV, m["case"][0]) if section == "http" else "libev 2p"
        base = res.by.get((section, m["case"], base_name), {})
        rows.append([m["subject"], fmt(m["rps"], 0), fmt(ratio(m["rps"], base.get("rps")), 2,
                                                         "x"),
                     fmt(m["p50_ms"]), fmt(m["p99_ms"]), fmt(m["p999_ms"]), fmt(m["max_ms"], 0),
                     fmt(m["server_cpu_us_per_req"], 1),
                     fmt(ratio(m["server_cpu_us_per_req"], base.get("server_cpu_us_per_req")),
                         2, "x"),
                     fmt(m["tunnel_cpu_us_per_req"], 1), fmt(m["errors"], 0)])
    return table(["server", "req/s", "vs libev", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                  "server CPU us/req", "vs libev", "clients' CPU us/req", "errors"], rows)


def rps_tables(res):
    """Requests/s and server CPU per request of each server behind each client, with the ratios
    against libev's and go-shadowsocks2's in the same run, with the same client."""
    servers = [LIBEV + " 2p", GO, RP_2W]
    out = []
    for key, what, digits in (("rps", "req/s", 0), ("server_cpu_us_per_req",
                                                    "server CPU us/req", 1)):
        header, rows = ["server"], []
        for _, client in CLIENTS:
            header += ["%s, %s" % (what, client), "vs libev", "vs go-shadowsocks2"]
        for srv in servers:
            row = [srv]
            for case, _ in CLIENTS:
                v = res.get("http", case, srv, key)
                row += [fmt(v, digits),
                        fmt(ratio(v, res.get("http", case, LIBEV + " 2p", key)), 2, "x"),
                        fmt(ratio(v, res.get("http", case, GO, key)), 2, "x")]
            if any(c != "-" for c in row[1::3]):
                rows.append(row)
        if rows:
            out.append(table(header, rows))
    return "\n\n".join(out)


def sip022_table(res):
    """SIP022 against SIP004 with the same cipher, reuseproxy on both ends (issue 14)."""
    pair, rows = "reuseproxy-openssl pair", []
    for m22, m4 in SIP022_PAIRS:
        for streams in (1, 8):
            a = res.get("bulk", "%s/%d" % (m22, streams), pair, "gbps")
            b = res.get("bulk", "%s/%d" % (m4, streams), pair, "gbps")
            if a is not None:
                rows.append([m22, "bulk, %d stream%s, Gbit/s" % (streams, "s" * (streams > 1)),
                             fmt(a), fmt(b), fmt(ratio(a, b), 2, "x")])
        for key, what, digits in (("rps", "requests/s", 0),
                                  ("server_cpu_us_per_req", "server CPU us/request", 1)):
            a = res.get("http", SIP022_CASE, m22, key)
            b = res.get("http", SIP022_CASE, m4, key)
            if a is not None:
                rows.append([m22, what, fmt(a, digits), fmt(b, digits),
                             fmt(ratio(a, b), 2, "x")])
    return table(["SIP022 method", "figure", "SIP022", "SIP004, same cipher", "SIP022 / SIP004"],
                 rows, ["l", "l", "r", "r", "r"]) if rows else ""


def render(res, docs):
    j = res.j
    charts = {}
    for name, fn in (("bench-throughput.svg", chart_throughput),
                     ("bench-balance.svg", chart_balance), ("bench-stall.svg", chart_stall)):
        if fn(res, os.path.join(docs, name)):
            charts[name] = True
    st = j.get("settings", {})
    parts = []
    parts.append("# Benchmarks\n")
    parts.append("<!-- Generated by bench/render.py from bench/out/results.json (`make bench` "
                 "or `bench/run`); the analysis comes from bench/notes.md. Edit those, not "
                 "this file. -->\n")
    parts.append("reuseproxy against Debian's shadowsocks-libev, measured in the same run on "
                 "the same machine, alternating, %d run%s per row; every figure is the median. "
                 "Run %s%s (the suite took %.0f s; load average %.2f before it started)." % (
                     j["runs"], "s" if j["runs"] > 1 else "",
                     j["started"] + (" and %s (each section from one of the two runs: "
                                     "`bench/run --only ... --merge`)" % j["merged_from"]
                                     if j.get("merged_from") else ""),
                     ", **quick mode**" if j.get("quick") else "",
                     sum(j.get("timings_s", {}).values()), j.get("loadavg_before", 0)))
    retried = sum(r.get("retried", 0) for r in j["raw"])
    limit = st.get("max_foreign_cores", 0.25)
    foreign = sorted(r["foreign_cores"] for r in j["raw"] if "foreign_cores" in r)
    if foreign:
        still = sum(1 for f in foreign if f > limit)
        parts.append("Other work on the machine during the runs: median %.2f cores, at most "
                     "%.2f. %d run%s repeated because it exceeded %.2f cores; %d of the %d "
                     "runs kept still exceeded it, the %d repeats allowed being used up. "
                     "Ratios hold "
                     "better than absolute figures under such load, since every row was "
                     "measured alternately with libev's." % (
                         foreign[len(foreign) // 2], foreign[-1], retried,
                         "s were" if retried != 1 else " was", limit, still, len(foreign),
                         retried) if still else
                     "Other work on the machine during the runs: median %.2f cores, at most "
                     "%.2f; %d run%s repeated because it exceeded %.2f cores." % (
                         foreign[len(foreign) // 2], foreign[-1], retried,
                         "s were" if retried != 1 else " was", limit))
    g = goals(res)
    if g:
        parts.append("## Goals\n")
        parts.append(table(["goal (issues 7, 14, 18)", "measured", "met"],
                           [(a, b, "yes" if ok else "**no**") for a, b, ok in g],
                           ["l", "l", "l"]))
        parts.append("Where a goal is missed, [what limits it](#what-limits-the-figures) "
                     "says why, from profiles.")
    parts.append("## How it is measured\n")
    parts.append(METHOD_TEXT % {
        "iperf": st.get("iperf_seconds"), "omit": st.get("iperf_omit", 0),
        "http": st.get("http_seconds"),
        "stall": st.get("stall_seconds"), "conns": st.get("wrk_connections"),
        "udp": st.get("udp_seconds"), "idle": st.get("idle_connections"),
        "assoc": st.get("udp_associations")})
    parts.append("## Machine\n")
    parts.append(machine_section(res))
    # ceilings
    ceil = res.section("ceiling")
    aead = res.section("aead")
    if ceil or aead:
        parts.append("## 1. Ceilings\n")
    if ceil:
        parts.append(table(["path (iperf3)", "streams", "Gbit/s"],
                           [(m["case"].split("/")[0], m["case"].split("/")[1], fmt(m["gbps"]))
                            for m in sorted(ceil, key=lambda m: m["case"])]))
        parts.append("*loopback*: iperf3 to iperf3, no proxy. *relay chain*: through two "
                     "socat relays (`-b 131072`), the two hops tunnel -> server add, without "
                     "crypto: no relay pair on this machine can pass more.")
    if aead:
        methods = sorted({m["case"] for m in aead})
        rows = []
        for meth in methods:
            row = [meth]
            for b in ("openssl", "mbedtls"):
                row += [fmt(res.get("aead", meth, b, "seal_MBps"), 0),
                        fmt(res.get("aead", meth, b, "open_MBps"), 0)]
            o = res.get("aead", meth, "openssl", "seal_MBps")
            row.append(fmt(o * 8 / 1000, 1) if o else "-")
            rows.append(row)
        parts.append("AEAD speed of each backend, one core (`bench/aead_speed`, 16383-byte "
                     "chunks, MB/s = 10^6 bytes/s):\n")
        parts.append(table(["method", "openssl seal", "openssl open", "mbedtls seal",
                            "mbedtls open", "openssl seal in Gbit/s"], rows))
    if res.section("bulk"):
        parts.append("## 2. TCP bulk throughput\n")
        parts.append("iperf3 client -> *client* -> *server* -> iperf3 server, %s s measured per run "
                     "after %s s left out (`iperf3 -O`: TCP's and the relays' warm-up). "
                     "*libev*: ss-tunnel -> ss-server; *reuseproxy-X pair*: reuseproxy's "
                     "tunnel -> reuseproxy's server, both with backend X; *reuseproxy-openssl "
                     "server*: ss-tunnel -> reuseproxy (the server side alone); "
                     "*reuseproxy-openssl client*: reuseproxy's tunnel -> ss-server (the client "
                     "side alone); *go-shadowsocks2*: reuseproxy's tunnel (openssl) -> "
                     "go-shadowsocks2, to set against *reuseproxy-openssl pair* (the same "
                     "client). reuseproxy runs 2 workers, libev 2 `--reuse-port` processes "
                     "on each side, go-shadowsocks2 one process with GOMAXPROCS 2. CPU is the user + system time of the server's (client's) "
                     "processes per GB carried, over the measured part." %
                     (st.get("iperf_seconds"), st.get("iperf_omit", 0)))
        if charts.get("bench-throughput.svg"):
            parts.append("![throughput per method against the ceilings](bench-throughput.svg)")
        parts.append(bulk_tables(res))
    if res.section("http"):
        parts.append("## 3. Short HTTP requests: rate, latency, CPU per request\n")
        parts.append("wrk (`-t2 -c%s`, `Connection: close`, %s s per run) -> two `ss-tunnel "
                     "--reuse-port` -> server -> nginx (1 worker, a 42-byte static body). "
                     "Every request is a new connection on each hop. *Server CPU* counts the "
                     "server's processes only (master and workers); on 2 cores wrk, the "
                     "tunnels, nginx and the server share the CPUs, so requests/s moves "
                     "with everyone's cost and CPU per request is the server's own. Ratios "
                     "are against libev with as many processes as reuseproxy has workers." % (
                         st.get("wrk_connections"), st.get("http_seconds")))
        if charts.get("bench-balance.svg"):
            parts.append("![requests/s and p99 per balance mode](bench-balance.svg)")
        parts.append(http_table(res, "http"))
        if res.get("http", CLIENTS[1][0], RP_2W, "rps") or res.get("http", "2w", GO, "rps"):
            parts.append("### Requests/s by client: libev, go-shadowsocks2, reuseproxy\n")
            parts.append("The same load against each server with 2 processes (libev: 2 "
                         "`ss-server --reuse-port`; go-shadowsocks2: one process, GOMAXPROCS 2; "
                         "reuseproxy: 2 reuseport workers), behind two clients in turn: two "
                         "`ss-tunnel --reuse-port` as above, and reuseproxy's own tunnel role "
                         "(libcrypto backend, 2 workers), the fast common client. Ratios are "
                         "against libev's and go-shadowsocks2's medians with the same client, "
                         "in the same run.")
            parts.append(rps_tables(res))
    sip022 = sip022_table(res)
    if sip022:
        parts.append("### Shadowsocks 2022 against SIP004 with the same cipher\n")
        parts.append("reuseproxy's tunnel -> reuseproxy's server (libcrypto backend, 2 workers "
                     "each) for both: bulk as in section 2, requests/s as above (there "
                     "2022-blake3-aes-256-gcm against aes-256-gcm).")
        parts.append(sip022)
    if res.section("stall"):
        parts.append("## 4. One worker stopped for a second\n")
        parts.append("The same load, %s s per run; after %.1f s one of the two workers (libev: "
                     "one of its two processes) is stopped with SIGSTOP for 1 s, then "
                     "continued. With per-worker accept queues (SO_REUSEPORT: reuseproxy's "
                     "*reuseport*, and libev's `--reuse-port`) the kernel keeps hashing half "
                     "the new connections to the stopped worker, where they wait: the p99 "
                     "shows the stall. *shared* (one queue, EPOLLEXCLUSIVE) lets the running "
                     "worker take everything." % (st.get("stall_seconds"),
                                                  (st.get("stall_seconds") or 0) / 2 - 0.5))
        if charts.get("bench-stall.svg"):
            parts.append("![tail latency with a stalled worker](bench-stall.svg)")
        parts.append(http_table(res, "stall"))
    if res.section("udp"):
        parts.append("## 5. UDP\n")
        parts.append(
            "512-byte datagrams both ways at once (`iperf3 -u --bidir -l 512`) through tunnel "
            "-> server -> iperf3 (the tunnel and the server relay iperf3's TCP control "
            "connection too). Datagrams/s counts what arrived at both ends.\n\n"
            "**Capacity** is the most a relay carries with at most 1 %% loss, RFC 2544's "
            "throughput: each run offers 100, 200, ... Mbit/s each way until a rate loses more, "
            "then halves the step twice between the last rate carried and the first one "
            "not; a rate that loses more is tried once more before it counts as not carried (a "
            "scheduling hiccup can lose a few per cent at any rate; above capacity every try "
            "loses); each probe is iperf3 `-t %s -O 1` (the first second, in which both ends start "
            "and the reverse direction loses a few hundred datagrams whatever the relay, is "
            "left out). CPU per datagram is read at the highest rate carried." %
            st.get("udp_probe_seconds", 1))
        parts.append(udp_table(res, "capacity", rate=True))
        parts.append(
            "**Overload**: `-b 0` for %s s, iperf3 sending as fast as it can. Then the two "
            "iperf3 ends take most of the two cores, the relays get what the scheduler leaves "
            "them and nearly everything is lost at the first hop, so these figures move a lot "
            "from run to run; they show how each relay holds up when flooded, not its "
            "capacity." % st.get("udp_seconds"))
        parts.append(udp_table(res, "overload", rate=False))
        parts.append("*libev*: ss-tunnel -> ss-server; *reuseproxy pair*: reuseproxy's tunnel "
                     "-> reuseproxy; *reuseproxy server*: ss-tunnel -> reuseproxy; "
                     "*go-shadowsocks2*: ss-tunnel -> go-shadowsocks2 (`-udp`, GOMAXPROCS 2).")
    if res.section("memory"):
        parts.append("## 6. Memory\n")
        rows = []
        for m in sorted(res.section("memory"), key=lambda m: (m["case"], m["subject"])):
            u = "conn" if m["case"] == "idle tcp" else "assoc"
            base = res.by.get(("memory", m["case"], LIBEV), {})
            rows.append([m["case"], m["subject"], int(m["count"]), fmt(m.get("pss_kib_per_" + u)),
                         fmt(ratio(m.get("pss_kib_per_" + u), base.get("pss_kib_per_" + u)),
                             2, "x"),
                         fmt(m.get("own_kib_per_" + u)), fmt(m.get("rss_kib_per_" + u))])
        parts.append(table(["what", "server", "count", "KiB Pss each", "vs libev",
                            "KiB Pss each without the salt store", "KiB Rss each"], rows))
        parts.append(MEMORY_TEXT % {"idle": st.get("idle_connections"),
                                    "assoc": st.get("udp_associations")})
    fair = j.get("fairness") or []
    if fair:
        parts.append("## 7. Fairness\n")
        parts.append("Each worker's share of the connections accepted during all the runs of "
                     "section 3 (from reuseproxy's metrics, `reuseproxy_accepted_total`):\n")
        parts.append(table(["server", "connections", "worker 0", "worker 1"],
                           [(f["subject"], f["connections"], "%.1f%%" % f["share_w0"],
                             "%.1f%%" % f["share_w1"]) for f in fair]))
    notes = os.path.join(HERE, "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            parts.append(f.read().strip())
    parts.append("## Reproducing\n")
    parts.append(REPRO_TEXT)
    text = "\n\n".join(p.strip("\n") for p in parts) + "\n"
    with open(os.path.join(docs, "BENCHMARKS.md"), "w") as f:
        f.write(text)
    return text


METHOD_TEXT = """\
* Everything runs on loopback on one machine: the load generators (iperf3, wrk, a small Python
  client for idle connections), the other end (iperf3, nginx), the clients and the server under
  test. Processes are started on free ports and stopped by PID.
* reuseproxy and shadowsocks-libev are measured **in the same run, alternating**: run 1 of every
  row, then run 2 of every row, and so on, so a disturbance of the machine hits both. Each table
  shows the median of the runs, and *vs libev* is reuseproxy's median over libev's.
* When the server is measured, the client is libev's `ss-tunnel` for both servers; when the
  client side is measured, reuseproxy's tunnel and `ss-tunnel` both talk to `ss-server`.
  go-shadowsocks2 (a third server: one Go process, GOMAXPROCS 2) is measured in the same runs
  when found (`GO_SHADOWSOCKS2=path` or on PATH; `bench/run` builds it from ../shared/peers
  when that exists), behind reuseproxy's tunnel for bulk, and behind both clients for
  requests/s; without it its rows say "-".
* **CPU time** is read from `/proc/PID/task/*/schedstat` (nanoseconds of run time, user and
  system) of the measured processes, master and workers together, before and after each run.
  On loopback the kernel's TCP work for a packet is charged to the process that sends it, so
  these figures include the kernel's cost of what each process sends.
* Durations: bulk and ceilings %(iperf)s s per run after %(omit)s s of warm-up; HTTP %(http)s s per run with %(conns)s connections;
  stalled worker %(stall)s s per run; UDP capacity 1 s per probed rate after 1 s left out,
  overload %(udp)s s per run; memory with %(idle)s idle
  connections and %(assoc)s UDP associations.
* Method for HTTP, UDP and memory: chacha20-ietf-poly1305 (HTTP, memory), aes-256-gcm (UDP);
  replay protection is on in both (libev's Bloom filter, reuseproxy's salt store)."""

MEMORY_TEXT = """\
%(idle)s connections are opened through one `ss-tunnel` to the server and left idle (the tunnel
sends its salt and the address header, the server connects to nginx, nobody sends more); the
server's memory (Pss summed over its processes, from `/proc/PID/smaps`) is read before and after
and divided by the connections held. A warm-up of 300 connections comes first, so the
allocator's pools and libev's salt Bloom filter, which every salt sets bits all over, are
already resident. reuseproxy's salt store is a fixed table (64 MiB at the default
`replay_capacity` of 2^20) that each worker maps in whole when it starts (Linux 5.14 and later;
before, its pages became resident as salts landed in them, during the first ~10^5 salts). The
column *without the salt store* leaves those shared mappings out. UDP: %(assoc)s client sockets send one datagram each through two `ss-tunnel -u`
(libev's tunnel keeps at most 256 associations and its server 512, so the test stays under both
caps)."""

REPRO_TEXT = """\
```sh
./autogen.sh && mkdir -p build && cd build && ../configure && make -j"$(nproc)"
make bench              # the full suite, under 10 minutes; or, from the source tree:
bench/run               # installs iperf3, wrk, nginx-light, socat, gnuplot-nox if missing
bench/run --quick       # one run of a subset, under 2 minutes
bench/run --only http,udp --runs 5
bench/run --render-only # docs/BENCHMARKS.md and the charts again from bench/out/results.json
```

Raw results: `bench/out/results.json` (every run and the medians) and `bench/out/raw.csv`.
Use a quiet machine: other work on the cores moves every figure here."""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "out", "results.json"))
    ap.add_argument("--docs", default=os.path.join(HERE, "..", "docs"))
    args = ap.parse_args()
    res = Results(args.results)
    render(res, args.docs)
    print("render: wrote %s" % os.path.join(args.docs, "BENCHMARKS.md"))


if __name__ == "__main__":
    main()
