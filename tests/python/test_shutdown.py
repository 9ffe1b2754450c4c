"""Graceful shutdown of the real binary: SIGTERM while a submission's upstream create is in
progress (the simulator holds every create with --slow-ms). Within the grace period the
submission finishes: the client gets its batch, the ledger records it in flight, and the
process exits 0. Past the grace period the process still exits 0 on time, the submission
stays `submitting` (the upstream may have accepted it), and the next start reconciles it:
adopted if the upstream has it, released if not. No hold survives for a batch the
upstream does not have."""

import json
import signal
import threading
import time
import urllib.error
import urllib.request

from gateway_stack import BIN, Ledger, Proc, gateway, write_config

PROVIDER = "sim-provider-key-shutdown"
KEY = "alpha-key-shutdown"
ADMIN = "admin-token-shutdown"


def post_batch(url, tag, out):
    body = json.dumps({"requests": [{"custom_id": f"{tag}-{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 20,
        "messages": [{"role": "user", "content": f"hello {i}"}]}} for i in range(3)]}).encode()
    req = urllib.request.Request(f"{url}/v1/messages/batches", data=body, method="POST", headers={
        "x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            out["status"], out["body"] = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        out["status"], out["body"] = e.code, e.read()
    except Exception as e:  # the connection closed under it
        out["status"], out["body"] = 0, repr(e)


def sim_stats(sim):
    req = urllib.request.Request(f"{sim.url}/_sim/stats", headers={"x-api-key": PROVIDER})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def rows(db):
    return db.rows("SELECT state, upstream_id FROM batches")


def stack(tmp_path, slow_ms, grace_secs):
    sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER,
                "--time-scale", "1", "--seed", "3", "--slow-rate", "1", "--slow-ms", str(slow_ms),
                "--fault-ops", "create"])
    db = Ledger(tmp_path)
    cfg = tmp_path / "batchcost.toml"
    write_config(cfg, sim.url, {"alpha": ["ALPHA_KEY"]},
                 [{"name": "alpha-daily", "project": "alpha", "period": "day", "limit_usd": 50.0}],
                 db, reconcile_after=1)
    with open(cfg, "a") as f:
        f.write(f"[server]\nshutdown_grace_secs = {grace_secs}\n")
    env = {"ALPHA_KEY": KEY, "TEST_ADMIN_TOKEN": ADMIN, "TEST_PROVIDER_KEY": PROVIDER}
    return sim, cfg, db, env


def sigterm_during_create(gw, sim):
    """Starts a submission, waits until its create reached the simulator, sends SIGTERM.
    Returns the client's outcome holder, its thread, and the SIGTERM time."""
    out = {}
    t = threading.Thread(target=post_batch, args=(gw.url, "s", out))
    t.start()
    deadline = time.monotonic() + 30
    while sim_stats(sim)["create_attempts"] < 1:
        assert time.monotonic() < deadline, "the create never reached the simulator"
        time.sleep(0.02)
    gw.p.send_signal(signal.SIGTERM)
    return out, t, time.monotonic()


def test_sigterm_lets_a_submission_in_progress_finish(tmp_path):
    sim, cfg, db, env = stack(tmp_path, slow_ms=2000, grace_secs=20)
    gw = gateway(cfg, env)
    try:
        out, t, sent = sigterm_during_create(gw, sim)
        code = gw.p.wait(timeout=30)
        took = time.monotonic() - sent
        t.join(timeout=30)
        assert code == 0, gw.logs()[-2000:]
        assert took < 20, f"exit took {took:.1f} s, past the grace period"
        assert out["status"] == 200, out
        assert sim_stats(sim)["creates_accepted"] == 1
        assert rows(db) == [("in_flight", out["body"]["id"])]
    finally:
        gw.stop()
        sim.stop()


def test_sigterm_past_the_grace_period_leaves_it_to_reconciliation(tmp_path):
    sim, cfg, db, env = stack(tmp_path, slow_ms=6000, grace_secs=1)
    gw = gateway(cfg, env)
    try:
        out, t, sent = sigterm_during_create(gw, sim)
        code = gw.p.wait(timeout=30)
        took = time.monotonic() - sent
        assert code == 0, gw.logs()[-2000:]
        assert took < 5, f"exit took {took:.1f} s with a 1 s grace period"
        assert "shutdown grace ran out" in gw.logs()
        t.join(timeout=30)
        assert rows(db) == [("submitting", None)], "cut off mid-create: kept for reconciliation"
    finally:
        gw.stop()
    # Whatever the upstream did with the create has happened by now.
    time.sleep(6.5)
    accepted = sim_stats(sim)["creates_accepted"]
    gw2 = gateway(cfg, env)
    try:
        deadline = time.monotonic() + 30
        while any(state == "submitting" for state, _ in rows(db)):
            assert time.monotonic() < deadline, f"never reconciled: {rows(db)}"
            time.sleep(0.2)
        [(state, upstream_id)] = rows(db)
        if accepted:
            assert state in ("in_flight", "settled") and upstream_id, (state, upstream_id)
        else:
            assert state == "failed", "released: the upstream never created it"
        req = urllib.request.Request(f"{gw2.url}/api/budgets", headers={"authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            budget = json.loads(r.read())["budgets"][0]
        assert (budget["reserved_usd"] == "0") == (not accepted), budget
    finally:
        gw2.stop()
        sim.stop()
