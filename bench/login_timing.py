#!/usr/bin/env python3
"""Login timing: no user enumeration.

The contract of `POST /auth/login`: an unknown username costs the same work as
a wrong password (a dummy Argon2id hash of the configured cost is verified)
and both get the same 401 body. This benchmark measures it end to end against
the release binary:

  A  "wrong_password": a registered user's name with a wrong password
  B  "unknown_user":   a username that does not exist

interleaved A, B, A, B ... in one run over one keep-alive connection, one
request at a time, each timed with time.perf_counter (request sent to body
read). It prints count, median, p90 and mean per case, the unknown/wrong
ratios of the median and the p90, a table and one JSON line per case.

It fails (exit 1) only if an answer is wrong: not 401, not
`invalid_credentials`, or A and B bodies that differ by a single byte.
Timings are reported, never asserted: shared machines are noisy.

Usage (from anywhere; the repository is this file's parent directory):

    python3 bench/login_timing.py                 # cargo build --release, then 200 + 200 logins
    python3 bench/login_timing.py --no-build --requests 500

Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = REPO / "target" / "release" / "tessera"

# The production default Argon2id cost (config/default.toml), pinned here so
# that the benchmark measures it whatever the environment says.
ARGON2_MEMORY_KIB = 19456
ARGON2_ITERATIONS = 2
ARGON2_PARALLELISM = 1

USERNAME = "bench_user"
EMAIL = "bench_user@example.com"
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "wrong horse battery staple!"
UNKNOWN_USERNAME = "bench_nobody"  # never registered; same length class as USERNAME

CASES = ("wrong_password", "unknown_user")
# Headers that legitimately differ from one answer to the next.
VOLATILE_HEADERS = {"date", "x-request-id"}


class BenchError(Exception):
    """A wrong answer or a server that would not start: exit status 1."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(port: int, workdir: Path) -> dict[str, str]:
    # Nothing inherited may reconfigure the server (TESSERA_CONFIG, TESSERA__*).
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA")}
    env.update(
        {
            "TESSERA__SERVER__BIND": f"127.0.0.1:{port}",
            "TESSERA__SERVER__DATA_DIR": str(workdir / "data"),
            "TESSERA__DATABASE__URL": f"sqlite://{workdir / 'tessera.db'}",
            "TESSERA__JWT__SECRET": "login-timing-benchmark-secret-0123456789abcdef",
            # Throttling would turn failures into 429s (no hash at all) after
            # 5 per account / 50 per address: raise both to the maximum.
            "TESSERA__AUTH__LOGIN_MAX_FAILURES": "1000000",
            "TESSERA__AUTH__ADDRESS_MAX_FAILURES": "1000000",
            "TESSERA__PASSWORD__ARGON2_MEMORY_KIB": str(ARGON2_MEMORY_KIB),
            "TESSERA__PASSWORD__ARGON2_ITERATIONS": str(ARGON2_ITERATIONS),
            "TESSERA__PASSWORD__ARGON2_PARALLELISM": str(ARGON2_PARALLELISM),
        }
    )
    env.pop("RUST_LOG", None)
    return env


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def wait_healthy(proc: subprocess.Popen, port: int, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"tessera exited with status {proc.returncode} before answering /healthz:\n"
                + tail(log_path)
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"tessera did not answer /healthz within {timeout:.0f} s:\n" + tail(log_path))


class Client:
    """One keep-alive HTTP/1.1 connection; counts silent reconnects."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reconnects = 0

    def send(self, method: str, path: str, body: dict | None = None):
        """Returns (seconds, status, headers, body bytes)."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if self.conn.sock is None:  # the server closed it: not what we measure
            self.reconnects += 1
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        return elapsed, response.status, response.getheaders(), data

    def close(self) -> None:
        self.conn.close()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "count": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": percentile(ms, 90),
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
    }


def stable_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in headers if k.lower() not in VOLATILE_HEADERS)


def check_failure(case: str, status: int, body: bytes) -> None:
    if status != 401:
        raise BenchError(f"{case}: expected 401, got {status}: {body[:300]!r}")
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        raise BenchError(f"{case}: the 401 body is not a JSON object: {body[:300]!r}") from None
    if code != "invalid_credentials":
        raise BenchError(f"{case}: expected code invalid_credentials, got {code!r}")


def stored_hash_params(db_path: Path) -> str:
    """The `$argon2id$v=..$m=..,t=..,p=..` prefix of the bench user's stored hash."""
    uri = f"file:{db_path}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        row = db.execute("SELECT password_hash FROM users WHERE username = ?", (USERNAME,)).fetchone()
    if row is None:
        raise BenchError("the registered user is not in the database")
    return "$".join(row[0].split("$")[:4])


