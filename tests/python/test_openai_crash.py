"""Crash safety of the OpenAI surface: SIGKILL the gateway between the upstream's acceptance
of a batch create and the ledger's record of it, restart it on the same ledger, and check
that the batch is found again through the submission id stamped in its `metadata`, tracked
and settled exactly once at the cost the test computes from the output file itself."""

import json
import threading
import time
import urllib.request
from decimal import Decimal

import pytest

from gateway_stack import admin_get, gateway, simulator
from test_openai_gateway import (ADMIN, KEYS, PROVIDER, batch_prices, chat_line, client, jsonl,
                                 line_cost, metric, no_ambient_credentials_module,  # noqa: F401 (fixture)
                                 wait_ended,
                                 wait_settled, write_config)

openai = pytest.importorskip("openai")


def sim_batches(sim):
    req = urllib.request.Request(f"{sim.url}/v1/batches?limit=100", headers={"authorization": f"Bearer {PROVIDER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["data"]


def wait_for(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_between_upstream_acceptance_and_the_record_settles_once(tmp_path, no_ambient_credentials_module):
    sim = simulator(key=PROVIDER, time_scale=3600)
    cfg = tmp_path / "batchcost.toml"
    write_config(cfg, sim.url, tmp_path / "ledger.db",
                 [{"name": "search-daily", "project": "search", "period": "day", "limit_usd": 50.0}])
    env = dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER)
    gw = gateway(cfg, dict(env, BATCHCOST_FAILPOINTS="after_upstream_accept"))
    try:
        search = client(gw, "SEARCH_KEY")
        lines = [chat_line(f"k-{i}", f"item {i}", "gpt-5-mini", max_completion_tokens=50) for i in range(12)]
        f = search.files.create(file=("crash.jsonl", jsonl(lines)), purpose="batch")
        outcome = {}

        def create():
            try:
                outcome["batch"] = search.batches.create(
                    input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
            except Exception as e:  # the connection dies with the gateway
                outcome["error"] = e

        t = threading.Thread(target=create)
        t.start()
        wait_for(lambda: "failpoint after_upstream_accept reached" in gw.logs(), "the failpoint")
        gw.stop(kill=True)
        t.join(timeout=30)
        assert "batch" not in outcome, "the client cannot have seen the batch"
        (upstream,) = sim_batches(sim)
        sub_id = upstream["metadata"]["batchcost_submission"]
        assert sub_id.startswith("sub_")

        gw = gateway(cfg, env)
        search = client(gw, "SEARCH_KEY")
        rec = wait_settled(gw, upstream["id"])
        assert rec["submission_id"] == sub_id and rec["project"] == "search"
        ended = wait_ended(search, upstream["id"])  # the project owns it again
        prices = batch_prices()
        total = Decimal(0)
        for raw in search.files.content(ended.output_file_id).text.splitlines():
            body = json.loads(raw)["response"]["body"]
            total += line_cost(body["usage"], prices[body["model"]])[0]
        assert Decimal(rec["cost_usd"]) == total
        budgets = {x["name"]: x for x in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"]}
        assert Decimal(budgets["search-daily"]["spent_usd"]) == total
        assert Decimal(budgets["search-daily"]["reserved_usd"]) == 0
        text = admin_get(f"{gw.url}/metrics", ADMIN)
        assert metric(text, "batchcost_batches_settled_total", {"project": "search", "provider": "openai"}) == 1
        assert len(sim_batches(sim)) == 1, "one client request, one upstream batch"
    finally:
        gw.stop()
        sim.stop()
