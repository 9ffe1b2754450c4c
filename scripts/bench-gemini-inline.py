#!/usr/bin/env python3
"""Gemini inline create at scale: the same `batchGenerateContent` body of N small inline
requests sent straight to `simulate` and through `serve`, with wall time and each
process's CPU time for the call, then one create of the same N with the google-genai SDK
(its client-side model validation included). Figures only; nothing is asserted.

  BATCHCOST_BIN=target/debug/batchcost BATCHCOST_REPO=$PWD \
    ~/.cache/batchcost-test/sdk-current/bin/python scripts/bench-gemini-inline.py 1000 5000 20000
"""
import json, os, sys, tempfile, time, urllib.request, resource
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
os.environ.setdefault("RUST_LOG", "warn")
from gateway_stack import Proc, gateway
from test_gateway_gemini import ADMIN, KEYS, PROVIDER, write_config
BIN = os.environ["BATCHCOST_BIN"]
tmp = Path(tempfile.mkdtemp(prefix="gemperf-", dir=None))
sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER, "--time-scale", "0",
            "--seed", "1", "--rate", "1000000", "--startup-secs", "1"])
cfg = tmp / "batchcost.toml"
write_config(cfg, sim.url, tmp / "ledger.db")
cfg.write_text(cfg.read_text().replace('limit_usd = 50.0', 'limit_usd = 1000000.0'))
gw = gateway(cfg, dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER, RUST_LOG="warn"))
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def post(url, key, body):
    r = urllib.request.Request(url, data=body, method="POST", headers={"x-goog-api-key": key, "content-type": "application/json"})
    t = time.perf_counter(); urllib.request.urlopen(r, timeout=600).read(); return time.perf_counter() - t
for n in [int(x) for x in sys.argv[1:]]:
    reqs = [{"request": {"contents": [{"role": "user", "parts": [{"text": f"Say hello number {i}"}]}],
             "generationConfig": {"maxOutputTokens": 50}}, "metadata": {"key": f"k{i}"}} for i in range(n)]
    body = json.dumps({"batch": {"displayName": "x", "inputConfig": {"requests": {"requests": reqs}}}}).encode()
    m = "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    s0 = cpu(sim.p.pid); d = post(sim.url + m, PROVIDER, body); s1 = cpu(sim.p.pid)
    g0 = cpu(gw.p.pid); v = post(gw.url + m, KEYS["ALPHA_KEY"], body); g1 = cpu(gw.p.pid); s2 = cpu(sim.p.pid)
    print(f"n={n} bytes={len(body)} direct {d:.3f}s (sim cpu {s1-s0:.2f}) gateway {v:.3f}s (gw cpu {g1-g0:.2f}, sim cpu {s2-s1:.2f}) load {open('/proc/loadavg').read().split()[:3]}", flush=True)
    import json as J
    def get(url, key):
        r = urllib.request.Request(url, headers={"x-goog-api-key": key})
        t = time.perf_counter(); b = urllib.request.urlopen(r, timeout=600).read(); return time.perf_counter() - t, b
    from google import genai
    via = genai.Client(api_key=KEYS["ALPHA_KEY"], http_options={"base_url": gw.url + "/gemini/"})
    t = time.perf_counter(); via.batches.create(model="gemini-2.5-flash", src=[{"contents": r["request"]["contents"]} for r in reqs]); print(f"  sdk create via gateway {time.perf_counter()-t:.3f}s")
