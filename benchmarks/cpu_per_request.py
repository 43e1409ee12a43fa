"""Gateway CPU per JSON request, checkouts side by side, and (optionally) where it goes.

    python benchmarks/cpu_per_request.py [--rounds 3] [--seconds 6] [--py-spy DIR] CHECKOUT[:notask][:stream] ...

For each round, each CHECKOUT (a directory holding a copy of this repository, e.g. one made with
``git archive <commit> | tar -x -C DIR``; ``.`` for this one) is started in turn: the instant
upstream (``canned_upstream.py``) on core 0, the gateway on core 1, ``wrk -c16`` (core 0) posting
one short chat request to ``kimi:instant`` (a direct route). Gateway CPU (utime + stime from
/proc) over the cell divided by the requests answered is the figure: on a shared machine it
drifts far less than req/s. ``:notask`` sends ``X-Router-Task-Type: simple`` (classification
skipped); ``:stream`` asks for the answer as a stream (``"stream": true``; the canned upstream
sends 19 frames). Prints each round and the median per checkout.

``--py-spy DIR`` also records each cell with ``py-spy record --gil -f raw`` (only the thread that
holds the GIL is sampled: the Python work; idle threads and syscalls that release the GIL are not
counted — py-spy's own idle detection counted threads blocked in ``queue.get``/``sleep`` on this
machine) and prints the slices of ``profile_slices.py`` per checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import free_port  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
BODY = ('{"model": "kimi:instant", "messages": [{"role": "user", "content": '
        '"Summarise the main causes of the 1929 stock market crash."}], "max_tokens": 64}')
STREAM_BODY = BODY[:-1] + ', "stream": true}'


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"not ready: {url}")


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def cell(root: Path, *, notask: bool, stream: bool, seconds: int, profile: Path | None) -> tuple[float, float]:
    """(gateway CPU µs per request, req/s) for one checkout."""
    up, gw = free_port(), free_port()  # not fixed ports: other checkouts may run this script at the same time
    env = {**os.environ, "KIMI_API_BASE": f"http://127.0.0.1:{up}/v1", "KIMI_METRICS_URL": "", "OPENAI_API_KEY": "",
           "ANTHROPIC_API_KEY": "", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0", "ROUTER_LOG_LEVEL": "warning",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    upstream = subprocess.Popen(pinned("0", [PY, str(HERE / "canned_upstream.py"), str(up)]), **quiet)
    gateway = subprocess.Popen(pinned("1", [PY, "-m", "router", "serve", "--host", "127.0.0.1", "--port", str(gw)]),
                               cwd=root, env=env, **quiet)
    spy: subprocess.Popen[bytes] | None = None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     + ('wrk.headers["X-Router-Task-Type"] = "simple"\n' if notask else "")
                     + f"wrk.body = [==[{STREAM_BODY if stream else BODY}]==]\n")
    try:
        wait_ready(f"http://127.0.0.1:{up}/v1/models")
        wait_ready(f"http://127.0.0.1:{gw}/readyz")
        url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        wrk = pinned("0", ["wrk", "-t1", "-c16", "-s", script.name, url])
        subprocess.run([*wrk, "-d2s"], capture_output=True, check=True)  # warm-up
        if profile is not None:
            spy = subprocess.Popen([str(Path(PY).parent / "py-spy"), "record", "--gil", "-r", "250", "-f", "raw",
                                    "-p", str(gateway.pid), "-d", str(seconds), "-o", str(profile)], **quiet)
        before = cpu_s(gateway.pid)
        out = subprocess.run([*wrk, f"-d{seconds}s"], capture_output=True, text=True, check=True).stdout
        used = cpu_s(gateway.pid) - before
        if spy is not None:
            spy.wait(timeout=60)
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError(f"wrk saw errors:\n{out}")
        done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        return used / done * 1e6, rps
    finally:
        os.unlink(script.name)
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkouts", nargs="+", help="directory[:notask][:stream]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--py-spy", type=Path, default=None, help="directory for py-spy raw profiles")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install -y wrk")
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {c: [] for c in args.checkouts}
    profiles: dict[str, list[Path]] = {c: [] for c in args.checkouts}
    for n in range(1, args.rounds + 1):
        for i, spec in enumerate(args.checkouts):
            path, *variant = spec.split(":")
            profile = args.py_spy / f"c{i}-r{n}.raw" if args.py_spy else None
            us, rps = cell(Path(path).resolve(), notask="notask" in variant, stream="stream" in variant,
                           seconds=args.seconds, profile=profile)
            results[spec].append(us)
            if profile is not None:
                profiles[spec].append(profile)
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"round {n} {spec:<28} {us:7.1f} µs CPU/request {rps:7.0f} req/s  (load {load})", flush=True)
    for spec, values in results.items():
        print(f"{spec:<28} median {statistics.median(values):7.1f} µs  runs: {', '.join(f'{v:.0f}' for v in values)}")
    if args.py_spy:
        for spec, paths in profiles.items():
            print(f"--- {spec}")
            subprocess.run([PY, str(HERE / "profile_slices.py"), *map(str, paths)], check=True)


if __name__ == "__main__":
    main()
