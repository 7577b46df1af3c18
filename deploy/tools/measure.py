#!/usr/bin/env python3
"""Resource figures for deploy/ (docs/deploy.md, "Resources"): drives a
bounded load through a running `make run` stack on loopback and reads each
process's CPU time and memory from /proc.

    RATE_LIMIT_PER_MINUTE=1000000 make run          # another shell; note the key
    deploy/tools/measure.py --key brl_... --seconds 45 --threads 8

Load: keep-alive connections, each thread alternating GET
/api/v1/rates/{ticker} and POST /api/v1/calculate-locate (API key), plus one
POST /api/v1/auth/token per 50 requests. Figures per process (pid files in
$RUN_DIR/pids, default .run/pids): RSS when idle, peak RSS (VmHWM), and the
CPU used during the load in cores (CPU seconds / wall seconds).
"""
import argparse
import http.client
import json
import os
import threading
import time

TICKERS = ["AAPL", "MSFT", "NVDA", "GME", "KO", "BRK.B"]


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def pids(run_dir):
    out = {}
    d = os.path.join(run_dir, "pids")
    for f in sorted(os.listdir(d)):
        name = f[:-4]
        if not f.endswith(".pid") or name == "supervisor":
            continue
        try:
            pid = int(open(os.path.join(d, f)).read().strip())
            os.kill(pid, 0)
            out[name] = pid
        except (ValueError, OSError):
            pass
    return out


def worker(args, stop, counts, i):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
    n = ok = 0
    hdr = {"X-API-Key": args.key, "Content-Type": "application/json"}
    while not stop.is_set():
        try:
            if n % 50 == 49:
                conn.request("POST", "/api/v1/auth/token", headers=hdr)
            elif n % 2:
                body = json.dumps({"ticker": TICKERS[n % len(TICKERS)], "position_value": 100000,
                                   "loan_days": 30, "client_id": "test123"})
                conn.request("POST", "/api/v1/calculate-locate", body=body, headers=hdr)
            else:
                conn.request("GET", f"/api/v1/rates/{TICKERS[n % len(TICKERS)]}", headers=hdr)
            r = conn.getresponse()
            r.read()
            ok += r.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
        n += 1
    counts[i] = (n, ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--seconds", type=float, default=45)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--run-dir", default=os.environ.get("RUN_DIR", ".run"))
    args = ap.parse_args()
    if not 1 <= args.seconds <= 60:
        ap.error("--seconds: 1 to 60 (a bounded load)")
    procs = pids(args.run_dir)
    idle = {n: proc_mem(p)["VmRSS"] for n, p in procs.items()}
    cpu0 = {n: proc_cpu_s(p) for n, p in procs.items()}
    stop, counts = threading.Event(), {}
    threads = [threading.Thread(target=worker, args=(args, stop, counts, i)) for i in range(args.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    n = sum(c[0] for c in counts.values())
    ok = sum(c[1] for c in counts.values())
    print(f"load: {n} requests in {wall:.1f} s ({n / wall:.0f}/s), {ok} answered 200, {args.threads} connections")
    print(f"{'process':22} {'idle RSS':>10} {'peak RSS':>10} {'CPU (cores)':>12} {'CPU ms / 1000 req':>18}")
    for name, pid in procs.items():
        mem = proc_mem(pid)
        cores = (proc_cpu_s(pid) - cpu0[name]) / wall
        print(f"{name:22} {idle[name] / 2**20:8.1f}Mi {mem['VmHWM'] / 2**20:8.1f}Mi {cores:12.3f} "
              f"{cores * wall * 1e6 / max(n, 1):18.1f}")


if __name__ == "__main__":
    main()
