"""test_fleet.py: a deployment of several hosts behind existing balancers (issue 19), in network
namespaces this test makes (skipped where the kernel or the user may not):

    cli (10.98.0.2) --- lb (10.98.0.1 | 10.99.0.1) --- bridge --- h1 h2 h3 (10.99.0.11-13)

lb runs HAProxy in TCP mode (send-proxy-v2, health checks every 200 ms) for TCP, nftables dnat
with a jhash of the client's address and port for UDP (a flow stays on one host), Redis
(shared_store) and the echo target. Each host is a reuseproxy master with 2 workers, and a
second one with two users on USERS_PORT (SIP004 users serve TCP only). Checks: TCP and UDP
spread over the hosts; a first flight replayed to another host is refused (Redis); the port's
totals in Redis equal the sum of the hosts' own counters, and each user's totals the sum of the
hosts' per-user counters; a killed host is taken out by HAProxy within its check interval,
after which no connection fails. Timings are printed."""
import re
import json
import os
import shutil
import signal
import subprocess
import time

import harness as h
from test_proxy_protocol import M, PW, record_first_packet

PORT = 8388
USERS_PORT = 8389  # the users' instance on each host (metrics on 9101)
USERS = [{"name": "alice", "password": "alice-fleet"}, {"name": "bob", "password": "bob-fleet"}]
ECHO = 7777
HOSTS = ["10.99.0.11", "10.99.0.12", "10.99.0.13"]
LB_IN, LB_OUT, CLI = "10.99.0.1", "10.98.0.1", "10.98.0.2"
CHECK_INTER = 0.2  # HAProxy's check interval (s); fall 2

ECHO_PY = """
import socket, threading
def tcp():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("%(ip)s", %(port)d)); l.listen(128)
    while True:
        c, _ = l.accept()
        def serve(c=c):
            while True:
                d = c.recv(65536)
                if not d: break
                c.sendall(d)
            c.close()
        threading.Thread(target=serve, daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("%(ip)s", %(port)d))
while True:
    d, a = u.recvfrom(65536); u.sendto(d, a)
"""

# In cli: n TCP round trips and udp_flows UDP flows of 3 datagrams each through the tunnel.
DRIVER_PY = """
import json, socket, sys
n, flows, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ok = fail = 0
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        msg = b"fleet %d " % i * 50
        s.sendall(msg); got = b""
        while len(got) < len(msg):
            d = s.recv(65536)
            if not d: break
            got += d
        s.close()
        ok += got == msg; fail += got != msg
    except OSError:
        fail += 1
uok = ufail = 0
for f in range(flows):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
    for k in range(3):
        try:
            u.sendto(b"flow %d %d" % (f, k), ("127.0.0.1", port))
            d, _ = u.recvfrom(2048)
            uok += d == b"flow %d %d" % (f, k)
        except OSError:
            ufail += 1
    u.close()
print(json.dumps({"ok": ok, "fail": fail, "uok": uok, "ufail": ufail}))
"""

HAPROXY_CFG = """global
    maxconn 1024
    stats socket %(sock)s level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %(lb)s:%(port)d
    default_backend be
backend be
    balance roundrobin
%(servers)s
frontend feu
    bind %(lb)s:%(uport)d
    default_backend beu
backend beu
    balance roundrobin
%(userv)s
"""

NFT = """table ip rpfleet {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr %(lb)s udp dport %(port)d dnat to jhash ip saddr . udp sport mod 3 map { 0 : %(h0)s, 1 : %(h1)s, 2 : %(h2)s }
    }
}
"""


