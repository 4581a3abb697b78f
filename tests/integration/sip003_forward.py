"""sip003_forward.py: a plain SIP003 plugin for the tests (test_plugin.py): it forwards TCP and,
as a SIP003u plugin does, UDP without changing a byte. With the option "server" (in
SS_PLUGIN_OPTIONS) it listens on SS_REMOTE_HOST:SS_REMOTE_PORT and forwards to SS_LOCAL_*;
without, the other way round. It writes its environment, arguments and uid as JSON to the file
named by its first argument, and counts the datagrams it forwarded into FILE.udp.

Usage (as a plugin): plugin "python3", plugin_args [this file, FILE, ...]."""
import json
import os
import selectors
import socket
import sys
import threading


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def tcp(listen, target):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(listen)
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        try:
            u = socket.create_connection(target, timeout=10)
        except OSError:
            c.close()
            continue
        u.settimeout(None)
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def udp(listen, target, count_path):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(listen)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, None)
    peers, count = {}, 0
    while True:
        for key, _ in sel.select():
            if key.data is None:
                data, peer = srv.recvfrom(65536)
                out = peers.get(peer)
                if out is None:
                    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    out.connect(target)
                    peers[peer] = out
                    sel.register(out, selectors.EVENT_READ, peer)
                out.send(data)
                count += 1
                with open(count_path, "w") as f:
                    f.write(str(count))
            else:
                srv.sendto(key.fileobj.recv(65536), key.data)


def main():
    out = sys.argv[1]
    env = {k: v for k, v in os.environ.items() if k.startswith("SS_")}
    with open(out + ".tmp", "w") as f:
        json.dump({"env": env, "argv": sys.argv[1:], "uid": os.getuid()}, f)
    os.rename(out + ".tmp", out)
    remote = (env["SS_REMOTE_HOST"], int(env["SS_REMOTE_PORT"]))
    local = (env["SS_LOCAL_HOST"], int(env["SS_LOCAL_PORT"]))
    server = "server" in env.get("SS_PLUGIN_OPTIONS", "").split(";")
    listen, target = (remote, local) if server else (local, remote)
    threading.Thread(target=udp, args=(listen, target, out + ".udp"), daemon=True).start()
    print("sip003_forward: %s -> %s" % (listen, target), file=sys.stderr, flush=True)
    tcp(listen, target)


if __name__ == "__main__":
    main()
