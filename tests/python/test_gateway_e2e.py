"""End to end: the official anthropic SDK -> batchcost gateway -> batchcost simulator.

Two projects submit, poll and read results through the gateway. The test prices every
result line itself from pricing.toml with Decimal arithmetic (independently of the Rust
cost engine) and checks that /api/batches, /api/budgets and /metrics agree with it to the
micro-dollar."""

import json
import time
import tomllib
from datetime import datetime, timezone
from decimal import Decimal

import anthropic
import pytest

from gateway_stack import REPO, Ledger, admin_get, gateway, simulator, write_config

KEYS = {"ALPHA_KEY": "alpha-client-key-123", "BETA_KEY": "beta-client-key-456"}
ADMIN = "test-admin-token-789"
PROVIDER = "sim-provider-key-abc"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    sim = simulator(key=PROVIDER, time_scale=3600)
    cfg = tmp / "batchcost.toml"
    write_config(
        cfg,
        sim.url,
        {"alpha": ["ALPHA_KEY"], "beta": ["BETA_KEY"]},
        [
            {"name": "alpha-daily", "project": "alpha", "period": "day", "limit_usd": 50.0, "alert_at": [0.5, 0.8]},
            {"name": "beta-daily", "project": "beta", "period": "day", "limit_usd": 50.0},
            {"name": "all-monthly", "period": "month", "limit_usd": 500.0, "alert_at": [0.9]},
        ],
        Ledger(tmp),
    )
    env = dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER)
    gw = gateway(cfg, env)
    yield {"sim": sim, "gw": gw}
    gw.stop()
    sim.stop()


def prices():
    table = tomllib.loads((REPO / "pricing.toml").read_text())
    today = datetime.now(timezone.utc).date()
    out = {}
    for m in table["models"]:
        entries = [e for e in m["prices"] if e["effective_from"] <= today]
        e = max(entries, key=lambda e: e["effective_from"])
        d = {k: Decimal(repr(v)) for k, v in e.items() if k in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")}
        for name in [m["id"], *m.get("aliases", [])]:
            out[name] = (m["provider"], m["id"], d)
    disc = Decimal(repr(table["providers"]["anthropic"]["batch_discount"]))
    return out, disc


def cost_of(usage, price, disc):
    cc = usage.get("cache_creation") or {}
    w5 = cc.get("ephemeral_5m_input_tokens", usage.get("cache_creation_input_tokens") or 0) if cc else (usage.get("cache_creation_input_tokens") or 0)
    w1 = cc.get("ephemeral_1h_input_tokens", 0) if cc else 0
    tokens = (usage["input_tokens"] * price["input"] + w5 * price["cache_write_5m"] + w1 * price["cache_write_1h"]
              + (usage.get("cache_read_input_tokens") or 0) * price["cache_read"] + usage["output_tokens"] * price["output"])
    return tokens * disc / Decimal(1_000_000)


def body(prefix, model, n, cached):
    system = [{"type": "text", "text": "You classify support tickets by urgency. " * 40}]
    if cached:
        system[0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    return [
        {"custom_id": f"{prefix}-{i:03d}", "params": {
            "model": model, "max_tokens": 200 + i, "system": system,
            "messages": [{"role": "user", "content": f"Ticket {i}: the export button does nothing in Safari {i}."}]}}
        for i in range(n)
    ]


def wait_ended(client, batch_id):
    deadline = time.monotonic() + 120
    while True:
        b = client.messages.batches.retrieve(batch_id)
        if b.processing_status == "ended":
            return b
        assert time.monotonic() < deadline, f"{batch_id} did not end"
        time.sleep(0.2)


def wait_settled(gw, batch_id, token=ADMIN):
    deadline = time.monotonic() + 120
    while True:
        rec = json.loads(admin_get(f"{gw.url}/api/batches/{batch_id}", token))
        if rec["status"] == "settled":
            return rec
        assert time.monotonic() < deadline, f"{batch_id} did not settle: {rec}"
        time.sleep(0.2)


def metric(text, name, labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_projects_costs_agree_to_the_micro_dollar(stack):
    gw = stack["gw"]
    alpha = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["ALPHA_KEY"], max_retries=0)
    # The other auth style: Authorization: Bearer.
    beta = anthropic.Anthropic(base_url=gw.url, auth_token=KEYS["BETA_KEY"], api_key=None, max_retries=0)
    a = alpha.messages.batches.create(requests=body("a", "claude-sonnet-4-6", 30, cached=True))
    b = beta.messages.batches.create(requests=body("b", "claude-haiku-4-5", 20, cached=False))
    assert a.id.startswith("msgbatch_") and b.id.startswith("msgbatch_")
    assert a.results_url is None

    # Isolation: another project's batch is a 404, as if it did not exist.
    with pytest.raises(anthropic.NotFoundError):
        beta.messages.batches.retrieve(a.id)
    assert [x.id for x in alpha.messages.batches.list(limit=10)] == [a.id]

    table, disc = prices()
    expected = {}
    for client, batch, project in ((alpha, a, "alpha"), (beta, b, "beta")):
        ended = wait_ended(client, batch.id)
        assert ended.results_url.startswith(gw.url), "results_url must point at the gateway"
        total, lines = Decimal(0), 0
        for line in client.messages.batches.results(batch.id):
            lines += 1
            if line.result.type == "succeeded":
                msg = line.result.message
                _, _, price = table[msg.model]
                total += cost_of(msg.usage.model_dump(), price, disc)
        assert lines == len(body("x", "m", 30 if project == "alpha" else 20, False))
        expected[project] = (batch.id, total)

    text = None
    for project, (batch_id, total) in expected.items():
        rec = wait_settled(gw, batch_id)
        assert rec["project"] == project
        assert Decimal(rec["cost_usd"]) == total, (project, rec["cost_usd"], total)
        assert Decimal(rec["reserved_usd"]) >= total
    budgets = {x["name"]: x for x in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"]}
    assert Decimal(budgets["alpha-daily"]["spent_usd"]) == expected["alpha"][1]
    assert Decimal(budgets["beta-daily"]["spent_usd"]) == expected["beta"][1]
    assert Decimal(budgets["all-monthly"]["spent_usd"]) == expected["alpha"][1] + expected["beta"][1]
    assert Decimal(budgets["all-monthly"]["reserved_usd"]) == 0
    # A batch reads as settled once its commit is visible; the settling task counts it in
    # /metrics after that commit's flush barrier, so a scrape may trail by one flush.
    deadline = time.monotonic() + 10
    while True:
        text = admin_get(f"{gw.url}/metrics", ADMIN)
        counted = [metric(text, "batchcost_batches_settled_total", {"project": p}) for p in expected]
        if all(c == 1 for c in counted) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for project, (_, total) in expected.items():
        got = metric(text, "batchcost_cost_usd_total", {"project": project})
        assert abs(Decimal(repr(got)) - total) < Decimal("0.000001"), (project, got, total)
    assert metric(text, "batchcost_batches_settled_total", {"project": "alpha"}) == 1
    # No key, project or admin, ever appears in what the gateway says.
    for secret in [*KEYS.values(), ADMIN, PROVIDER]:
        assert secret not in text
        assert secret not in gw.logs()