class Net:
    def __init__(self):
        self.tag = "rpf%d" % os.getpid()
        self.ns = {}

    def name(self, n):
        return "%s-%s" % (self.tag, n)

    def run(self, *cmd, ns=None, check=True):
        argv = (["ip", "netns", "exec", self.name(ns)] if ns else []) + list(cmd)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s" % (" ".join(argv), r.stderr.strip()))
        return r.stdout

    def py(self, ns, code, *args):
        return self.run("python3", "-c", code, *args, ns=ns)

    def build(self):
        for n in ["lb", "cli", "h1", "h2", "h3"]:
            self.run("ip", "netns", "add", self.name(n))
            self.ns[n] = self.name(n)
            self.run("ip", "link", "set", "lo", "up", ns=n)
        self.run("ip", "link", "add", "br0", "type", "bridge", ns="lb")
        self.run("ip", "addr", "add", LB_IN + "/24", "dev", "br0", ns="lb")
        self.run("ip", "link", "set", "br0", "up", ns="lb")
        for i, n in enumerate(["h1", "h2", "h3"]):
            self.veth("lb", "b%d" % i, n, "eth0")
            self.run("ip", "link", "set", "b%d" % i, "master", "br0", ns="lb")
            self.run("ip", "link", "set", "b%d" % i, "up", ns="lb")
            self.run("ip", "addr", "add", HOSTS[i] + "/24", "dev", "eth0", ns=n)
            self.run("ip", "link", "set", "eth0", "up", ns=n)
            self.run("ip", "route", "add", "default", "via", LB_IN, ns=n)
        self.veth("lb", "c0", "cli", "eth0")
        self.run("ip", "addr", "add", LB_OUT + "/24", "dev", "c0", ns="lb")
        self.run("ip", "link", "set", "c0", "up", ns="lb")
        self.run("ip", "addr", "add", CLI + "/24", "dev", "eth0", ns="cli")
        self.run("ip", "link", "set", "eth0", "up", ns="cli")
        self.run("ip", "route", "add", "default", "via", LB_OUT, ns="cli")
        self.run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns="lb")

    def veth(self, ns_a, a, ns_b, b):
        tmp = "%s%s" % (self.tag[-8:], a)
        self.run("ip", "link", "add", tmp, "type", "veth", "peer", "name", tmp + "p")
        self.run("ip", "link", "set", tmp, "netns", self.name(ns_a), "name", a)
        self.run("ip", "link", "set", tmp + "p", "netns", self.name(ns_b), "name", b)

    def destroy(self):
        for n in self.ns.values():
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def ns_proc(net, ns, argv, name):
    return h.Proc(["ip", "netns", "exec", net.name(ns)] + argv, name)


def wait_port(net, ns, ip, port, timeout=10):
    code = ("import socket,sys,time\nt=time.time()+%f\n"
            "while time.time()<t:\n"
            "    try: socket.create_connection((%r,%d),timeout=1).close(); sys.exit(0)\n"
            "    except OSError: time.sleep(0.05)\nsys.exit(1)") % (timeout, ip, port)
    assert subprocess.run(["ip", "netns", "exec", net.name(ns), "python3", "-c", code]
                          ).returncode == 0, "%s:%d in %s did not open" % (ip, port, ns)


def metrics_text(net, i, mport=9100):
    code = ("import urllib.request;print(urllib.request.urlopen("
            "'http://127.0.0.1:%d/metrics',timeout=5).read().decode())" % mport)
    return net.py("h%d" % (i + 1), code)


def host_user_metrics(net, i):
    """{(user, field): host i's total over its workers} from its users' instance."""
    out = {}
    for line in metrics_text(net, i, 9101).splitlines():
        m = re.match(r'reuseproxy_user_(\w+)_total\{worker="\d+",port="\d+",user="([^"]*)"\} (\d+)$',
                     line)
        if m:
            out[(m.group(2), m.group(1))] = out.get((m.group(2), m.group(1)), 0) + int(m.group(3))
    return out


def host_metrics(net, i):
    out = {}
    for line in metrics_text(net, i).splitlines():
        if line.startswith("reuseproxy_") and "{" in line:
            k = line.split("{")[0][len("reuseproxy_"):]
            out[k] = out.get(k, 0) + int(line.split()[-1])
    return out


