"""End to end: the official google-genai SDK (3.x, API version v1 by default, and v1beta)
-> batchcost gateway (`/gemini/`) -> batchcost simulator's Gemini surface.

Two projects create inline and file-based batches, poll and read results through the
gateway. The test prices every result itself from pricing.toml with Decimal arithmetic
(tier from promptTokenCount, thinking as output, cached tokens at the cache rate), including
a request above the long-context threshold and ones with thinking tokens, and checks that
/metrics, /api/batches/{id}, /api/budgets and the spend report agree to the micro-dollar.
A budget shared with an Anthropic batch refuses the Gemini batch that would overflow it
before the upstream sees a create; another project's batch or file is a 404."""

import json
import os
import time
import tomllib
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gateway_stack import REPO, Proc, admin_get, gateway

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

BIN = os.environ.get("BATCHCOST_BIN", "target/debug/batchcost")
KEYS = {"ALPHA_KEY": "alpha-gemini-key-123", "BETA_KEY": "beta-gemini-key-456", "DELTA_KEY": "delta-key-789"}
ADMIN = "test-admin-token-gem"
PROVIDER = "sim-provider-key-gem"


def write_config(path, sim_url, db):
    lines = [
        'listen = "127.0.0.1:0"',
        f'pricing = "{REPO / "pricing.toml"}"',
        'timezone = "Asia/Seoul"',
        "[storage]", f'url = "sqlite://{db}"',
        "[upstream.anthropic]", f'base_url = "{sim_url}"', 'api_key_env = "TEST_PROVIDER_KEY"',
        "[upstream.gemini]", f'base_url = "{sim_url}/gemini"', 'api_key_env = "TEST_PROVIDER_KEY"',
        "[admin]", 'token_env = "TEST_ADMIN_TOKEN"',
        "[tracker]", "poll_min_ms = 100", "poll_max_ms = 500", "reconcile_after_secs = 2",
    ]
    for name in ("alpha", "beta", "delta"):
        lines += ["[[projects]]", f'name = "{name}"', f'api_key_envs = ["{name.upper()}_KEY"]']
    lines += ["[[budgets]]", 'name = "alpha-daily"', 'project = "alpha"', 'period = "day"', "limit_usd = 50.0",
              "[[budgets]]", 'name = "beta-daily"', 'project = "beta"', 'period = "day"', "limit_usd = 50.0",
              "[[budgets]]", 'name = "delta-daily"', 'project = "delta"', 'period = "day"', "limit_usd = 0.05"]
    Path(path).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION"):
        os.environ.pop(name, None)
    tmp = tmp_path_factory.mktemp("gemini")
    sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER, "--time-scale", "0",
                "--seed", "4", "--rate", "10", "--startup-secs", "5", "--errored-fraction", "0.15"])
    cfg = tmp / "batchcost.toml"
    write_config(cfg, sim.url, tmp / "ledger.db")
    gw = gateway(cfg, dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER))
    yield {"sim": sim, "gw": gw, "cfg": cfg}
    gw.stop()
    sim.stop()


def client(gw, key, version=None):
    opts = {"base_url": gw.url + "/gemini/"}
    if version:
        opts["api_version"] = version
    return genai.Client(api_key=key, http_options=opts)


