"""Several replicas on one PostgreSQL ledger (contract section 7.2): three real
`batchcost serve` processes on loopback share a fresh database and one simulator.

- 300 concurrent submissions spread over the three against a budget with room for exactly
  120: exactly 120 accepted, the window never over its limit; each batch polled by one
  replica at a time (the simulator's per-batch retrieve count is one poll stream's); every
  batch settled once with the cost its result lines give; counters sum across replicas.
- kill -9 the replica holding the leases while it is settling: the others take its batches
  over once the lease runs out, and each settles exactly once.
- A replica started on an older schema refuses until `batchcost migrate` runs.

Runs with BATCHCOST_TEST_STORAGE=postgres (scripts/test's PostgreSQL pass)."""

import hashlib
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from gateway_stack import BIN, ON_POSTGRES, REPO, Ledger, admin_get, gateway, psql, simulator, write_config
from test_crash import sim_results
from test_gateway_e2e import cost_of, metric, prices

pytestmark = [
    pytest.mark.skipif(not ON_POSTGRES, reason="needs BATCHCOST_TEST_STORAGE=postgres"),
    pytest.mark.skipif(os.environ.get("BATCHCOST_SDK") == "sdk-1x", reason="no SDK involved: runs once"),
]

PROVIDER = "crash-provider-key"  # test_crash's sim_results reads with this key
ADMIN = "replica-admin-token"
KEY = "replica-alpha-key"
ENV = {"REPLICA_KEY": KEY, "TEST_ADMIN_TOKEN": ADMIN, "TEST_PROVIDER_KEY": PROVIDER}
MAX_TOKENS = 100
ROOM = 120
PICO = Decimal("1e-12")


def post(url, data, timeout=60):
    req = urllib.request.Request(f"{url}/v1/messages/batches", data=data, method="POST", headers={
        "x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def one_request_body(tag):
    return json.dumps({"requests": [{"custom_id": f"{tag}-0", "params": {
        "model": "claude-haiku-4-5", "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": f"Classify ticket {tag}: the app logs me out."}]}}]}).encode()


def config(tmp, sim, ledger, name="batchcost.toml"):
    cfg = tmp / name
    write_config(cfg, sim.url, {"alpha": ["REPLICA_KEY"]},
                 [{"name": "alpha-daily", "project": "alpha", "period": "day",
                   "limit_output_tokens": ROOM * MAX_TOKENS}],
                 ledger, tracker_ms=(100, 400), reconcile_after=2, lease_secs=3)
    return cfg


def wait_all_settled(ledger, n, deadline_secs=120):
    deadline = time.monotonic() + deadline_secs
    while True:
        rows = ledger.rows("SELECT state, COUNT(*) FROM batches GROUP BY state")
        states = dict(rows)
        if states.get("settled", 0) == n and not states.get("in_flight") and not states.get("submitting"):
            return
        assert time.monotonic() < deadline, f"not all settled: {states}"
        time.sleep(0.2)


def check_costs(sim, ledger):
    """Every upstream batch settled once, at the cost its result lines give; returns the sum."""
    table, disc = prices()
    rows = {r[0]: r[1:] for r in ledger.rows(
        "SELECT upstream_id, state, cost_pico FROM batches WHERE upstream_id IS NOT NULL")}
    usage = dict(ledger.rows("SELECT sub_id, COUNT(*) FROM batch_usage GROUP BY sub_id"))
    total = Decimal(0)
    for upstream_id, (state, cost_pico) in rows.items():
        assert state == "settled", (upstream_id, state)
        lines = sim_results(sim.url, upstream_id)
        expected = sum((cost_of(l["result"]["message"]["usage"], table[l["result"]["message"]["model"]][2], disc)
                        for l in lines if l["result"]["type"] == "succeeded"), Decimal(0))
        assert Decimal(cost_pico) * PICO == expected, (upstream_id, cost_pico, expected)
        total += expected
    assert all(n == 1 for n in usage.values()), "one usage row per batch: settled once"
    return total


