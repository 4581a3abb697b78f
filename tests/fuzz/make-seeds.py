#!/usr/bin/env python3
"""make-seeds.py: writes the seed corpora of the fuzz targets whose inputs are structured
(tests/fuzz/corpus/ss_stream, ss_packet, config). The addr and socks5 seeds were written by
hand. Run it again after changing an input format; it only adds or overwrites seed-* files, so
crash inputs kept in the corpus stay.

The "wire" seeds are real shadowsocks streams and datagrams under the fuzz targets' password,
sealed here by an independent implementation (python3-cryptography: HKDF-SHA1, AES-GCM,
ChaCha20-Poly1305), so the fuzzer starts from bytes that pass the tags. Without that module those
seeds are skipped and the rest are still written.

    python3 tests/fuzz/make-seeds.py
"""
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
TOP = os.path.dirname(os.path.dirname(HERE))
PASSWORD = b"reuseproxy-fuzz"
METHODS = ["aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
KEYLEN = {"aes-128-gcm": 16, "aes-192-gcm": 24, "aes-256-gcm": 32,
          "chacha20-ietf-poly1305": 32}
CHUNK_MAX = 0x3FFF


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- an independent SIP004 sealer -------------------------------------------------------------

def master_key(method):
    """EVP_BytesToKey(MD5, no salt, 1 round)."""
    out, prev = b"", b""
    while len(out) < KEYLEN[method]:
        prev = hashlib.md5(prev + PASSWORD).digest()
        out += prev
    return out[:KEYLEN[method]]


def subkey(method, salt):
    """HKDF-SHA1(key, salt, "ss-subkey") (RFC 5869)."""
    prk = hmac.new(salt, master_key(method), hashlib.sha1).digest()
    okm, block, i = b"", b"", 1
    while len(okm) < KEYLEN[method]:
        block = hmac.new(prk, block + b"ss-subkey" + bytes([i]), hashlib.sha1).digest()
        okm += block
        i += 1
    return okm[:KEYLEN[method]]


def aead(method, key):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    return ChaCha20Poly1305(key) if method.startswith("chacha") else AESGCM(key)


def nonce(n):
    return n.to_bytes(12, "little")


def seal_stream(method, salt, payloads):
    a = aead(method, subkey(method, salt))
    out, n = bytearray(salt), 0
    for p in payloads:
        out += a.encrypt(nonce(n), struct.pack("!H", len(p)), None)
        out += a.encrypt(nonce(n + 1), p, None)
        n += 2
    return bytes(out)


def seal_packet(method, salt, plain):
    return salt + aead(method, subkey(method, salt)).encrypt(nonce(0), plain, None)


def have_crypto():
    try:
        import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
        return True
    except ImportError:
        return False


# ---- ss_stream: [method][mode][step][rest] ------------------------------------------------------

def frame(length, flags=0, fill=0):
    """One frame of mode 1. Without flag 8 the length is taken modulo 0x3FFF, plus 1, so a
    wanted valid length L is written as L - 1."""
    if not flags & 8:
        length -= 1
    return struct.pack("!BHB", flags, length & 0xFFFF, fill)


def stream_seeds():
    for m, method in enumerate(METHODS):
        write("ss_stream", "frames-boundaries-%s" % method,
              bytes([m, 1, 0]) + frame(1) + frame(CHUNK_MAX, 4, 7) + frame(CHUNK_MAX - 1) +
              frame(2, 4, 1))
        write("ss_stream", "seal-16k-%s" % method,
              bytes([m, 2, 200]) + bytes(range(256)) * 64)
    raw = [("len-zero", 0), ("len-0x4000", 0x4000), ("len-0xffff", 0xFFFF),
           ("len-reserved-bits", 0xC001), ("len-max", CHUNK_MAX)]
    for name, length in raw:
        write("ss_stream", "frames-" + name, bytes([2, 1, 3]) + frame(5) + frame(length, 8))
    write("ss_stream", "frames-bad-length-tag", bytes([0, 1, 1]) + frame(10) + frame(20, 1, 5))
    write("ss_stream", "frames-bad-payload-tag", bytes([3, 1, 2]) + frame(100) + frame(30, 2, 9))
    write("ss_stream", "frames-byte-by-byte", bytes([1, 1, 1]) + frame(3) + frame(40, 4) +
          frame(1, 4))
    write("ss_stream", "frames-many", bytes([3, 1, 129]) + b"".join(
        frame(1 + i * 977, 4 if i % 2 else 0, i) for i in range(16)))
    for size in (0, 1, CHUNK_MAX, CHUNK_MAX + 1, 2 * CHUNK_MAX):
        write("ss_stream", "seal-%d" % size, bytes([size % 4, 2, 5]) + b"\xa5" * size)
    for at in (0, 1, 17, 18, 100, 0x4010, 0xFFFF):
        write("ss_stream", "flip-at-%d" % at, bytes([at % 4, 3, 0]) + struct.pack("!H", at) +
              bytes(range(200)) * 100)
    write("ss_stream", "wire-junk", bytes([2, 0, 0]) + hashlib.sha256(b"j").digest() * 4)
    write("ss_stream", "wire-short-salt", bytes([2, 0, 0]) + b"\x01" * 20)
    if have_crypto():
        for m, method in enumerate(METHODS):
            salt = hashlib.sha256(b"salt-%d" % m).digest()[:KEYLEN[method]]
            wire = seal_stream(method, salt, [b"\x01\x7f\x00\x00\x01\x00\x50GET / HTTP/1.0\r\n\r\n",
                                              b"x" * CHUNK_MAX, b"y"])
            write("ss_stream", "wire-valid-%s" % method, bytes([m, 0, 0]) + wire)
            write("ss_stream", "wire-valid-dribbled-%s" % method, bytes([m, 0, 1]) + wire[:200])
            write("ss_stream", "wire-truncated-%s" % method, bytes([m, 0, 0]) + wire[:-1])


# ---- ss_packet: [method][mode][rest] ------------------------------------------------------------

def packet_seeds():
    headers = {"ipv4": b"\x01\x7f\x00\x00\x01\x00\x35",
               "ipv6": b"\x04" + b"\x00" * 15 + b"\x01\x00\x35",
               "domain": b"\x03\x0bexample.com\x01\xbb"}
    for name, h in headers.items():
        write("ss_packet", "seal-%s" % name, bytes([2, 1]) + h + b"dns query bytes")
    write("ss_packet", "seal-one-byte", bytes([0, 1, 1]))
    write("ss_packet", "seal-empty", bytes([1, 1]))
    write("ss_packet", "seal-1400", bytes([3, 1]) + headers["ipv4"] + bytes(1393))
    for m, method in enumerate(METHODS):
        n = KEYLEN[method] + 16
        write("ss_packet", "wire-overhead-only-%s" % method, bytes([m, 0]) + b"\x00" * n)
        write("ss_packet", "wire-overhead-plus-one-%s" % method, bytes([m, 0]) + b"\x00" * (n + 1))
        if have_crypto():
            salt = hashlib.sha256(b"pkt-%d" % m).digest()[:KEYLEN[method]]
            for name, h in headers.items():
                write("ss_packet", "wire-valid-%s-%s" % (name, method),
                      bytes([m, 0]) + seal_packet(method, salt, h + b"payload"))
            write("ss_packet", "wire-valid-no-header-%s" % method,
                  bytes([m, 0]) + seal_packet(method, salt, b"\x09junk"))


# ---- config: JSON text --------------------------------------------------------------------------

CONFIGS = {
    "minimal-server": '{"server":"127.0.0.1","server_port":8388,"password":"p",'
                      '"method":"aes-256-gcm"}',
    "every-key": """{
  "server": ["0.0.0.0", "::", "example.com:8389", "[::1]:8390"],
  "server_port": "8388", "password": 12345678, "key": null, "method": "AES-128-GCM",
  "timeout": "300", "mode": "tcp_and_udp", "fast_open": true, "reuse_port": false,
  "no_delay": true, "ipv6_first": false, "nameserver": "1.1.1.1,8.8.8.8:53",
  "local_address": "127.0.0.1", "local_port": 1080, "tunnel_address": "[2001:db8::1]:53",
  "user": "nobody", "nofile": 51200, "acl": "/etc/reuseproxy/acl", "use_syslog": false,
  "role": "tunnel", "workers": 4, "balance": "dispatch", "block_private": true,
  "udp_timeout": 60, "udp_max_associations": 1000, "metrics_address": "127.0.0.1:9100",
  "drain_timeout": 5, "connect_timeout": 3, "replay_protection": true,
  "replay_capacity": 1000, "verbose": 2
}""",
    "libev-only-keys": '{"server":"::","server_port":1,"password":"x","plugin":"obfs-local",'
                       '"plugin_opts":"obfs=http","mtu":1400,"port_password":{"1":"a"},'
                       '"remote_dns":"8.8.8.8","tcp_incoming_sndbuf":1}',
    "key-base64": '{"server":"127.0.0.1","server_port":8388,"method":"chacha20-ietf-poly1305",'
                  '"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}',
    "bom": '\ufeff{"server":"127.0.0.1","server_port":8388,"password":"p"}',
    "typo": '{\n  "server": "127.0.0.1",\n  "sever_port": 8388\n}',
    "out-of-range": '{"server_port": 70000}',
    "duplicate": '{"method":"aes-128-gcm",\n "method":"aes-256-gcm"}',
    "syntax-error": '{"server": "127.0.0.1",, }',
    "not-an-object": '[1, 2, 3]',
    "empty": '',
    "spaces-only": ' \n\t ',
    "auth-key": '{"auth": true}',
    "stream-cipher": '{"method": "aes-256-cfb"}',
    "placeholder-password": '{"server":"0.0.0.0","server_port":8388,"password":"barfoo!"}',
    "unicode-escapes": '{"password":"\\u00e9\\ud83d\\ude00\\u0000x","server":"127.0.0.1"}',
    "deep-nesting": '{"server":' + '[' * 200 + ']' * 200 + '}',
    "big-numbers": '{"timeout": 99999999999999999999, "workers": -1, "nofile": 1e10}',
    "too-many-servers": '{"server":["a","b","c","d","e","f","g","h","i"],"server_port":1}',
    "bad-server-entries": '{"server":["[::1]","[::1]:","host:0","host:65536","::1:80",""]}',
    "nulls": '{"server":null,"server_port":null,"password":null,"mode":null}',
    "metrics-bad": '{"metrics_address":"127.0.0.1"}',
    "plugin-keys": '{"plugin":"obfs-server","plugin_opts":"obfs=http","plugin_args":["-v",'
                   '"x"],"plugin_mode":"tcp_and_udp","workers":2}',
    "plugin-bad": '{"plugin":"","plugin_args":[1,{}],"plugin_mode":"udp_only"}',
    "proxy-protocol": '{"server":"0.0.0.0","server_port":8388,"password":"a-real-secret",'
                      '"proxy_protocol":true,"proxy_protocol_from":["10.0.0.0/8","::1",'
                      '"2001:db8::/32"]}',
    "proxy-protocol-bad": '{"proxy_protocol":true,"proxy_protocol_from":["10.0.0.0/33","x",1]}',
    "tunnel-missing-address": '{"role":"tunnel","server":"127.0.0.1","server_port":1,'
                              '"local_port":2,"password":"p"}',
}


def config_seeds():
    for name, text in CONFIGS.items():
        write("config", name, text.encode("utf-8", "surrogatepass"))
    for name in sorted(os.listdir(os.path.join(TOP, "conf"))):
        if name.endswith(".json"):
            with open(os.path.join(TOP, "conf", name), "rb") as f:
                write("config", "conf-" + name[:-5], f.read())


# PROXY protocol headers (HAProxy's proxy-protocol.txt), each followed by a few client bytes.
PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_proto_seeds():
    v4 = bytes([192, 0, 2, 7, 198, 51, 100, 1]) + struct.pack(">HH", 56324, 8388)
    v6 = bytes(15) + b"\x07" + bytes(15) + b"\x01" + struct.pack(">HH", 443, 8388)
    seeds = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 8388\r\nxyz",
        "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 443 8388\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-bad-port": b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 1\r\n",
        "v2-proxy-ipv4": PP2_SIG + b"\x21\x11" + struct.pack(">H", 12) + v4 + b"xyz",
        "v2-proxy-ipv6": PP2_SIG + b"\x21\x21" + struct.pack(">H", 36) + v6,
        "v2-local": PP2_SIG + b"\x20\x00\x00\x00",
        "v2-tlvs": PP2_SIG + b"\x21\x11" + struct.pack(">H", 12 + 5 + 4) + v4 +
                   b"\x01\x00\x02h2\x04\x00\x01\x00",
        "v2-unix": PP2_SIG + b"\x21\x31" + struct.pack(">H", 216) + bytes(216),
        "v2-short": PP2_SIG + b"\x21\x11" + struct.pack(">H", 8) + v4[:8],
    }
    for name, data in seeds.items():
        write("proxy_proto", name, data)


def main():
    proxy_proto_seeds()
    stream_seeds()
    packet_seeds()
    config_seeds()
    if not have_crypto():
        print("python3-cryptography not found: wire seeds skipped")


if __name__ == "__main__":
    main()