def sim_call(sim, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, method=method, data=data,
                                 headers={"x-api-key": PROVIDER, "x-goog-api-key": PROVIDER,
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def advance(sim, seconds):
    sim_call(sim, "POST", "/_sim/advance", {"seconds": seconds})


def upstream_batches(sim):
    return sim_call(sim, "GET", "/gemini/v1beta/batches?pageSize=1000").get("operations", [])


def prices():
    table = tomllib.loads((REPO / "pricing.toml").read_text())
    today = datetime.now(timezone.utc).date()
    out = {}
    for m in table["models"]:
        if m["provider"] != "gemini":
            continue
        e = max((e for e in m["prices"] if e["effective_from"] <= today), key=lambda e: e["effective_from"])
        out[m["id"]] = {k: Decimal(repr(v)) for k, v in e.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out, Decimal(repr(table["providers"]["gemini"]["batch_discount"]))


def cost_of(usage, p, disc):
    """One result's batch cost in USD: the whole request at the long tier when the prompt
    (cached included) is above the threshold; thinking billed as output; tool-use prompt
    tokens as input; cached tokens at the batch cache rate if the row has one, else at the
    standard cache rate."""
    prompt = usage.get("promptTokenCount", 0)
    cached = usage.get("cachedContentTokenCount", 0)
    out = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
    tool = usage.get("toolUsePromptTokenCount", 0)
    long = "long_context_threshold" in p and prompt > p["long_context_threshold"]
    pre = "long_" if long else ""
    rin, rout = p[pre + "input"], p[pre + "output"]
    rcache = p.get("batch_cache_read") if not long else None
    if rcache is None:
        rcache = p.get(pre + "cache_read", rin) / disc  # standard cache price, undiscounted
    return ((prompt - cached + tool) * rin + out * rout) * disc / Decimal(1_000_000) + cached * rcache * disc / Decimal(1_000_000)


def wait_done(c, sim, name):
    deadline = time.monotonic() + 120
    while True:
        job = c.batches.get(name=name)
        if job.state in (types.JobState.JOB_STATE_SUCCEEDED, types.JobState.JOB_STATE_FAILED,
                         types.JobState.JOB_STATE_CANCELLED):
            return job
        assert time.monotonic() < deadline, f"{name} did not end: {job.state}"
        advance(sim, 30)
        time.sleep(0.05)


def wait_settled(gw, bid):
    deadline = time.monotonic() + 120
    while True:
        rec = json.loads(admin_get(f"{gw.url}/api/batches/{bid}", ADMIN))
        if rec["status"] == "settled":
            return rec
        assert time.monotonic() < deadline, f"{bid} did not settle: {rec}"
        time.sleep(0.1)


def metric(text, name, labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_projects_inline_and_file_batches_agree_to_the_micro_dollar(stack, tmp_path):
    sim, gw = stack["sim"], stack["gw"]
    alpha = client(gw, KEYS["ALPHA_KEY"])                # v1, the SDK's default
    beta = client(gw, KEYS["BETA_KEY"], "v1beta")
    table, disc = prices()

    # alpha: inline, thinking with a budget.
    src = [{"contents": [{"role": "user", "parts": [{"text": f"Classify ticket {i}: login fails on step {i}."}]}],
            "config": {"max_output_tokens": 300, "thinking_config": {"thinking_budget": 128}}} for i in range(12)]
    src[0] = {**src[0], "metadata": {"key": "first"}}
    a = alpha.batches.create(model="gemini-2.5-flash", src=src)
    assert a.name.startswith("batches/") and a.model == "models/gemini-2.5-flash"

    # beta: a file uploaded through the gateway (resumable, priced while streaming), one
    # request far above the 200,000-token threshold.
    long_prompt = "lorem ipsum dolor sit amet " * 60000
    lines = [{"key": f"k{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Summarise item {i}."}]}],
                                         "generationConfig": {"maxOutputTokens": 150}}} for i in range(8)]
    lines.append({"key": "long", "request": {"contents": [{"role": "user", "parts": [{"text": long_prompt}]}],
                                             "generationConfig": {"maxOutputTokens": 400}}})
    path = tmp_path / "input.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    f = beta.files.upload(file=str(path), config={"mime_type": "application/jsonl", "display_name": "beta-in"})
    assert f.name.startswith("files/") and f.size_bytes == path.stat().st_size
    b = beta.batches.create(model="gemini-2.5-pro", src=f.name)
    assert b.name.startswith("batches/")

    # Isolation: another project's batch or file is a 404, as if it did not exist.
    for call in (lambda: alpha.batches.get(name=b.name), lambda: beta.batches.cancel(name=a.name),
                 lambda: alpha.batches.create(model="gemini-2.5-pro", src=f.name)):
        with pytest.raises(errors.ClientError) as e:
            call()
        assert e.value.code == 404 and e.value.status == "NOT_FOUND"
    assert [j.name for j in alpha.batches.list()] == [a.name]
    assert [j.name for j in beta.batches.list()] == [b.name]

    ja = wait_done(alpha, sim, a.name)
    jb = wait_done(beta, sim, b.name)
    assert ja.state == types.JobState.JOB_STATE_SUCCEEDED == jb.state

    expected = {}
    # Inline results arrive in the batch object; price each from its raw usage.
    got_a = Decimal(0)
    thoughts = 0
    errored = {"alpha": 0, "beta": 0}
    for r in ja.dest.inlined_responses:
        if r.error is not None:
            errored["alpha"] += 1
            continue
        u = r.response.usage_metadata.model_dump(by_alias=True, exclude_none=True)
        thoughts += u.get("thoughtsTokenCount", 0)
        got_a += cost_of(u, table["gemini-2.5-flash"], disc)
    assert thoughts > 0
    expected["alpha"] = got_a

    with pytest.raises(errors.ClientError) as e:
        alpha.files.download(file=jb.dest.file_name)
    assert e.value.code == 404
    data = beta.files.download(file=jb.dest.file_name)
    got_b, long_seen = Decimal(0), False
    results = list(map(json.loads, data.decode().splitlines()))
    assert sorted(r["key"] for r in results) == sorted(x["key"] for x in lines)
    assert "response" in next(r for r in results if r["key"] == "long"), [str(r)[:300] for r in results]
    for line in results:
        if "error" in line:
            errored["beta"] += 1
            continue
        u = line["response"]["usageMetadata"]
        long_seen |= u["promptTokenCount"] > 200_000
        got_b += cost_of(u, table["gemini-2.5-pro"], disc)
    assert long_seen
    expected["beta"] = got_b
    assert sum(errored.values()) > 0  # the simulator's errored fraction: failed lines counted

    for project, job in (("alpha", ja), ("beta", jb)):
        bid = job.name.split("/", 1)[1]
        rec = wait_settled(gw, bid)
        assert rec["project"] == project
        assert Decimal(rec["cost_usd"]) == expected[project], (project, rec["cost_usd"], expected[project])
        assert Decimal(rec["reserved_usd"]) >= expected[project]

    budgets = {x["name"]: x for x in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"]}
    assert Decimal(budgets["alpha-daily"]["spent_usd"]) == expected["alpha"]
    assert Decimal(budgets["beta-daily"]["spent_usd"]) == expected["beta"]
    assert Decimal(budgets["beta-daily"]["reserved_usd"]) == 0

    text = admin_get(f"{gw.url}/metrics", ADMIN)
    for project in ("alpha", "beta"):
        got = metric(text, "batchcost_cost_usd_total", {"project": project, "provider": "gemini"})
        assert abs(Decimal(repr(got)) - expected[project]) < Decimal("0.000001"), (project, got)
        n = metric(text, "batchcost_requests_total", {"project": project, "provider": "gemini", "result": "errored"})
        assert n == errored[project]
    today = datetime.now(timezone.utc).date()
    span = f"from={today - timedelta(days=2)}&to={today + timedelta(days=2)}"
    report = json.loads(admin_get(f"{gw.url}/api/reports/spend?{span}&group_by=project,provider&format=json", ADMIN))
    rows = report["rows"]
    for project in ("alpha", "beta"):
        row = [r for r in rows if r.get("project") == project and r.get("provider") == "gemini"]
        assert row, rows
        assert Decimal(row[0]["cost_usd"]) == expected[project]
        assert row[0]["requests_errored"] == errored[project]


def test_a_budget_shared_with_an_anthropic_batch_refuses_before_any_create(stack):
    sim, gw = stack["sim"], stack["gw"]
    import anthropic

    ant = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["DELTA_KEY"], max_retries=0)
    ant.messages.batches.create(requests=[{"custom_id": "d1", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}}])
    before = len(upstream_batches(sim))
    delta = client(gw, KEYS["DELTA_KEY"])
    with pytest.raises(errors.ClientError) as e:
        delta.batches.create(model="gemini-2.5-pro", src=[
            {"contents": [{"role": "user", "parts": [{"text": "Write a long essay."}]}]}])
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"
    assert "delta-daily" in e.value.message
    detail = e.value.details["error"]["details"][0]
    assert Decimal(detail["reserved_usd"]) > 0  # the Anthropic batch's hold counts
    assert len(upstream_batches(sim)) == before


