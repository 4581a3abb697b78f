"""test_redir.py: the redir role (issue 16), ss-redir's job, as a router runs it. Three network
namespaces made by the test (skipped with the reason without root, iproute2, nft or TPROXY):

    client 10.215.N.2 --- 10.215.N.1 router 10.216.N.1 --- 10.216.N.2 target (198.18.N.10)

The client talks to the "remote" 198.18.N.10 as if nothing were in between. In the router,
nftables sends that traffic to reuseproxy's redir role (2 workers), which sends it through a
reuseproxy server (127.0.0.1, same router) to the real target; the router does not forward, so
whatever reaches the target came through the proxy (the target sees the router's address).

  REDIRECT   TCP: SO_ORIGINAL_DST; bytes checked both ways. The server's own connection to the
             target would be redirected again by the router's output rule, but carries fwmark,
             which that rule lets pass. A connection made to the redir port itself is refused.
  TPROXY     TCP: the accepted socket's local address (a connection made to the redir port
             itself is refused as a loop); UDP: IP_ORIGDSTADDR, and the DNS-like
             answer arrives from the address the client asked (198.18.N.10:53).
Each over IPv4 and over IPv6 (fd00:215:N::/64 and fd00:216:N::/64, remote 2001:db8:18:N::10).
  Failover   TPROXY over two servers, one killed by PID mid-test: every UDP flow still answered,
             from the remote asked (the answers carry fwmark), TCP byte-checked, and the
             per-server series (connections; UDP associations, failovers, datagrams each way)
             say where the flows went.
"""
import re
import shutil
import signal
import socket
import time

import harness as h

M = "chacha20-ietf-poly1305"
PW = "redir-secret"
MARK = 255


