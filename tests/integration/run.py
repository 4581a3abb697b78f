#!/usr/bin/env python3
"""run.py: the integration driver. Finds test_*.py beside it, runs every test_* function in
them with the real binary, prints PASS:/FAIL:/SKIP: lines as each test ends (tests/run counts
them; a test skips by raising harness.Skip("reason")). Each test's
processes are cleaned up by PID after it, pass or fail."""
import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    top = tempfile.mkdtemp(prefix="rp-it-")
    failed = 0
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        spec = importlib.util.spec_from_file_location(modname, os.path.join(HERE, fname))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            print("FAIL: integration/%s: could not load" % modname)
            traceback.print_exc()
            failed += 1
            continue
        tests = [(n, getattr(mod, n)) for n in dir(mod) if n.startswith("test_")]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        for name, fn in tests:
            full = "integration/%s.%s" % (modname, name)
            if args.filter and args.filter not in full:
                continue
            harness.TMPDIR = tempfile.mkdtemp(prefix=name[:40] + "-", dir=top)
            t0 = time.monotonic()
            try:
                fn()
                print("PASS: %s (%.1fs)" % (full, time.monotonic() - t0))
            except harness.Skip as e:
                print("SKIP: %s: %s" % (full, e))
            except Exception as e:
                failed += 1
                print("FAIL: %s (%.1fs): %s" % (full, time.monotonic() - t0, e))
                traceback.print_exc(file=sys.stdout)
                for p in list(harness._procs):
                    print("---- log of %s (pid %d):" % (p.name, p.pid))
                    print(p.output()[-3000:])
            finally:
                harness.cleanup_all()
            sys.stdout.flush()
    shutil.rmtree(top, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