def test_bad_input_and_keys_are_refused_by_name(stack, tmp_path):
    gw = stack["gw"]
    c = client(gw, KEYS["ALPHA_KEY"], "v1beta")
    with pytest.raises(errors.ClientError) as e:
        c.batches.create(model="gemini-nope", src=[{"contents": [{"role": "user", "parts": [{"text": "x"}]}]}])
    assert e.value.code == 400 and "gemini-nope" in e.value.message
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"key": "a", "request": {"generationConfig": {}}}) + "\n")
    with pytest.raises(errors.ClientError) as e:
        c.files.upload(file=str(path), config={"mime_type": "application/jsonl"})
    assert e.value.code == 400 and "line 1: request.contents" in e.value.message
    assert not [f for f in c.files.list()], "a file the gateway could not price was recorded"
    bad = client(gw, "not-a-key")
    with pytest.raises(errors.ClientError) as e:
        bad.batches.list()
    assert e.value.code == 401 and e.value.status == "UNAUTHENTICATED"
    # ?key= works like the header.
    req = urllib.request.Request(f"{gw.url}/gemini/v1/batches?key={KEYS['ALPHA_KEY']}")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert "operations" in json.loads(r.read())


def test_kill_between_upstream_acceptance_and_record_settles_once_at_the_right_cost(tmp_path):
    import sqlite3
    import threading

    sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER, "--time-scale", "0",
                "--seed", "5", "--rate", "10", "--startup-secs", "5"])
    cfg, db = tmp_path / "batchcost.toml", tmp_path / "ledger.db"
    write_config(cfg, sim.url, db)
    env = dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER)
    gw = gateway(cfg, dict(env, BATCHCOST_FAILPOINTS="after_upstream_accept"))
    procs = [sim, gw]
    try:
        c = client(gw, KEYS["ALPHA_KEY"])
        src = [{"contents": [{"role": "user", "parts": [{"text": f"Crash case {i}."}]}],
                "config": {"max_output_tokens": 120, "thinking_config": {"thinking_budget": 32}}} for i in range(6)]
        threading.Thread(target=lambda: pytest.raises(Exception, c.batches.create,
                                                      model="gemini-2.5-flash", src=src), daemon=True).start()
        deadline = time.monotonic() + 60
        while "failpoint after_upstream_accept reached" not in gw.logs():
            assert time.monotonic() < deadline, gw.logs()[-2000:]
            time.sleep(0.01)
        gw.stop(kill=True)
        ops = upstream_batches(sim)
        assert len(ops) == 1  # the upstream accepted it; the ledger never heard
        rows = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "select state, upstream_id from batches where provider = 'gemini'").fetchall()
        assert rows == [("submitting", None)], rows

        gw = gateway(cfg, env)
        procs.append(gw)
        bid = ops[0]["name"].split("/", 1)[1]
        deadline = time.monotonic() + 120
        while True:
            advance(sim, 30)
            try:
                rec = json.loads(admin_get(f"{gw.url}/api/batches/{bid}", ADMIN))
                if rec["status"] == "settled":
                    break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, gw.logs()[-3000:]
            time.sleep(0.1)
        table, disc = prices()
        op = sim_call(sim, "GET", f"/gemini/v1beta/batches/{bid}")
        want = Decimal(0)
        for r in op["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]:
            if "response" in r:
                want += cost_of(r["response"]["usageMetadata"], table["gemini-2.5-flash"], disc)
        assert Decimal(rec["cost_usd"]) == want
        rows = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "select state, upstream_id from batches where provider = 'gemini'").fetchall()
        assert rows == [("settled", bid)], rows
        text = admin_get(f"{gw.url}/metrics", ADMIN)
        assert metric(text, "batchcost_batches_settled_total", {"project": "alpha", "provider": "gemini"}) == 1
    finally:
        for p in reversed(procs):
            p.stop(kill=True)