class Router:
    """The three namespaces and their addresses; close() removes them."""

    def __init__(self):
        why = h.Netns.available()
        if why:
            raise h.Skip(why)
        if not shutil.which("nft"):
            raise h.Skip("needs nft (Debian: nftables)")
        n = 1 + (time.monotonic_ns() // 1000) % 250
        self.client_ip, self.router_lan = "10.215.%d.2" % n, "10.215.%d.1" % n
        self.router_wan, self.target_ip = "10.216.%d.1" % n, "10.216.%d.2" % n
        self.remote = "198.18.%d.10" % n
        self.v6 = {"client": "fd00:215:%x::2" % n, "lan": "fd00:215:%x::1" % n,
                   "wan": "fd00:216:%x::1" % n, "target": "fd00:216:%x::2" % n,
                   "remote": "2001:db8:18:%x::10" % n, "remote_net": "2001:db8:18:%x::/64" % n}
        self.ns = []
        try:
            self.client, self.router, self.target = (self._ns("c"), self._ns("r"),
                                                     self._ns("t"))
            self.router.veth(self.client, "rplan", "rpc0")
            self.router.veth(self.target, "rpwan", "rpt0")
            self.client.ip("addr", "add", self.client_ip + "/24", "dev", "rpc0")
            self.client.ip("route", "add", "default", "via", self.router_lan)
            self.router.ip("addr", "add", self.router_lan + "/24", "dev", "rplan")
            self.router.ip("addr", "add", self.router_wan + "/24", "dev", "rpwan")
            self.router.ip("route", "add", "198.18.%d.0/24" % n, "via", self.target_ip)
            self.target.ip("addr", "add", self.target_ip + "/24", "dev", "rpt0")
            self.target.ip("addr", "add", self.remote + "/32", "dev", "lo")
            self.target.ip("route", "add", "default", "via", self.router_wan)
            v6 = self.v6
            for ns, addr, dev in ((self.client, v6["client"], "rpc0"),
                                  (self.router, v6["lan"], "rplan"),
                                  (self.router, v6["wan"], "rpwan"),
                                  (self.target, v6["target"], "rpt0")):
                ns.ip("addr", "add", addr + "/64", "dev", dev, "nodad")
            self.target.ip("addr", "add", v6["remote"] + "/128", "dev", "lo", "nodad")
            self.client.ip("-6", "route", "add", "default", "via", v6["lan"])
            self.router.ip("-6", "route", "add", v6["remote_net"], "via", v6["target"])
            self.target.ip("-6", "route", "add", "default", "via", v6["wan"])
        except Exception:
            self.close()
            raise

    def _ns(self, tag):
        ns = h.Netns("redir" + tag)
        self.ns.append(ns)
        return ns

    def nft(self, rules):
        try:
            self.router.run("nft", "-f", "-", stdin=rules)
        except RuntimeError as e:
            raise h.Skip("nftables refused the rules (no REDIRECT/TPROXY in this kernel?): %s" % e)

    def start_proxies(self, tcp_redir, mode="tcp_only", local_address="0.0.0.0"):
        """The server and the redir role (2 workers, listening on local_address) in the router,
        both with fwmark. Returns the redir's port."""
        sp, rp = h.free_port(), h.free_port()
        self.router.reuseproxy(h.server_config(sp, method=M, password=PW, workers=1,
                                               fwmark=MARK, mode=mode), "server")
        self.redir = self.router.reuseproxy(
            {"role": "redir", "tcp_redir": tcp_redir, "server": "127.0.0.1", "server_port": sp,
             "password": PW, "method": M, "local_address": local_address, "local_port": rp,
             "workers": 2, "mode": mode, "fwmark": MARK, "timeout": 30}, "redir")
        return rp

    def close(self):
        for ns in self.ns:
            ns.close()


def client_roundtrip(r, family, host, port, data, timeout=20):
    s = r.client.socket(family)
    s.settimeout(timeout)
    s.connect((host, port))
    return h.transfer(None, None, data, timeout=timeout, connect=lambda: s)


class Path:
    """The addresses of one family: the remote the client asks for, the router's LAN address,
    the router's WAN address (the target's peer), the nft family and its address match."""

    def __init__(self, r, family):
        v4 = family == socket.AF_INET
        self.family = family
        self.remote = r.remote if v4 else r.v6["remote"]
        self.lan = r.router_lan if v4 else r.v6["lan"]
        self.wan = r.router_wan if v4 else r.v6["wan"]
        self.table, self.daddr = ("ip", "ip daddr") if v4 else ("ip6", "ip6 daddr")
        self.any = "0.0.0.0" if v4 else "::"
        self.local_route = "0.0.0.0/0" if v4 else "::/0"


def check_tcp(r, p, echo):
    """Sizes from 5 bytes to 1 MiB through the redir path, byte for byte both ways, over
    several connections (so both workers take some)."""
    for i, size in enumerate([65536, 1 << 20, 1000, 70000, 5, 300000]):
        data = h.pattern(size, i)
        got = client_roundtrip(r, p.family, p.remote, echo.port, data)
        assert got == data, "connection %d: %d bytes back of %d" % (i, len(got), size)
    assert echo.peers and set(echo.peers) == {p.wan}, echo.peers


def check_direct_refused(r, p, rp, echo, why):
    """A connection made to the redir port itself (not diverted) is closed, nothing relayed,
    and the log says why."""
    before = len(echo.peers)
    s = r.client.socket(p.family)
    s.settimeout(20)
    s.connect((p.lan, rp))
    try:
        s.sendall(b"loop?")
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert len(echo.peers) == before
    assert h.wait_for(lambda: why in r.redir.output(), 10), r.redir.output()[-2000:]


def run_tcp_redirect(family):
    r = Router()
    p = Path(r, family)
    echo = None
    try:
        echo = h.NetnsEcho(r.target, family, p.remote)
        rp = r.start_proxies("redirect", local_address=p.any)
        r.nft("table %s rpredir {\n"
              " chain pre {\n  type nat hook prerouting priority dstnat;\n"
              "  iifname \"rplan\" %s %s tcp dport %d redirect to :%d\n }\n"
              " chain out {\n  type nat hook output priority -100;\n"
              "  meta mark %d return\n"
              "  %s %s tcp dport %d redirect to :%d\n }\n}\n"
              % (p.table, p.daddr, p.remote, echo.port, rp, MARK, p.daddr, p.remote, echo.port,
                 rp))
        check_tcp(r, p, echo)
        check_direct_refused(r, p, rp, echo, "not a redirected one")
    finally:
        if echo:
            echo.stop()
        h.cleanup_all()
        r.close()


def test_redir_tcp_redirect():
    """tcp_redir "redirect": nftables REDIRECT in the router's prerouting (the LAN) and
    output (the router's own traffic, with the fwmark exclusion the server's connection
    needs); SO_ORIGINAL_DST names the target."""
    run_tcp_redirect(socket.AF_INET)


def test_redir_tcp_redirect_ipv6():
    """The same over IPv6 (IP6T_SO_ORIGINAL_DST), the redir listening on "::"."""
    run_tcp_redirect(socket.AF_INET6)


def dns_answer(query):
    """A DNS-like answer: the query's id, then "answer:" and the question."""
    return query[:2] + b"answer:" + query[2:]


def run_tproxy(family):
    r = Router()
    p = Path(r, family)
    echo = None
    try:
        echo = h.NetnsEcho(r.target, family, p.remote, udp=True, port=53, udp_answer=dns_answer)
        rp = r.start_proxies("tproxy", mode="tcp_and_udp", local_address=p.any)
        v = "-4" if family == socket.AF_INET else "-6"
        r.router.ip(v, "rule", "add", "fwmark", "1", "lookup", "100")
        r.router.ip(v, "route", "add", "local", p.local_route, "dev", "lo", "table", "100")
        r.nft("table %s rptproxy {\n"
              " chain pre {\n  type filter hook prerouting priority mangle;\n"
              "  iifname \"rplan\" %s %s meta l4proto { tcp, udp } "
              "tproxy to :%d meta mark set 1 accept\n }\n}\n" % (p.table, p.daddr, p.remote, rp))
        check_tcp(r, p, echo)
        check_direct_refused(r, p, rp, echo, "own listening address (a proxy loop)")
        for i in range(8):  # separate flows: separate client ports, both workers
            u = r.client.socket(family, socket.SOCK_DGRAM)
            u.settimeout(1)
            query = bytes([i, 0x42]) + b"example.org?"
            answer = None
            for _ in range(10):
                u.sendto(query, (p.remote, 53))
                try:
                    answer = u.recvfrom(2048)
                    break
                except socket.timeout:
                    continue
            u.close()
            assert answer, "no answer for flow %d: %s" % (i, r.redir.output()[-2000:])
            assert answer[0] == dns_answer(query), answer
            assert answer[1][:2] == (p.remote, 53), answer[1]
        assert set(echo.udp_peers) == {p.wan}, echo.udp_peers
    finally:
        if echo:
            echo.stop()
        h.cleanup_all()
        r.close()


def test_redir_tproxy_tcp_and_udp():
    """tcp_redir "tproxy", and UDP: nftables TPROXY with a mark and the local route for it;
    TCP bytes checked both ways, and each UDP answer comes from the address the client asked
    (198.18.N.10:53), not from the router."""
    run_tproxy(socket.AF_INET)


def test_redir_tproxy_tcp_and_udp_ipv6():
    """The same over IPv6 (IPV6_TRANSPARENT, IPV6_RECVORIGDSTADDR)."""
    run_tproxy(socket.AF_INET6)


def udp_flow_answered(r, p, u, query, tries=20):
    """One DNS-like query from client socket u to the remote, resent every second until
    answered (at most tries times). The answer's (data, source), or None."""
    u.settimeout(1)
    for _ in range(tries):
        u.sendto(query, (p.remote, 53))
        try:
            return u.recvfrom(2048)
        except socket.timeout:
            continue
    return None


def check_udp_flows(r, p, flows, tag):
    """Every flow asks once more; each answer is the right one, from the remote asked."""
    for i, u in enumerate(flows):
        query = bytes([i, 0x42]) + tag + b"?"
        answer = udp_flow_answered(r, p, u, query)
        assert answer, "no answer for flow %d (%s): %s" % (i, tag, r.redir.output()[-2000:])
        assert answer[0] == dns_answer(query), answer
        assert answer[1][:2] == (p.remote, 53), answer[1]


def start_failover_proxies(r, p):
    """Two servers (each its own method and password) and a redir over both (tproxy, round
    robin, probes every second, metrics on 127.0.0.1 in the router), with the TPROXY rule for
    TCP and UDP to the remote and a counter of the UDP answers leaving for the LAN, marked and
    all. Returns ([(server entry, process)], metrics port)."""
    servers = []
    for method, pw in ((M, PW), ("aes-256-gcm", "second-" + PW)):
        port = h.free_port()
        proc = r.router.reuseproxy(h.server_config(port, method=method, password=pw, workers=1,
                                                   fwmark=MARK, mode="tcp_and_udp"),
                                   "server%d" % len(servers))
        servers.append(({"server": "127.0.0.1", "server_port": port, "method": method,
                         "password": pw}, proc))
    rp, mport = h.free_port(), h.free_port()
    r.redir = r.router.reuseproxy(
        {"role": "redir", "tcp_redir": "tproxy", "servers": [s for s, _ in servers],
         "local_address": p.any, "local_port": rp, "workers": 2, "mode": "tcp_and_udp",
         "fwmark": MARK, "timeout": 30, "server_check_interval": 1,
         "balance_servers": "round-robin", "metrics_address": "127.0.0.1:%d" % mport},
        "redir")
    r.router.ip("rule", "add", "fwmark", "1", "lookup", "100")
    r.router.ip("route", "add", "local", p.local_route, "dev", "lo", "table", "100")
    r.nft("table ip rptproxy {\n chain pre {\n  type filter hook prerouting priority mangle;\n"
          "  iifname \"rplan\" ip daddr %s meta l4proto { tcp, udp } th dport 53 "
          "tproxy to :%d meta mark set 1 accept\n }\n"
          " chain out {\n  type filter hook output priority 0;\n"
          "  oifname \"rplan\" udp sport 53 meta mark %d counter\n"
          "  oifname \"rplan\" udp sport 53 counter\n }\n}\n" % (p.remote, rp, MARK))
    return servers, mport


def check_tcp_flows(r, p, count, seed):
    """count connections to the remote's port 53, each byte-checked both ways."""
    for i in range(count):
        data = h.pattern(20000 + i, seed + i)
        assert client_roundtrip(r, p.family, p.remote, 53, data) == data, "connection %d" % i


def test_redir_failover_udp_and_tcp():
    """TPROXY over two servers, round robin: 8 UDP flows answered and 6 TCP connections
    byte-checked, both servers used; one server killed by PID; once it is probed dead, every
    flow is still answered (those on the killed server moved to the other), each answer from
    the remote the client asked and sent with fwmark, new connections all go to the survivor,
    and the per-server UDP series say where the associations went."""
    r = Router()
    p = Path(r, socket.AF_INET)
    echo, flows = None, []
    try:
        echo = h.NetnsEcho(r.target, p.family, p.remote, udp=True, port=53, udp_answer=dns_answer)
        servers, mport = start_failover_proxies(r, p)
        names = ["127.0.0.1:%d" % s["server_port"] for s, _ in servers]
        assert h.wait_for(lambda: all(h.server_series(mport, r.router).get(n, {}).get("up")
                                      == 1 for n in names), 15), h.server_series(mport, r.router)
        for _ in range(8):  # separate flows: separate client ports, both workers, both servers
            flows.append(r.client.socket(p.family, socket.SOCK_DGRAM))
        check_udp_flows(r, p, flows, b"before")
        check_tcp_flows(r, p, 6, 0)
        m = h.server_series(mport, r.router)
        assert all(m[n]["udp_associations"] >= 1 and m[n]["connections"] >= 1
                   for n in names), m  # round robin used both
        killed = servers[1][1]
        killed.signal(signal.SIGKILL)
        killed.wait(5)
        assert h.wait_for(lambda: h.server_series(mport, r.router)[names[1]]["up"] == 0, 15), \
            h.server_series(mport, r.router)
        before = h.server_series(mport, r.router)[names[0]]["connections"]
        check_udp_flows(r, p, flows, b"after")
        check_tcp_flows(r, p, 6, 10)
        m = h.server_series(mport, r.router)
        gone, kept = m[names[1]], m[names[0]]
        assert kept["connections"] == before + 6, m
        assert gone["udp_failovers"] == gone["udp_associations"] >= 1, m
        assert kept["udp_failovers"] == 0 and kept["udp_associations"] == len(flows), m
        assert kept["udp_received"] >= len(flows) and gone["udp_received"] >= 1, m
        assert set(echo.udp_peers) == {p.wan}, echo.udp_peers
        marked, answers = [int(n) for n in re.findall(
            r"counter packets (\d+)", r.router.run("nft", "list", "table", "ip", "rptproxy"))]
        assert marked == answers >= 2 * len(flows), (marked, answers)
    finally:
        for u in flows:
            u.close()
        if echo:
            echo.stop()
        h.cleanup_all()
        r.close()
