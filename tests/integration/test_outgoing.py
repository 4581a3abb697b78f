"""test_outgoing.py: the options of outgoing sockets (issue 16), each against the real binary in
a network namespace the test makes (skipped without root and iproute2):

  local_ipv4_address / local_ipv6_address   the target sees the connection (and the datagrams)
                                             come from that address
  outbound_bind_interface                   SO_BINDTODEVICE: an interface that does not exist
                                             fails the connect, "lo" reaches a loopback target
  fwmark                                    SO_MARK: an nftables counter on the mark counts the
                                             server's TCP and UDP towards the target
  keep_alive                                SO_KEEPALIVE with its idle time, on the outgoing and
                                             the accepted connection (ss shows the timer)
  mptcp                                     IPPROTO_MPTCP where the namespace has it (ss -M),
                                             plain TCP with one warning where it is off
  server probes                             with several servers, the master's probes carry
                                             fwmark and the source address too

Path in every test: a reuseproxy tunnel -> a reuseproxy server (the options under test) -> a
target in the same namespace, checked byte for byte.
"""
import re
import shutil
import socket
import time

import harness as h

M = "aes-128-gcm"
PW = "outgoing-secret"


def skip_without_netns():
    why = h.Netns.available()
    if why:
        raise h.Skip(why)


def server(ns, **kw):
    port = h.free_port()
    cfg = h.server_config(port, method=M, password=PW, workers=1, **kw)
    return ns.reuseproxy(cfg, "server"), port


def tunnel(ns, server_port, target, mode="tcp_only"):
    port = h.free_port()
    cfg = {"role": "tunnel", "server": "127.0.0.1", "server_port": server_port, "password": PW,
           "method": M, "local_address": "127.0.0.1", "local_port": port,
           "tunnel_address": target, "workers": 0, "mode": mode, "timeout": 30}
    return ns.reuseproxy(cfg, "tunnel"), port


def roundtrip(ns, port, data, timeout=20):
    """data through the tunnel at 127.0.0.1:port in ns; what came back (until EOF)."""
    s = ns.socket()
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return h.transfer(None, None, data, timeout=timeout, connect=lambda: s)


def udp_roundtrip(ns, port, data, timeout=10):
    s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(65536)
            except socket.timeout:
                continue
        return None
    finally:
        s.close()


def test_outgoing_source_addresses():
    """local_ipv4_address and local_ipv6_address: TCP over both families and UDP leave from
    the configured source address (loopback holds 127.0.0.2; fd00:5::2 is added to it)."""
    skip_without_netns()
    ns = h.Netns("out")
    targets = []
    try:
        ns.ip("addr", "add", "fd00:5::1/128", "dev", "lo", "nodad")
        ns.ip("addr", "add", "fd00:5::2/128", "dev", "lo", "nodad")
        t4 = h.NetnsEcho(ns, socket.AF_INET, "127.0.0.1", udp=True)
        t6 = h.NetnsEcho(ns, socket.AF_INET6, "fd00:5::1")
        targets += [t4, t6]
        _, sp = server(ns, local_ipv4_address="127.0.0.2", local_ipv6_address="fd00:5::2",
                       mode="tcp_and_udp")
        _, p4 = tunnel(ns, sp, "127.0.0.1:%d" % t4.port, mode="tcp_and_udp")
        _, p6 = tunnel(ns, sp, "[fd00:5::1]:%d" % t6.port)
        data = h.pattern(100000, 3)
        assert roundtrip(ns, p4, data) == data
        assert roundtrip(ns, p6, data) == data
        assert udp_roundtrip(ns, p4, b"ping-4") == b"ping-4"
        assert t4.peers == ["127.0.0.2"], t4.peers
        assert t6.peers == ["fd00:5::2"], t6.peers
        assert t4.udp_peers and set(t4.udp_peers) == {"127.0.0.2"}, t4.udp_peers
    finally:
        for t in targets:
            t.stop()
        h.cleanup_all()
        ns.close()


