"""Runs the conformance suite and the attack tests against the real Envoy (or,
with --courier, a Courier binary): starts an upstream (upstream.py) and the
proxy (--concurrency 1, admin on 127.0.0.1) on config.yaml, the config the Rust
test uses, runs everything, stops both.

    python3 tests/h2conformance/envoy.py [--envoy PATH | --courier PATH] [run.py options]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
from upstream import Upstream  # noqa: E402

DEFAULT_ENVOY = os.path.join(HERE, "..", "..", "tools", "envoy", "envoy", "_bin", "envoy")


def config(upstream_port):
    with open(os.path.join(HERE, "config.yaml")) as f:
        return f.read().replace("UPSTREAM_PORT", str(upstream_port))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envoy", default=os.environ.get("ENVOY", DEFAULT_ENVOY))
    ap.add_argument("--courier", help="run this Courier binary instead of Envoy")
    args, rest = ap.parse_known_args()
    up = Upstream()
    with tempfile.TemporaryDirectory(prefix="h2conf-envoy-") as tmp:
        cfg = os.path.join(tmp, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write("admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\n")
            f.write(config(up.port))
        admin_path = os.path.join(tmp, "admin")
        cmd = [args.courier or args.envoy, "-c", cfg, "--concurrency", "1", "-l", "error",
               "--admin-address-path", admin_path]
        if not args.courier:
            cmd.append("--disable-hot-restart")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            admin = wait_admin(proc, admin_path)
            port = listener_port(admin)
            code = run.main(["--port", str(port), "--admin", str(admin)] + rest)
        finally:
            proc.kill()
            proc.wait()
            up.stop()
    sys.exit(code)


def wait_admin(proc, path):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the proxy exited during start-up (%s)" % proc.returncode)
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text.rsplit(":", 1)[1])
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    sys.exit("the proxy did not write its admin address in time")


def listener_port(admin):
    import urllib.request
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/listeners" % admin, timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("h2::"):
                        return int(line.rsplit(":", 1)[1])
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit("the proxy's listener h2 did not appear in /listeners")


if __name__ == "__main__":
    main()
