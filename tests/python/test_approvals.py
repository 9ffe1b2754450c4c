"""Approvals end to end through the official anthropic SDK: a batch above a budget's
`approval_above_usd` is refused with 429 `approval_required` and an approval id; an
operator approves it with `batchcost approve ID --config FILE`; the same project
resubmitting the same body is admitted and settles; neither another body nor another
project rides on the approval; an approval expires; the ledger records who and when."""

import json
import subprocess
import time
import urllib.request

import anthropic
import pytest

from gateway_stack import BIN, admin_get, gateway, simulator, write_config

KEYS = {"ALPHA_KEY": "alpha-approval-key-1", "BETA_KEY": "beta-approval-key-2"}
ADMIN = "approval-admin-token"
PROVIDER = "sim-provider-key-approvals"


def requests(tag, n=20):
    return [
        {"custom_id": f"{tag}-{i:03d}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 2000,
            "messages": [{"role": "user", "content": f"Grade answer {i} of run {tag} from 1 to 5."}]}}
        for i in range(n)
    ]


def start(tmp, ttl_secs=None):
    sim = simulator(key=PROVIDER, time_scale=3600)
    cfg = tmp / "batchcost.toml"
    write_config(
        cfg, sim.url, {"alpha": ["ALPHA_KEY"], "beta": ["BETA_KEY"]},
        # 20 requests x 2,000 output tokens of Haiku are about $0.10 at worst.
        [{"name": "all-daily", "period": "day", "limit_usd": 5.0, "approval_above_usd": 0.05}],
        tmp / "ledger.db",
    )
    if ttl_secs is not None:
        text = cfg.read_text().replace('token_env = "TEST_ADMIN_TOKEN"',
                                       f'token_env = "TEST_ADMIN_TOKEN"\napproval_ttl_secs = {ttl_secs}')
        cfg.write_text(text)
    gw = gateway(cfg, dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER))
    return sim, gw, cfg


@pytest.fixture()
def stack(tmp_path):
    sim, gw, cfg = start(tmp_path)
    yield gw, cfg
    gw.stop()
    sim.stop()


def refused(client, reqs):
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.batches.create(requests=reqs)
    err = e.value.body["error"] if "error" in e.value.body else e.value.body
    assert err["type"] == "approval_required", err
    assert e.value.response.headers["x-should-retry"] == "false"
    return err["approval"]


def approvals(gw):
    return {a["id"]: a for a in json.loads(admin_get(f"{gw.url}/api/approvals", ADMIN))["approvals"]}


def wait_settled(gw, batch_id):
    deadline = time.monotonic() + 120
    while True:
        rec = json.loads(admin_get(f"{gw.url}/api/batches/{batch_id}", ADMIN))
        if rec["status"] == "settled":
            return rec
        assert time.monotonic() < deadline, f"{batch_id} did not settle: {rec}"
        time.sleep(0.2)


def test_refused_approved_resubmitted_admitted_settled(stack):
    gw, cfg = stack
    alpha = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["ALPHA_KEY"], max_retries=0)
    beta = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["BETA_KEY"], max_retries=0)
    big = requests("grading")
    a = refused(alpha, big)
    assert a["id"].startswith("apr_") and a["budget"] == "all-daily" and a["state"] == "pending"
    assert float(a["requested_usd"]) > 0.05

    out = subprocess.run([BIN, "approve", a["id"], "--config", str(cfg), "--by", "carol"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert a["id"] in out.stdout and "alpha" in out.stdout
    # An unknown id is a usage error naming it.
    bad = subprocess.run([BIN, "approve", "apr_nope", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "apr_nope" in bad.stderr

    # Another project with the same body, and the same project with another body, are refused.
    assert refused(beta, big)["id"] != a["id"]
    assert refused(alpha, requests("grading-2"))["id"] != a["id"]

    batch = alpha.messages.batches.create(requests=big)
    assert batch.id.startswith("msgbatch_")
    rec = wait_settled(gw, batch.id)
    assert rec["project"] == "alpha"
    ended = alpha.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert sum(1 for _ in alpha.messages.batches.results(batch.id)) == 20

    seen = approvals(gw)
    used = seen[a["id"]]
    assert used["state"] == "used" and used["approved_by"] == "cli:carol"
    assert used["used_by_submission"] == rec["submission_id"]
    assert used["requested_at"] <= used["approved_at"] <= used["used_at"]
    assert used["refusals"] == 1 and used["project"] == "alpha"
    others = [x for x in seen.values() if x["id"] != a["id"]]
    assert sorted(x["project"] for x in others) == ["alpha", "beta"]
    assert all(x["state"] == "pending" for x in others)
    # Within the dedupe window the same body is the client's retry: the same batch answers
    # (after it, the used approval admits nothing more; the Rust suite moves the clock).
    assert alpha.messages.batches.create(requests=big).id == batch.id


def test_an_approval_expires(tmp_path):
    sim, gw, cfg = start(tmp_path, ttl_secs=1)
    try:
        alpha = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["ALPHA_KEY"], max_retries=0)
        big = requests("expiring")
        a = refused(alpha, big)
        req = urllib.request.Request(f"{gw.url}/api/approvals/{a['id']}/approve", method="POST",
                                     data=b'{"by": "dave"}', headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            ok = json.loads(r.read())
        assert ok["state"] == "approved" and ok["approved_by"] == "api:dave"
        # Its one-second lifetime runs out (the state is read back, bounded).
        deadline = time.monotonic() + 30
        while approvals(gw)[a["id"]]["state"] != "expired":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        again = refused(alpha, big)
        assert again["id"] != a["id"] and again["state"] == "pending"
    finally:
        gw.stop()
        sim.stop()