def test_outgoing_bind_interface():
    """outbound_bind_interface: SO_BINDTODEVICE on every outgoing socket: an interface that
    does not exist makes the connect fail (logged, the client closed, the target never
    reached); "lo" reaches a target on loopback."""
    skip_without_netns()
    ns = h.Netns("out")
    t = None
    try:
        t = h.NetnsEcho(ns, socket.AF_INET, "127.0.0.1")
        bad, sp = server(ns, outbound_bind_interface="rpnosuch0")
        _, p = tunnel(ns, sp, "127.0.0.1:%d" % t.port)
        assert roundtrip(ns, p, b"x" * 1000) == b""
        assert t.peers == []
        assert h.wait_for(lambda: "No such device" in bad.output(), 10), bad.output()[-2000:]
        _, sp2 = server(ns, outbound_bind_interface="lo")
        _, p2 = tunnel(ns, sp2, "127.0.0.1:%d" % t.port)
        data = h.pattern(50000, 4)
        assert roundtrip(ns, p2, data) == data
        assert len(t.peers) == 1
    finally:
        if t:
            t.stop()
        h.cleanup_all()
        ns.close()


def nft_packets(ns, table):
    """The packet counts of table's counters, in rule order."""
    return [int(n) for n in re.findall(r"counter packets (\d+)", ns.run("nft", "list", "table",
                                                                         "inet", table))]


def test_outgoing_fwmark():
    """fwmark: the server's connection, datagrams and DNS queries (c-ares' sockets) carry the
    mark, which nftables rules count; a server without it is not counted."""
    skip_without_netns()
    if not shutil.which("nft"):
        raise h.Skip("needs nft (Debian: nftables)")
    ns = h.Netns("out")
    t = None
    try:
        t = h.NetnsEcho(ns, socket.AF_INET, "127.0.0.1", udp=True)
        dns = h.free_port()  # nobody answers there: the query is only counted
        rules = ("table inet rpmark {\n chain out {\n  type filter hook output priority 0;\n"
                 "  meta mark 77 tcp dport %d counter\n  meta mark 77 udp dport %d counter\n"
                 "  tcp dport %d counter\n  meta mark 77 udp dport %d counter\n }\n}\n"
                 % (t.port, t.port, t.port, dns))
        try:
            ns.run("nft", "-f", "-", stdin=rules)
        except RuntimeError as e:
            raise h.Skip("nftables refused: %s" % e)
        _, plain = server(ns, mode="tcp_and_udp")
        _, pp = tunnel(ns, plain, "127.0.0.1:%d" % t.port)
        assert roundtrip(ns, pp, b"unmarked") == b"unmarked"
        assert nft_packets(ns, "rpmark")[0] == 0
        _, sp = server(ns, fwmark=77, mode="tcp_and_udp", nameserver="127.0.0.1:%d" % dns)
        _, p = tunnel(ns, sp, "127.0.0.1:%d" % t.port, mode="tcp_and_udp")
        assert roundtrip(ns, p, b"marked") == b"marked"
        assert udp_roundtrip(ns, p, b"marked-udp") == b"marked-udp"
        _, pn = tunnel(ns, sp, "name.invalid:%d" % t.port)
        s = ns.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", pn))
        s.sendall(b"resolve me")
        assert h.wait_for(lambda: nft_packets(ns, "rpmark")[3] > 0, 10)
        s.close()
        tcp_marked, udp_marked, tcp_all, _ = nft_packets(ns, "rpmark")
        assert tcp_marked > 0 and udp_marked > 0, (tcp_marked, udp_marked)
        assert tcp_all > tcp_marked  # the unmarked server's packets were counted apart
    finally:
        if t:
            t.stop()
        h.cleanup_all()
        ns.close()


def test_outgoing_keep_alive():
    """keep_alive: SO_KEEPALIVE with the given idle time on the server's connection to the
    target and on the connection it accepted (ss -o shows a keepalive timer on both)."""
    skip_without_netns()
    if not shutil.which("ss"):
        raise h.Skip("needs ss (iproute2)")
    ns = h.Netns("out")
    t = None
    try:
        t = h.NetnsEcho(ns, socket.AF_INET, "127.0.0.1")
        _, sp = server(ns, keep_alive=37)
        _, p = tunnel(ns, sp, "127.0.0.1:%d" % t.port)
        s = ns.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", p))
        s.sendall(b"hold")
        assert h.recv_exact(s, 4) == b"hold"
        # columns without a state filter's: Recv-Q Send-Q Local Peer [timer:(...)]
        rows = ns.run("ss", "-tnoH", "state", "established").splitlines()
        to_target = [r for r in rows if r.split()[3].endswith(":%d" % t.port)]
        accepted = [r for r in rows if r.split()[2].endswith(":%d" % sp)]
        assert to_target and all("keepalive" in r for r in to_target), rows
        assert accepted and all("keepalive" in r for r in accepted), rows
        s.close()
    finally:
        if t:
            t.stop()
        h.cleanup_all()
        ns.close()


