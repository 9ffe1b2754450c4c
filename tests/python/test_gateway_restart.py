"""kill -9 while batches are in flight, start again: every batch settles exactly once, with
the cost its result lines give, and no hold is left behind."""

import json
import time
from decimal import Decimal

import anthropic

from gateway_stack import Ledger, admin_get, gateway, simulator, write_config
from test_gateway_e2e import body, cost_of, prices, wait_settled

KEY = "restart-client-key"
ADMIN = "restart-admin-token"
PROVIDER = "restart-provider-key"


def test_kill_9_mid_flight_then_restart_settles_every_batch_once(tmp_path):
    # Time runs 30x: a batch needs about 2 s of real time to end, time enough to kill.
    sim = simulator(key=PROVIDER, time_scale=30)
    cfg = tmp_path / "batchcost.toml"
    write_config(cfg, sim.url, {"alpha": ["RESTART_KEY"]},
                 [{"name": "alpha-daily", "project": "alpha", "period": "day", "limit_usd": 100.0}],
                 Ledger(tmp_path))
    env = {"RESTART_KEY": KEY, "TEST_ADMIN_TOKEN": ADMIN, "TEST_PROVIDER_KEY": PROVIDER}
    gw = gateway(cfg, env)
    try:
        client = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0)
        ids = [client.messages.batches.create(requests=body(f"k{i}", "claude-haiku-4-5", 25 + i, cached=False)).id
               for i in range(3)]
        gw.stop(kill=True)
        # While the gateway is down the batches end upstream.
        upstream = anthropic.Anthropic(base_url=sim.url, api_key=PROVIDER, max_retries=0)
        deadline = time.monotonic() + 60
        for i in ids:
            while upstream.messages.batches.retrieve(i).processing_status != "ended":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        gw = gateway(cfg, env)
        client = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0)
        table, disc = prices()
        total = Decimal(0)
        for i in ids:
            rec = wait_settled(gw, i, ADMIN)
            expected = Decimal(0)
            for line in client.messages.batches.results(i):
                if line.result.type == "succeeded":
                    expected += cost_of(line.result.message.usage.model_dump(), table[line.result.message.model][2], disc)
            assert Decimal(rec["cost_usd"]) == expected
            total += expected
        budget = [b for b in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"] if b["name"] == "alpha-daily"][0]
        assert Decimal(budget["spent_usd"]) == total, "each batch counted exactly once"
        assert Decimal(budget["reserved_usd"]) == 0, "no hold left behind"
        metrics = admin_get(f"{gw.url}/metrics", ADMIN)
        settled = [l for l in metrics.splitlines() if l.startswith("batchcost_batches_settled_total{") and 'project="alpha"' in l]
        assert float(settled[0].rsplit(" ", 1)[1]) == 3.0
    finally:
        gw.stop()
        sim.stop()