def run(args: argparse.Namespace) -> int:
    if not args.no_build:
        log("building: cargo build --release")
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if not BINARY.is_file():
        raise BenchError(f"{BINARY} does not exist: build it or drop --no-build")

    workdir = Path(tempfile.mkdtemp(prefix="tessera-login-timing-"))
    proc: subprocess.Popen | None = None
    client: Client | None = None
    log_file = None
    try:
        port = free_port()
        log_path = workdir / "server.log"
        log_file = open(log_path, "wb")
        proc = subprocess.Popen(
            [str(BINARY)],
            cwd=workdir,
            env=server_env(port, workdir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on the terminal reaches us, not it
        )
        wait_healthy(proc, port, log_path, timeout=60)
        log(f"tessera (pid {proc.pid}) is up on 127.0.0.1:{port}, working directory {workdir}")

        client = Client(port)
        _, status, _, body = client.send(
            "POST", "/users", {"username": USERNAME, "email": EMAIL, "password": PASSWORD}
        )
        if status != 201:
            raise BenchError(f"registering {USERNAME}: expected 201, got {status}: {body[:300]!r}")
        hash_prefix = stored_hash_params(workdir / "tessera.db")
        expected = f"m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_PARALLELISM}"
        if expected not in hash_prefix:
            raise BenchError(f"stored hash {hash_prefix} does not use the expected cost {expected}")

        requests = {
            "wrong_password": {"username": USERNAME, "password": WRONG_PASSWORD},
            "unknown_user": {"username": UNKNOWN_USERNAME, "password": WRONG_PASSWORD},
        }
        reference_body: bytes | None = None
        reference_headers: list[tuple[str, str]] | None = None
        header_mismatches = 0
        timings: dict[str, list[float]] = {case: [] for case in CASES}
        total_pairs = args.warmup + args.requests
        log(
            f"timing: {args.warmup} warm-up pairs (not counted), then {args.requests} pairs, "
            "interleaved wrong_password, unknown_user, ..."
        )
        for i in range(total_pairs):
            for case in CASES:
                elapsed, status, headers, body = client.send("POST", "/auth/login", requests[case])
                check_failure(case, status, body)
                if reference_body is None:
                    reference_body, reference_headers = body, stable_headers(headers)
                elif body != reference_body:
                    raise BenchError(
                        f"{case} (pair {i}): the 401 body differs from the first one:\n"
                        f"  first: {reference_body!r}\n  this:  {body!r}"
                    )
                elif stable_headers(headers) != reference_headers:
                    header_mismatches += 1
                    if header_mismatches == 1:
                        log(
                            f"WARNING: {case} (pair {i}): response headers differ:\n"
                            f"  first: {reference_headers}\n  this:  {stable_headers(headers)}"
                        )
                if i >= args.warmup:
                    timings[case].append(elapsed)
            if (i + 1) % 50 == 0:
                log(f"  {i + 1}/{total_pairs} pairs")
        login_reconnects = client.reconnects

        # A floor without any hashing, over the same connection.
        floor = [client.send("GET", "/healthz")[0] for _ in range(args.requests)]

        # Case A really is a registered user: the right password logs in.
        _, status, _, body = client.send(
            "POST", "/auth/login", {"username": USERNAME, "password": PASSWORD}
        )
        if status != 200:
            raise BenchError(f"sanity login with the right password: expected 200, got {status}: {body[:300]!r}")
    finally:
        if client is not None:
            client.close()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_file is not None:
            log_file.close()
        shutil.rmtree(workdir, ignore_errors=True)

    stats = {case: summarize(timings[case]) for case in CASES}
    stats["healthz_floor"] = summarize(floor)
    wrong, unknown = stats["wrong_password"], stats["unknown_user"]
    ratio_median = unknown["median_ms"] / wrong["median_ms"]
    ratio_p90 = unknown["p90_ms"] / wrong["p90_ms"]
    paired = sorted((b - a) * 1000 for a, b in zip(timings["wrong_password"], timings["unknown_user"]))
    paired_median = statistics.median(paired)

    print()
    print(f"login timing, {args.requests} requests per case, interleaved, one keep-alive connection")
    print(f"Argon2id {hash_prefix} (stored hash of the registered user); 401 bodies byte-identical: yes")
    print()
    print(f"| {'case':<28} | {'count':>5} | {'median ms':>9} | {'p90 ms':>8} | {'mean ms':>8} |")
    print(f"|{'-' * 30}|{'-' * 6}:|{'-' * 10}:|{'-' * 9}:|{'-' * 9}:|")
    labels = {
        "wrong_password": "A wrong password",
        "unknown_user": "B unknown username",
        "healthz_floor": "GET /healthz (no hash, ref.)",
    }
    for case, label in labels.items():
        s = stats[case]
        print(
            f"| {label:<28} | {s['count']:>5} | {s['median_ms']:>9.2f} | {s['p90_ms']:>8.2f} | {s['mean_ms']:>8.2f} |"
        )
    print()
    print(f"ratio unknown/wrong, median: {ratio_median:.3f}")
    print(f"ratio unknown/wrong, p90:    {ratio_p90:.3f}")
    print(f"median of paired differences (unknown - wrong, pair by pair): {paired_median:+.2f} ms")
    if login_reconnects:
        print(f"note: the server closed the keep-alive connection {login_reconnects} time(s) during the logins")
    if header_mismatches:
        print(f"note: {header_mismatches} answer(s) had headers (other than Date, X-Request-Id) unlike the first")
    print()
    common = {"bench": "login_timing", "requests_per_case": args.requests, "warmup_pairs": args.warmup}
    for case in (*CASES, "healthz_floor"):
        line = {**common, "case": case, **{k: round(v, 3) for k, v in stats[case].items()}}
        if case == "unknown_user":
            line["ratio_median_vs_wrong_password"] = round(ratio_median, 4)
            line["ratio_p90_vs_wrong_password"] = round(ratio_p90, 4)
            line["paired_median_diff_ms"] = round(paired_median, 3)
        if case in CASES:
            line["status"] = 401
            line["bodies_identical"] = True
            line["reconnects"] = login_reconnects
        print(json.dumps(line, separators=(",", ":")))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Login timing: a wrong password and an unknown username must cost the same.",
    )
    parser.add_argument(
        "--requests", type=int, default=200, metavar="N",
        help="timed logins per case (N wrong-password and N unknown-user requests; default 200)",
    )
    parser.add_argument(
        "--warmup", type=int, default=5, metavar="N",
        help="untimed A/B pairs sent first (checked, not counted; default 5)",
    )
    parser.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    args = parser.parse_args()
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup at least 0")

    # A SIGTERM (CI timeout, kill) unwinds like Ctrl-C, so the server is
    # stopped and the temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args)
    except BenchError as error:
        log(f"FAIL: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"FAIL: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