def test_a_cancelled_batch_settles_with_its_unanswered_requests_canceled(stack):
    sim, gw = stack["sim"], stack["gw"]
    c = client(gw, KEYS["BETA_KEY"])
    src = [{"contents": [{"role": "user", "parts": [{"text": f"Cancel me {i}."}]}],
            "config": {"max_output_tokens": 80}} for i in range(30)]
    job = c.batches.create(model="gemini-2.5-flash-lite", src=src)
    c.batches.cancel(name=job.name)
    job = wait_done(c, sim, job.name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    table, disc = prices()
    answered = [r for r in (job.dest.inlined_responses or []) if r.response is not None] if job.dest else []
    want = sum((cost_of(r.response.usage_metadata.model_dump(by_alias=True, exclude_none=True),
                        table["gemini-2.5-flash-lite"], disc) for r in answered), Decimal(0))
    bid = job.name.split("/", 1)[1]
    rec = wait_settled(gw, bid)
    assert Decimal(rec["cost_usd"]) == want
    counts = {}
    for m in rec["models"]:
        for k, v in m["requests"].items():
            counts[k] = counts.get(k, 0) + v
    errored = len([r for r in (job.dest.inlined_responses or []) if r.error is not None]) if job.dest else 0
    assert counts.get("succeeded", 0) == len(answered)
    assert counts.get("canceled", 0) + counts.get("errored", 0) == 30 - len(answered)
    assert counts.get("canceled", 0) >= 30 - len(answered) - errored
