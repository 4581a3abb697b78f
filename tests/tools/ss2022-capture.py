#!/usr/bin/env python3
"""Captures SIP022 first flights from the reference peer (ss2022ref, sing-shadowsocks) on
loopback and prints them as C known-answer vectors for tests/unit/test_ss2022_kat.c.

`ss2022ref tunnel` is pointed at a capture listener of this script (TCP and UDP on 127.0.0.1,
free ports); a local client sends a known payload through the tunnel; the bytes the tunnel
sends are recorded with the PSK, and decrypted here (BLAKE3 derive_key through Debian's b3sum,
AES-GCM through python3-cryptography) to record the salt or session id and the timestamp.
Usage: SS2022REF=/path/to/ss2022ref tests/tools/ss2022-capture.py > vectors.h
Prints SKIP and exits 0 when ss2022ref, b3sum or python3-cryptography is missing."""
import base64
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import free_port  # noqa: E402  (ports outside the ephemeral range)

TARGET = ("127.0.0.1", 9)  # never connected to: the capture listener plays the server
PAYLOAD = b"GET /kat HTTP/1.0\r\n\r\n"
UDP_PAYLOAD = b"kat datagram"
METHODS = {"2022-blake3-aes-128-gcm": 16, "2022-blake3-aes-256-gcm": 32,
           "2022-blake3-chacha20-poly1305": 32}


def skip(reason):
    print("SKIP: ss2022-capture: %s" % reason)
    sys.exit(0)


def derive_key(context, material, length):
    out = subprocess.run(["b3sum", "--derive-key", context, "--no-names", "-l", str(length)],
                         input=material, capture_output=True, check=True).stdout
    return bytes.fromhex(out.decode().strip())


def wait_port(port, kind, proc):
    for _ in range(100):  # 5 s
        if proc.poll() is not None:
            raise RuntimeError("ss2022ref exited")
        if kind == socket.SOCK_STREAM:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        else:
            time.sleep(0.3)
            return


def run_tunnel(ref, method, password, server_port, udp):
    listen = free_port()
    args = [ref, "tunnel", "-server", "127.0.0.1:%d" % server_port, "-method", method,
            "-password", password, "-listen", "127.0.0.1:%d" % listen,
            "-target", "%s:%d" % TARGET, "-early-wait", "2s"]
    if udp:
        args.append("-udp")
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    return proc, listen


def capture_tcp(ref, method, password):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(5)
    proc, listen = run_tunnel(ref, method, password, srv.getsockname()[1], False)
    try:
        wait_port(listen, socket.SOCK_STREAM, proc)
        # wait_port's probe connection reached the capture listener too: drop it.
        srv.accept()[0].close()
        cli = socket.create_connection(("127.0.0.1", listen), timeout=5)
        cli.sendall(PAYLOAD)
        conn, _ = srv.accept()
        conn.settimeout(1)
        data = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        cli.close()
        conn.close()
        return data, int(time.time())
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        srv.close()


def capture_udp(ref, method, password):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    proc, listen = run_tunnel(ref, method, password, srv.getsockname()[1], True)
    try:
        wait_port(listen, socket.SOCK_STREAM, proc)
        try:
            srv.recv(1)  # nothing expected; the TCP probe does not reach UDP
        except socket.timeout:
            pass
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.sendto(UDP_PAYLOAD, ("127.0.0.1", listen))
        data = srv.recv(65536)
        cli.close()
        return data, int(time.time())
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        srv.close()


def tcp_timestamp(key, data, identities):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    salt = data[:len(key)]
    sub = derive_key("shadowsocks 2022 session subkey", key + salt, len(key))
    aead = ChaCha20Poly1305(sub) if len(key) == 32 and CHACHA else AESGCM(sub)
    at = len(key) + 16 * identities
    fixed = aead.decrypt(bytes(12), data[at:at + 27], None)
    return salt, int.from_bytes(fixed[1:9], "big")


def udp_fields(key, data):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    sep = dec.update(data[:16]) + dec.finalize()
    sub = derive_key("shadowsocks 2022 session subkey", key + sep[:8], len(key))
    body = AESGCM(sub).decrypt(sep[4:16], data[16:], None)
    return sep[:8], int.from_bytes(body[1:9], "big")


CHACHA = False


def emit(name, method, psks, data, now, extra):
    print("    {\"%s\", \"%s\", \"%s\", %d, %s," % (name, method, ":".join(psks), now, extra))
    hexs = data.hex()
    print("\n".join('     "%s"' % hexs[i:i + 88] for i in range(0, len(hexs), 88)) + "},")


def main():
    global CHACHA
    ref = os.environ.get("SS2022REF")
    if not ref or not os.access(ref, os.X_OK):
        skip("SS2022REF is not set to the ss2022ref binary (sh ../shared/peers/ss2022ref/build.sh)")
    if not shutil.which("b3sum"):
        skip("b3sum not installed (Debian package b3sum)")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        skip("python3-cryptography not installed")
    print("/* Generated by tests/tools/ss2022-capture.py from ss2022ref (sing-shadowsocks v0.2.6). */")
    print("static const struct kat_tcp kat_tcp[] = {")
    for method, klen in METHODS.items():
        CHACHA = "chacha" in method
        key = os.urandom(klen)
        psk = base64.b64encode(key).decode()
        data, now = capture_tcp(ref, method, psk)
        salt, ts = tcp_timestamp(key, data, 0)
        emit(method, method, [psk], data, now, "%d, \"%s\"" % (ts, salt.hex()))
        if not CHACHA:
            ukey = os.urandom(klen)
            pair = [psk, base64.b64encode(ukey).decode()]
            data, now = capture_tcp(ref, method, ":".join(pair))
            salt = data[:klen]
            _, ts = tcp_timestamp(ukey, salt + data[klen:], 1)
            emit(method + " eih", method, pair, data, now, "%d, \"%s\"" % (ts, salt.hex()))
    print("};")
    print("static const struct kat_udp kat_udp[] = {")
    for method, klen in METHODS.items():
        if "chacha" in method:
            continue  # XChaCha20 is not in python3-cryptography: no independent decryption
        key = os.urandom(klen)
        psk = base64.b64encode(key).decode()
        data, now = capture_udp(ref, method, psk)
        sid, ts = udp_fields(key, data)
        emit(method, method, [psk], data, now, "%d, 0x%sull" % (ts, sid.hex()))
    print("};")


if __name__ == "__main__":
    main()
