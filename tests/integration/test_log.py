"""test_log.py: logging never blocks a worker (issue 20 item 5). stderr is a pipe nobody reads,
already full before reuseproxy starts: every line any process logs would block a write(2).
The proxy must start, relay, and say how many lines it dropped once the pipe drains."""
import fcntl
import os
import select
import signal
import time

import harness as h

M = "aes-128-gcm"
PW = "log-secret"


def full_pipe():
    """A pipe whose buffer is full, as (read end, write end). It is filled through a second,
    non-blocking description of the write end, so the write end itself stays blocking, as a
    reader-less stderr inherited from a shell or a supervisor is."""
    r, w = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)  # one page: full sooner, drained sooner
    filler = os.open("/proc/self/fd/%d" % w, os.O_WRONLY | os.O_NONBLOCK)
    try:
        for _ in range(100000):  # bounded; the pipe holds at most 1 MiB by default
            os.write(filler, b"#" * 512)
    except BlockingIOError:
        pass
    finally:
        os.close(filler)
    return r, w


def drain(fd):
    """What is waiting in the pipe, read without blocking."""
    out = bytearray()
    while select.select([fd], [], [], 0)[0]:
        d = os.read(fd, 65536)
        if not d:
            break
        out += d
    return bytes(out)


def test_full_stderr_pipe_never_blocks_relaying_and_drops_are_reported():
    r, w = full_pipe()
    try:
        echo = h.TcpEcho()
        port = h.free_port()
        cfg = h.server_config(port, method=M, password=PW, workers=2, verbose=1)
        t0 = time.monotonic()
        p = h.reuseproxy(cfg, stderr=w)  # raises if the master blocked before listening
        lport = h.free_port()
        h.reuseproxy({"role": "tunnel", "server": "127.0.0.1", "server_port": port,
                      "local_address": "127.0.0.1", "local_port": lport, "password": PW,
                      "method": M, "workers": 0, "tunnel_address": "127.0.0.1:%d" % echo.port},
                     name="tunnel")
        for i in range(60):
            data = h.pattern(3000 + i * 100, seed=i)
            got = h.transfer("127.0.0.1", lport, data, timeout=5)
            assert got == data, "connection %d: %d of %d bytes came back" % (i, len(got), len(data))
        elapsed = time.monotonic() - t0
        assert elapsed < 30, "start and 60 connections took %.1fs" % elapsed

        # The reader comes back; a reload makes the master log again, and its first line that
        # gets through is the note of what it dropped meanwhile.
        drain(r)
        p.signal(signal.SIGHUP)
        seen = bytearray()

        def noted():
            seen.extend(drain(r))
            return b"log lines dropped" in seen
        assert h.wait_for(noted, 10.0, 0.05), \
            "no 'log lines dropped' note after the pipe drained: %r" % bytes(seen[-2000:])
        line = [ln for ln in bytes(seen).split(b"\n") if b"log lines dropped" in ln][0]
        dropped = int(line.split(b" log lines dropped")[0].split()[-1])
        assert dropped >= 1, line
        data = h.pattern(50000, seed=99)
        assert h.transfer("127.0.0.1", lport, data, timeout=5) == data
        echo.stop()
    finally:
        h.cleanup_all()  # the children hold the write end: stop them before closing our ends
        os.close(r)
        os.close(w)
