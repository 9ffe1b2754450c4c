#!/usr/bin/env python3
"""Gemini gateway benchmarks (issue 12), with the official google-genai SDK against the
release binary: `simulate` as the baseline and `serve` in front of it, both on loopback.

  BATCHCOST_BIN=target/release/batchcost ~/.cache/batchcost-test/sdk-current/bin/python scripts/bench-gemini.py

Measures
- a 100 MB input file's resumable upload: time through the gateway minus time straight to
  the simulator, and the gateway's peak RSS growth (VmHWM) during it;
- a small (10-request) inline create's added median latency (40 creates each way);
- settlement: the 100,000-line results file of that upload's batch, from the batch's end
  to the ledger's settled record, in lines per second.
Figures are printed; nothing is asserted (benchmarks, not tests)."""

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
os.environ.setdefault("BATCHCOST_BIN", "target/release/batchcost")
os.environ.setdefault("RUST_LOG", "warn")

from gateway_stack import Proc, admin_get, gateway  # noqa: E402
from test_gateway_gemini import ADMIN, KEYS, PROVIDER, write_config  # noqa: E402

from google import genai  # noqa: E402

BIN = os.environ["BATCHCOST_BIN"]


def hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bench-gemini-"))
    sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER, "--time-scale", "0",
                "--seed", "1", "--rate", "1000000", "--startup-secs", "1"])
    cfg = tmp / "batchcost.toml"
    write_config(cfg, sim.url, tmp / "ledger.db")
    text = cfg.read_text().replace('limit_usd = 50.0', 'limit_usd = 100000.0')
    cfg.write_text(text)
    gw = gateway(cfg, dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER, RUST_LOG="warn"))
    direct = genai.Client(api_key=PROVIDER, http_options={"base_url": sim.url + "/gemini/"})
    via = genai.Client(api_key=KEYS["ALPHA_KEY"], http_options={"base_url": gw.url + "/gemini/"})
    try:
        # 100 MB, 100,000 requests of ~1 KB.
        path = tmp / "input.jsonl"
        filler = "lorem ipsum dolor sit amet consectetur " * 22
        with path.open("w") as f:
            for i in range(100_000):
                f.write(json.dumps({"key": f"r{i}", "request": {
                    "contents": [{"role": "user", "parts": [{"text": f"{i} {filler}"}]}],
                    "generationConfig": {"maxOutputTokens": 64}}}) + "\n")
        size = path.stat().st_size
        cfgu = {"mime_type": "application/jsonl"}
        t0 = time.perf_counter()
        direct.files.upload(file=str(path), config=cfgu)
        t_direct = time.perf_counter() - t0
        before = rss_kb(gw.p.pid)
        t0 = time.perf_counter()
        f = via.files.upload(file=str(path), config=cfgu)
        t_via = time.perf_counter() - t0
        peak = hwm_kb(gw.p.pid)
        print(f"upload {size / 1e6:.1f} MB: direct {t_direct:.2f} s, via gateway {t_via:.2f} s, "
              f"added {t_via - t_direct:.2f} s; gateway RSS before {before / 1024:.1f} MiB, "
              f"peak {peak / 1024:.1f} MiB (growth {(peak - before) / 1024:.1f} MiB)")
        listed = via.files.list()
        print(f"  recorded: {[(x.name, x.size_bytes) for x in listed]}")

        src = [{"contents": [{"role": "user", "parts": [{"text": f"Small question {i}"}]}],
                "config": {"max_output_tokens": 50}} for i in range(10)]
        lat = {"direct": [], "via": []}
        for _ in range(40):
            for name, c in (("direct", direct), ("via", via)):
                t0 = time.perf_counter()
                c.batches.create(model="gemini-2.5-flash", src=src)
                lat[name].append(time.perf_counter() - t0)
        md, mv = statistics.median(lat["direct"]), statistics.median(lat["via"])
        print(f"small inline create: median direct {md * 1000:.2f} ms, via gateway {mv * 1000:.2f} ms, "
              f"added {(mv - md) * 1000:.2f} ms")

        job = via.batches.create(model="gemini-2.5-flash", src=f.name)
        bid = job.name.split("/", 1)[1]
        sim_req = urllib.request.Request(sim.url + "/_sim/advance", method="POST",
                                         data=json.dumps({"seconds": 100000}).encode(),
                                         headers={"x-api-key": PROVIDER, "content-type": "application/json"})
        urllib.request.urlopen(sim_req, timeout=60).read()
        t0 = time.perf_counter()
        while True:
            rec = json.loads(admin_get(f"{gw.url}/api/batches/{bid}", ADMIN))
            if rec["status"] == "settled":
                break
            time.sleep(0.02)
        dt = time.perf_counter() - t0
        print(f"  batch record: requests {rec.get('request_count')}, reserved {rec.get('reserved_usd')}, cost {rec.get('cost_usd')}")
        print(f"settlement: 100,000 result lines settled in {dt:.2f} s after the batch ended "
              f"({100_000 / dt:,.0f} lines/s, tracker poll and download included); gateway peak RSS "
              f"{hwm_kb(gw.p.pid) / 1024:.1f} MiB")
    finally:
        gw.stop()
        sim.stop()


if __name__ == "__main__":
    main()
