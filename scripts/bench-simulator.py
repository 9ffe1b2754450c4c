#!/usr/bin/env python3
"""Measures `batchcost simulate` with a full-size batch (a measurement, not a test).

Creates a batch of N requests through the official SDK, ends it by advancing simulated
time, then downloads the results twice: raw over HTTP (the simulator's own speed) and
through the SDK (what a client sees). Reports ingest and streaming throughput, and the
simulator's memory: RSS after start, after the create, and the peak while streaming
(VmHWM reset through /proc/PID/clear_refs just before each download, so it is the
streaming peak alone).

Run with a venv that has the anthropic SDK, against a release build:
    cargo build --release --bin batchcost
    ~/.cache/batchcost-test/sdk-current/bin/python scripts/bench-simulator.py \
        --bin target/release/batchcost --requests 100000
"""

import argparse
import json
import re
import subprocess
import time
import urllib.request

import anthropic

KEY = "bench-key"


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/batchcost")
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--max-tokens", type=int, default=1024)
    args = ap.parse_args()

    proc = subprocess.Popen([args.bin, "simulate", "--listen", "127.0.0.1:0", "--api-key", KEY,
                             "--time-scale", "0", "--rate", "50", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = re.fullmatch(r"listening on (\S+)\n", proc.stdout.readline()).group(1)
        pid = proc.pid
        rss_start = status_kb(pid, "VmRSS")
        client = anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0, timeout=900)

        system = "You classify customer support tickets into one of twelve categories. " * 4
        reqs = [{"custom_id": f"ticket-{i:06d}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": args.max_tokens, "system": system,
            "messages": [{"role": "user", "content": f"Ticket {i}: my order arrived damaged and "
                          f"I would like a replacement or a refund, whichever is faster."}]}}
                for i in range(args.requests)]
        body_bytes = len(json.dumps({"requests": reqs}))
        t0 = time.perf_counter()
        batch = client.messages.batches.create(requests=reqs)
        t_create = time.perf_counter() - t0
        del reqs
        rss_created = status_kb(pid, "VmRSS")
        hwm_create = status_kb(pid, "VmHWM")

        advance = urllib.request.Request(base + "/_sim/advance", method="POST",
                                         data=json.dumps({"seconds": 86400}).encode(),
                                         headers={"x-api-key": KEY, "content-type": "application/json"})
        urllib.request.urlopen(advance).read()
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended", ended

        # Raw download: how fast the simulator generates and sends lines.
        reset_peak(pid)
        rss_before = status_kb(pid, "VmRSS")
        req = urllib.request.Request(ended.results_url, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
        t0 = time.perf_counter()
        lines = size = 0
        with urllib.request.urlopen(req) as resp:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        t_raw = time.perf_counter() - t0
        hwm_raw = status_kb(pid, "VmHWM")
        assert lines == args.requests, lines

        # SDK download: parsed into typed objects, as a client does.
        reset_peak(pid)
        t0 = time.perf_counter()
        n = sum(1 for _ in client.messages.batches.results(batch.id))
        t_sdk = time.perf_counter() - t0
        hwm_sdk = status_kb(pid, "VmHWM")
        assert n == args.requests, n

        print(f"anthropic SDK {anthropic.__version__}, {args.requests} requests, create body {body_bytes / 1e6:.1f} MB")
        print(f"create: {t_create:.2f} s ({args.requests / t_create:,.0f} requests/s, {body_bytes / 1e6 / t_create:.1f} MB/s, SDK serialization included)")
        print(f"simulator RSS: start {mb(rss_start)}, after create {mb(rss_created)} (peak during create {mb(hwm_create)})")
        print(f"results raw:  {size / 1e6:.1f} MB in {t_raw:.2f} s = {lines / t_raw:,.0f} lines/s, {size / 1e6 / t_raw:.0f} MB/s; "
              f"RSS before {mb(rss_before)}, peak while streaming {mb(hwm_raw)} (+{(hwm_raw - rss_before) / 1024:.1f} MB)")
        print(f"results SDK:  {n} lines in {t_sdk:.2f} s = {n / t_sdk:,.0f} lines/s; peak while streaming {mb(hwm_sdk)} "
              f"(+{(hwm_sdk - rss_before) / 1024:.1f} MB)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
