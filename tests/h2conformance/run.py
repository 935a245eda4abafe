"""Runs the HTTP/2 conformance cases and the attack tests against a server on
127.0.0.1:PORT that runs tests/h2conformance/config.yaml (admin on ADMIN, for the
attack tests' stats).

    python3 tests/h2conformance/run.py --port PORT --admin ADMIN [--json FILE]
        [--only conformance|attacks] [--filter SUBSTRING] [-v]

Prints one line per failing case (every case with -v) and the pass/fail counts;
--json writes one JSON object per case: {"id", "suite", "passed", "detail",
"requirement"} ("-" for stdout). Exits 0 when every case passed, 1 otherwise.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import attacks  # noqa: E402
import cases  # noqa: E402
from verify import Fail  # noqa: E402


class Ctx:
    def __init__(self, port, admin, timeout):
        self.port = port
        self.admin = admin
        self.timeout = timeout


def run_one(suite, cid, requirement, fn, ctx):
    start = time.monotonic()
    try:
        detail = fn(ctx)
        passed = True
    except Fail as e:
        passed, detail = False, str(e)
    except AssertionError as e:
        passed, detail = False, "assertion: %s" % e
    except Exception as e:  # noqa: BLE001 - a crash in a case is that case's failure
        passed, detail = False, "%s: %s (%s)" % (type(e).__name__, e, traceback.format_exc(limit=-1).strip().splitlines()[-3:])
    return {"id": cid, "suite": suite, "passed": passed, "detail": str(detail or ""), "requirement": requirement,
            "ms": int(1000 * (time.monotonic() - start))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin", type=int, help="admin port (needed by the attack tests' stat checks)")
    ap.add_argument("--json", help="write JSON lines here ('-' for stdout)")
    ap.add_argument("--only", choices=["conformance", "attacks"])
    ap.add_argument("--filter", help="run only cases whose id contains this")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an expected frame")
    ap.add_argument("--jobs", type=int, default=8, help="conformance cases run this many at a time")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    ctx = Ctx(args.port, args.admin, args.timeout)

    results = []
    if args.only != "attacks":
        todo = [c for c in cases.CASES if not args.filter or args.filter in c[0]]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_one, "conformance", cid, req, fn, ctx) for cid, req, fn in todo]
            results += [f.result() for f in futures]
    if args.only != "conformance":
        if args.admin is None:
            sys.exit("run.py: the attack tests need --admin")
        # One at a time: each checks stats and that the server still serves.
        for cid, req, fn in attacks.ATTACKS:
            if not args.filter or args.filter in cid:
                results.append(run_one("attacks", cid, req, fn, ctx))

    out = None
    if args.json == "-":
        out = sys.stdout
    elif args.json:
        out = open(args.json, "w")
    if out is not None:
        for r in results:
            out.write(json.dumps(r) + "\n")
        out.flush()
        if out is not sys.stdout:
            out.close()
    log = sys.stderr if args.json == "-" else sys.stdout
    for r in results:
        if args.verbose or not r["passed"]:
            print("%s %-22s %s" % ("PASS" if r["passed"] else "FAIL", r["id"], r["detail"]), file=log)
    for suite in ("conformance", "attacks"):
        rs = [r for r in results if r["suite"] == suite]
        if rs:
            failed = [r["id"] for r in rs if not r["passed"]]
            print("%s: %d passed, %d failed%s" % (suite, len(rs) - len(failed), len(failed),
                                                 (" (" + " ".join(failed) + ")") if failed else ""), file=log)
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