def test_fleet_three_hosts_haproxy_nftables_redis():
    if os.geteuid() != 0:
        raise h.Skip("needs root for network namespaces")
    for tool in ("haproxy", "redis-server", "redis-cli", "nft"):
        if not shutil.which(tool):
            raise h.Skip("%s not installed (.ci/deps installs it)" % tool)
    t_start = time.monotonic()
    net = Net()
    try:
        try:
            net.build()
        except AssertionError as e:
            raise h.Skip("the kernel refused the namespaces: %s" % e)
        try:
            net.run("nft", "-f", "-", ns="lb", check=False)  # nothing: the rule set below
            path = os.path.join(h.TMPDIR, "fleet.nft")
            with open(path, "w") as f:
                f.write(NFT % {"lb": LB_OUT, "port": PORT, "h0": HOSTS[0], "h1": HOSTS[1],
                               "h2": HOSTS[2]})
            net.run("nft", "-f", path, ns="lb")
        except AssertionError as e:
            raise h.Skip("nftables refused in a namespace: %s" % e)
        # lb: echo target, Redis, HAProxy
        echo_path = os.path.join(h.TMPDIR, "fleet_echo.py")
        with open(echo_path, "w") as f:
            f.write(ECHO_PY % {"ip": LB_IN, "port": ECHO})
        ns_proc(net, "lb", ["python3", echo_path], "echo")
        ns_proc(net, "lb", [shutil.which("redis-server"), "--port", "6379", "--bind", LB_IN,
                            "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                "redis")
        wait_port(net, "lb", LB_IN, 6379)
        hosts = []
        for i, ip in enumerate(HOSTS):
            cfg = {"server": "0.0.0.0", "server_port": PORT, "password": PW, "method": M,
                   "mode": "tcp_and_udp", "workers": 2, "timeout": 3, "block_private": False,
                   "proxy_protocol": True, "proxy_protocol_from": [LB_IN + "/32"],
                   "shared_store": "redis://%s:6379" % LB_IN,
                   "metrics_address": "127.0.0.1:9100"}
            hosts.append(ns_proc(net, "h%d" % (i + 1), [h.BINARY, "-c", h.write_config(cfg)],
                                 "host%d" % (i + 1)))
            ucfg = dict(cfg, server_port=USERS_PORT, mode="tcp_only", users=USERS,
                        metrics_address="127.0.0.1:9101")
            del ucfg["password"]
            ns_proc(net, "h%d" % (i + 1), [h.BINARY, "-c", h.write_config(ucfg)],
                    "host%d-users" % (i + 1))
        for i, ip in enumerate(HOSTS):
            wait_port(net, "lb", ip, PORT)
            wait_port(net, "lb", ip, USERS_PORT)

        def server_lines(port):
            return "\n".join("    server h%d %s:%d send-proxy-v2 check check-send-proxy "
                             "inter %dms fall 2 rise 2" % (i + 1, ip, port, CHECK_INTER * 1000)
                             for i, ip in enumerate(HOSTS))
        hcfg = os.path.join(h.TMPDIR, "fleet-haproxy.cfg")
        hsock = os.path.join(h.TMPDIR, "fleet-haproxy.sock")
        with open(hcfg, "w") as f:
            f.write(HAPROXY_CFG % {"lb": LB_OUT, "port": PORT, "servers": server_lines(PORT),
                                   "uport": USERS_PORT, "userv": server_lines(USERS_PORT),
                                   "sock": hsock})
        haproxy = ns_proc(net, "lb", [shutil.which("haproxy"), "-db", "-f", hcfg], "haproxy")
        wait_port(net, "cli", LB_OUT, PORT)
        # cli: a reuseproxy tunnel to the balancer's address, TCP and UDP
        tcfg = {"role": "tunnel", "server": LB_OUT, "server_port": PORT, "password": PW,
                "method": M, "mode": "tcp_and_udp", "local_address": "127.0.0.1",
                "local_port": 1080, "workers": 0, "timeout": 10,
                "tunnel_address": "%s:%d" % (LB_IN, ECHO)}
        ns_proc(net, "cli", [h.BINARY, "-c", h.write_config(tcfg)], "client-tunnel")
        wait_port(net, "cli", "127.0.0.1", 1080)
        for k, u in enumerate(USERS):  # alice on 1081, bob on 1082, TCP only
            ucfg = dict(tcfg, server_port=USERS_PORT, password=u["password"], mode="tcp_only",
                        local_port=1081 + k)
            ns_proc(net, "cli", [h.BINARY, "-c", h.write_config(ucfg)], "tunnel-" + u["name"])
            wait_port(net, "cli", "127.0.0.1", 1081 + k)

        # 1. spread: 30 TCP connections (roundrobin) and 12 UDP flows (jhash)
        t0 = time.monotonic()
        r = json.loads(net.py("cli", DRIVER_PY, "30", "12", "1080"))
        print("traffic: %r in %.1f s" % (r, time.monotonic() - t0))
        assert r["fail"] == 0 and r["ok"] == 30, r
        assert r["ufail"] == 0 and r["uok"] == 36, r
        m = [host_metrics(net, i) for i in range(3)]
        per_host = [x.get("accepted_total", 0) for x in m]
        udp_host = [x.get("udp_packets_in_total", 0) for x in m]
        print("TCP connections per host %r, UDP datagrams per host %r" % (per_host, udp_host))
        assert all(n >= 5 for n in per_host), per_host
        assert sum(udp_host) == 36 and sum(1 for n in udp_host if n) >= 2, udp_host
        assert all(n % 3 == 0 for n in udp_host), "a UDP flow changed hosts: %r" % udp_host
        for k, n in ((0, 12), (1, 21)):  # alice 12 connections, bob 21, over the three hosts
            r = json.loads(net.py("cli", DRIVER_PY, str(n), "0", str(1081 + k)))
            assert r["fail"] == 0 and r["ok"] == n, (USERS[k]["name"], r)
        spread = [host_user_metrics(net, i).get(("bob", "connections"), 0) for i in range(3)]
        print("bob's connections per host %r" % spread)
        assert sum(1 for n in spread if n) >= 2, spread

        # 2. a first flight replayed to another host is refused (Redis)
        packet = record_first_packet(ECHO, target_host=LB_IN)
        send = ("import socket,struct,sys,time\n"
                "hdr=b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n\\x21\\x11'+struct.pack('>H',12)+"
                "socket.inet_aton('10.98.0.77')+socket.inet_aton('10.98.0.1')+"
                "struct.pack('>HH',4242,8388)\n"
                "s=socket.create_connection((sys.argv[1],8388),timeout=5)\n"
                "s.sendall(hdr+bytes.fromhex(sys.argv[2]))\n"
                "try: print(len(s.recv(100)))\n"
                "except OSError: print(0)\n")
        first = int(net.py("lb", send, HOSTS[0], packet.hex()))
        again = int(net.py("lb", send, HOSTS[1], packet.hex()))
        print("replay: first host answered %d bytes, the other host %d" % (first, again))
        assert first > 0 and again == 0
        assert host_metrics(net, 1).get("replays_total", 0) == 1

        # 3. the port's totals in Redis equal the sum of the hosts' counters. HAProxy's health
        # checks are connections too: they are paused (stats socket) while the totals settle.
        def haproxy_cmd(cmd):
            import socket as sk
            c = sk.socket(sk.AF_UNIX)
            c.settimeout(5)
            c.connect(hsock)
            c.sendall(cmd.encode() + b"\n")
            out = c.recv(4096)
            c.close()
            return out
        for i in range(3):
            haproxy_cmd("disable health be/h%d" % (i + 1))
        keys = ("accepted_total", "bytes_in_total", "bytes_out_total")

        def totals():
            hosts_sum = [sum(x.get(k, 0) for x in [host_metrics(net, i) for i in range(3)])
                         for k in keys]
            red = [int(net.run("redis-cli", "-h", LB_IN, "GET", "rp:port:%d:%s" % (PORT, k),
                               ns="lb").strip() or 0)
                   for k in ("connections", "bytes_in", "bytes_out")]
            totals.last = (hosts_sum, red)
            return hosts_sum == red
        assert h.wait_for(totals, 15, interval=0.5), "hosts vs Redis: %r" % (totals.last,)
        print("totals (connections, bytes in, bytes out): hosts %r = Redis %r" % totals.last)

        # ... and each user's totals the sum of the hosts' per-user counters (pushed by each
        # host's master once, whatever the workers)
        def user_totals():
            per_host = [host_user_metrics(net, i) for i in range(3)]
            hosts_sum, red = {}, {}
            for u in USERS:
                for f in ("connections", "bytes_in", "bytes_out"):
                    hosts_sum[(u["name"], f)] = sum(x.get((u["name"], f), 0) for x in per_host)
                    red[(u["name"], f)] = int(net.run(
                        "redis-cli", "-h", LB_IN, "GET", "rp:user:%s:%s" % (u["name"], f),
                        ns="lb").strip() or 0)
            user_totals.last = (hosts_sum, red)
            return hosts_sum == red and hosts_sum[("bob", "connections")] >= 21
        assert h.wait_for(user_totals, 15, interval=0.5), \
            "hosts vs Redis per user: %r" % (user_totals.last,)
        print("per-user totals: hosts = Redis %r" % (user_totals.last[0],))
        for i in range(3):
            haproxy_cmd("enable health be/h%d" % (i + 1))

        # 4. kill a host: HAProxy takes it out within its checks; nothing fails afterwards
        t_kill = time.monotonic()
        hosts[2].signal(signal.SIGKILL)
        assert h.wait_for(lambda: "h3 is DOWN" in haproxy.output(), 10), haproxy.output()
        down = time.monotonic() - t_kill
        print("h3 killed: HAProxy marked it DOWN after %.2f s (inter %.1f s, fall 2)"
              % (down, CHECK_INTER))
        assert down < 10 * CHECK_INTER + 2
        r = json.loads(net.py("cli", DRIVER_PY, "30", "0", "1080"))
        print("after the kill: %r" % r)
        assert r["fail"] == 0 and r["ok"] == 30, r
        print("fleet test: %.1f s" % (time.monotonic() - t_start))
    finally:
        h.cleanup_all()
        net.destroy()
