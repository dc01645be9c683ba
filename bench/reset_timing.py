#!/usr/bin/env python3
"""Password-reset request timing: no account enumeration.

The contract of `POST /auth/password-reset`: the same answer (202, empty
body), in about the same time, whether the address has an account or not.
tessera answers before it looks the address up (the lookup, the token and
the mail happen in the background), so the two should not differ by more
than noise. This measures it end to end against a built binary:

  A  "known_address":   a registered user's email
  B  "unknown_address": an address with no account

interleaved A, B, A, B ... over one keep-alive connection, one request at
a time. It prints count, median, p90 and mean per case and the unknown/known
ratios of the median and the p90. It fails (exit 1) only if an answer is
wrong (not 202, or a body that is not empty); timings are reported, never
asserted. Per-address and per-client throttling are lifted for the run (so
every known request does the full background work), and mail goes nowhere
(`email.transport = none`).

Usage:

    python3 bench/reset_timing.py                    # cargo build --release, 300 + 300 requests
    python3 bench/reset_timing.py --binary target/debug/tessera --requests 500

Standard library only (Python 3.11+); shares its plumbing with
bench/login_timing.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import login_timing as lt  # noqa: E402

CASES = ("known_address", "unknown_address")


def run(args: argparse.Namespace) -> int:
    binary = Path(args.binary).resolve() if args.binary else lt.BINARY
    if not args.binary:
        lt.log("building: cargo build --release")
        subprocess.run(["cargo", "build", "--release"], cwd=lt.REPO, check=True)
    if not binary.is_file():
        raise lt.BenchError(f"{binary} does not exist")
    workdir = Path(tempfile.mkdtemp(prefix="tessera-reset-timing-"))
    env = lt.server_env(port := lt.free_port(), workdir)
    env.update(
        {
            "TESSERA__AUTH__RESET_MAX_REQUESTS": "1000000",
            "TESSERA__EMAIL__TRANSPORT": "none",
        }
    )
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [str(binary)], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            lt.wait_healthy(proc, port, log_path, timeout=60)
            client = lt.Client(port)
            _, status, _, body = client.send(
                "POST", "/users",
                {"username": lt.USERNAME, "email": lt.EMAIL, "password": lt.PASSWORD},
            )
            if status != 201:
                raise lt.BenchError(f"registering: expected 201, got {status}: {body[:300]!r}")
            addresses = {"known_address": lt.EMAIL, "unknown_address": "bench_nobody@example.com"}
            timings: dict[str, list[float]] = {case: [] for case in CASES}
            for i in range(args.warmup + args.requests):
                for case in CASES:
                    elapsed, status, _, body = client.send(
                        "POST", "/auth/password-reset", {"email": addresses[case]}
                    )
                    if status != 202 or body:
                        raise lt.BenchError(f"{case}: expected an empty 202, got {status}: {body[:200]!r}")
                    if i >= args.warmup:
                        timings[case].append(elapsed)
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    stats = {case: lt.summarize(values) for case, values in timings.items()}
    print(f"{'case':<16} {'count':>6} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8}")
    for case in CASES:
        s = stats[case]
        print(f"{case:<16} {s['count']:>6} {s['median_ms']:>10.3f} "
              f"{s['p90_ms']:>8.3f} {s['mean_ms']:>8.3f}")
    known, unknown = stats["known_address"], stats["unknown_address"]
    print(f"unknown/known median ratio: {unknown['median_ms'] / known['median_ms']:.3f}")
    print(f"unknown/known p90 ratio:    {unknown['p90_ms'] / known['p90_ms']:.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured pairs (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="uncounted pairs first (default 30)")
    parser.add_argument("--binary", help="a built tessera to run instead of cargo build --release")
    try:
        return run(parser.parse_args())
    except lt.BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