def sim_ctl(sim, method, path, body=None):
    req = urllib.request.Request(f"{sim.url}{path}", method=method, headers={
        "x-api-key": PROVIDER, "content-type": "application/json"},
        data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_three_replicas_admit_exactly_the_room_and_poll_each_batch_once(tmp_path):
    # Upstream time stands still until the storm is over: nothing settles (and frees room)
    # while the submissions race.
    sim = simulator(key=PROVIDER, time_scale=0)
    ledger = Ledger(tmp_path)
    cfg = config(tmp_path, sim, ledger)
    out = subprocess.run([BIN, "migrate", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "empty database -> version" in out.stdout, out.stdout
    replicas = [gateway(cfg, ENV) for _ in range(3)]
    try:
        over, stop = [], threading.Event()

        def watch():
            # Read straight from the shared ledger while the storm runs.
            while not stop.is_set():
                for used, limit in ledger.rows(
                        "SELECT spent_output + reserved_output, limit_output FROM budget_windows"):
                    if used > limit:
                        over.append(used)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(lambda i: post(replicas[i % 3].url, one_request_body(f"s{i}")), range(300)))
        stop.set()
        watcher.join()
        accepted = [v["id"] for s, v in results if s == 200]
        refused = [v for s, v in results if s != 200]
        assert len(accepted) == ROOM, (len(accepted), refused[:3])
        assert all(v["error"]["type"] == "budget_exceeded_error" for v in refused), refused[:3]
        assert not over, f"reserved + spent went over the limit: {over[:5]}"

        sim_ctl(sim, "POST", "/_sim/advance", {"seconds": 7200})
        wait_all_settled(ledger, ROOM)
        total = check_costs(sim, ledger)
        # One poll stream per batch: each poll that found it running scheduled the next
        # (poll_attempts), then one poll saw it end and settlement read it once more. A
        # second replica polling the same batch would add retrieves no schedule accounts for.
        retrieves = sim_ctl(sim, "GET", "/_sim/stats")["retrieves_by_batch"]
        attempts = dict(ledger.rows("SELECT upstream_id, poll_attempts FROM batches WHERE state = 'settled'"))
        streams = {b: (retrieves.get(b, 0), attempts[b] + 2) for b in accepted}
        wrong = {b: v for b, v in streams.items() if v[0] != v[1]}
        assert not wrong, f"batches with more than one poll stream (retrieves, one stream's): {list(wrong.items())[:5]}"

        # Counters: each replica counts what it did, the sum is the whole; ledger gauges
        # read the shared ledger, so every replica reports the same value (max, not sum).
        texts = [admin_get(f"{r.url}/metrics", ADMIN) for r in replicas]
        submitted = [metric(t, "batchcost_batches_submitted_total", {"project": "alpha"}) for t in texts]
        settled = [metric(t, "batchcost_batches_settled_total", {"project": "alpha"}) for t in texts]
        assert sum(submitted) == ROOM and sum(settled) == ROOM, (submitted, settled)
        assert all(n > 0 for n in submitted), submitted
        rejected = sum(metric(t, "batchcost_submissions_rejected_total", {"reason": "budget_exceeded"}) for t in texts)
        assert rejected == 300 - ROOM
        cost = sum(Decimal(repr(metric(t, "batchcost_cost_usd_total", {"project": "alpha"}))) for t in texts)
        assert abs(cost - total) < Decimal("0.000001"), (cost, total)
        spent = {metric(t, "batchcost_budget_spent_usd", {"budget": "alpha-daily"}) for t in texts}
        assert len(spent) == 1, f"a ledger gauge differs across replicas: {spent}"
        budget = [b for b in json.loads(admin_get(f"{replicas[1].url}/api/budgets", ADMIN))["budgets"]][0]
        assert Decimal(budget["spent_usd"]) == total and Decimal(budget["reserved_usd"]) == 0
    finally:
        for r in replicas:
            r.stop()
        sim.stop()


def test_kill_9_mid_settlement_another_replica_takes_over_and_settles_once(tmp_path):
    # Batches end about a second after creation; the first settlement freezes replica A.
    sim = simulator(key=PROVIDER, time_scale=1800)
    ledger = Ledger(tmp_path)
    cfg = config(tmp_path, sim, ledger)
    a = gateway(cfg, dict(ENV, BATCHCOST_FAILPOINTS="before_settle_commit@1"))
    others = [gateway(cfg, ENV) for _ in range(2)]
    try:
        # A creates them, so A holds their leases and tracks them.
        ids = []
        for i in range(6):
            status, v = post(a.url, one_request_body(f"k{i}"))
            assert status == 200, v
            ids.append(v["id"])
        deadline = time.monotonic() + 60
        while "failpoint before_settle_commit reached" not in a.logs():
            assert time.monotonic() < deadline, "A never started settling"
            time.sleep(0.02)
        held = ledger.rows("SELECT COUNT(*) FROM batches WHERE lease_owner IS NOT NULL AND state = 'in_flight'")[0][0]
        settling = ledger.rows("SELECT COUNT(*) FROM batches WHERE settling_by IS NOT NULL")[0][0]
        assert held >= 1 and settling == 1, (held, settling)
        killed_at = time.time()
        a.stop(kill=True)

        wait_all_settled(ledger, len(ids))
        took = max(r[0] for r in ledger.rows("SELECT settled_at FROM batches")) / 1e6 - killed_at
        print(f"\ntakeover: every batch of the killed replica settled {took:.2f} s after the kill (lease 3 s)")
        check_costs(sim, ledger)
        texts = [admin_get(f"{r.url}/metrics", ADMIN) for r in others]
        settled = sum(metric(t, "batchcost_batches_settled_total", {"project": "alpha"}) for t in texts)
        assert settled == len(ids), "the surviving replicas settled every batch, each once"
    finally:
        for r in [a, *others]:
            r.stop(kill=True)
        sim.stop()


def test_a_replica_on_an_older_schema_refuses_until_migrated(tmp_path):
    sim = simulator(key=PROVIDER, time_scale=1200)
    ledger = Ledger(tmp_path)
    cfg = config(tmp_path, sim, ledger)
    # The schema exactly as version 1 of the migrations leaves it (sqlx records each step
    # with the SHA-384 of its SQL).
    v1 = _migration_sql(1)
    psql(ledger.url, v1)
    psql(ledger.url, "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, "
                     "installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, "
                     "checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)")
    checksum = hashlib.sha384(v1.encode()).hexdigest()
    psql(ledger.url, f"INSERT INTO _sqlx_migrations VALUES (1, 'initial', now(), true, '\\x{checksum}', 0)")
    try:
        p = subprocess.run([BIN, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, **ENV))
        assert p.returncode == 1, p
        latest = max(int(f.name[:4]) for f in (REPO / "src" / "ledger" / "migrations" / "postgres").glob("*.sql"))
        assert "run `batchcost migrate`" in p.stderr and f"version 1 < {latest}" in p.stderr, p.stderr
        assert not p.stdout.startswith("listening"), "it must not serve"
        m = subprocess.run([BIN, "migrate", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
        assert m.returncode == 0, m.stderr
        assert f"version 1 -> version {latest}" in m.stdout, m.stdout
        gw = gateway(cfg, ENV)
        try:
            status, v = post(gw.url, one_request_body("after-migrate"))
            assert status == 200, v
        finally:
            gw.stop()
    finally:
        sim.stop()


def _migration_sql(version):
    path = REPO / "src" / "ledger" / "migrations" / "postgres"
    return next(path.glob(f"{version:04d}_*.sql")).read_text()