def test_outgoing_mptcp():
    """mptcp: with net.mptcp.enabled the server's connection to the target is an MPTCP socket
    (listed by ss -M; the target speaks plain TCP, which MPTCP falls back to); with it off the
    connection is plain TCP and the log says so once."""
    skip_without_netns()
    ns = h.Netns("out")
    t = None
    try:
        try:
            ns.run("sysctl", "-qw", "net.mptcp.enabled=1")
        except RuntimeError as e:
            raise h.Skip("no Multipath TCP in this kernel: %s" % e)
        t = h.NetnsEcho(ns, socket.AF_INET, "127.0.0.1")
        srv, sp = server(ns, mptcp=True)
        _, p = tunnel(ns, sp, "127.0.0.1:%d" % t.port)
        s = ns.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", p))
        s.sendall(b"mp")
        assert h.recv_exact(s, 2) == b"mp"
        rows = [r for r in ns.run("ss", "-MnH").splitlines() if r.strip()]
        assert any(":%d" % t.port in r for r in rows), rows
        s.close()
        assert "Multipath" not in srv.output()
        ns.run("sysctl", "-qw", "net.mptcp.enabled=0")
        srv2, sp2 = server(ns, mptcp=True)
        _, p2 = tunnel(ns, sp2, "127.0.0.1:%d" % t.port)
        for i in range(3):
            assert roundtrip(ns, p2, b"tcp%d" % i) == b"tcp%d" % i
        log = srv2.output()
        assert log.count("no Multipath TCP") == 1, log[-2000:]
    finally:
        if t:
            t.stop()
        h.cleanup_all()
        ns.close()


def test_outgoing_server_probes_carry_the_options():
    """Several servers: the master probes each one every server_check_interval, and a probe
    leaves as the connections it stands for do: with fwmark and from local_ipv4_address, which
    nftables counts. (On a router whose rules send unmarked TCP to a redir role, an unmarked
    probe would be caught by the redir itself and vouch for a server that is gone.)"""
    skip_without_netns()
    if not shutil.which("nft"):
        raise h.Skip("needs nft (Debian: nftables)")
    ns = h.Netns("out")
    try:
        ports = [server(ns)[1], server(ns)[1]]
        rules = ("table inet rpprobe {\n chain out {\n  type filter hook output priority 0;\n"
                 "  tcp dport { %d, %d } ip saddr 127.0.0.2 meta mark 77 counter\n"
                 "  tcp dport { %d, %d } counter\n }\n}\n" % tuple(ports * 2))
        try:
            ns.run("nft", "-f", "-", stdin=rules)
        except RuntimeError as e:
            raise h.Skip("nftables refused: %s" % e)
        cfg = {"role": "tunnel", "local_address": "127.0.0.1", "local_port": h.free_port(),
               "tunnel_address": "127.0.0.1:9", "workers": 1, "server_check_interval": 1,
               "fwmark": 77, "local_ipv4_address": "127.0.0.2",
               "servers": [{"server": "127.0.0.1", "server_port": p, "method": M,
                            "password": PW} for p in ports]}
        tun = ns.reuseproxy(cfg, "tunnel")
        # two rounds of two probes, each a handshake, a first flight and a close: 3+ packets
        assert h.wait_for(lambda: nft_packets(ns, "rpprobe")[1] >= 12, 15), \
            (nft_packets(ns, "rpprobe"), tun.output()[-2000:])
        marked, total = nft_packets(ns, "rpprobe")
        assert marked == total, (marked, total)
        assert "does not answer its probe" not in tun.output(), tun.output()[-2000:]
    finally:
        h.cleanup_all()
        ns.close()
