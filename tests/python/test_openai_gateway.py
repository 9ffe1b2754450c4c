"""End to end through the OpenAI surface: the official `openai` SDK -> batchcost gateway ->
batchcost simulator (its OpenAI Files + Batches API), with an Anthropic upstream beside it.

Two projects upload, create, poll and read their output and error files through the
gateway. The test prices every output line itself from pricing.toml with Decimal
arithmetic (independently of the Rust cost engine) and checks that /api/batches,
/api/budgets, /metrics and the spend report agree with it to the micro-dollar; then a
budget shared by an Anthropic and an OpenAI project refuses the batch that would overflow
it before the upstream sees a create; then isolation and key hygiene."""

import json
import time
import tomllib
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gateway_stack import REPO, admin_get, gateway, simulator

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

KEYS = {"SEARCH_KEY": "search-client-key-111", "ADS_KEY": "ads-client-key-222", "CHAT_KEY": "chat-client-key-333"}
ADMIN = "test-admin-token-oa"
PROVIDER = "sim-provider-key-oa"
# Long enough (> 1,024 tokens) that repeated lines hit OpenAI's prompt cache.
SYSTEM = "You are a careful assistant. " * 260


def write_config(path, sim_url, db, budgets):
    lines = [
        'listen = "127.0.0.1:0"',
        f'pricing = "{REPO / "pricing.toml"}"',
        'timezone = "Asia/Seoul"',
        "[storage]",
        f'url = "sqlite://{db}"',
        "[upstream.anthropic]",
        f'base_url = "{sim_url}"',
        'api_key_env = "TEST_PROVIDER_KEY"',
        "[upstream.openai]",
        f'base_url = "{sim_url}"',
        'api_key_env = "TEST_PROVIDER_KEY"',
        "[admin]",
        'token_env = "TEST_ADMIN_TOKEN"',
        "[tracker]",
        "poll_min_ms = 100",
        "poll_max_ms = 1000",
        "reconcile_after_secs = 2",
    ]
    for name, env in (("search", "SEARCH_KEY"), ("ads", "ADS_KEY"), ("chat", "CHAT_KEY")):
        lines += ["[[projects]]", f'name = "{name}"', f'api_key_envs = ["{env}"]']
    for b in budgets:
        lines.append("[[budgets]]")
        for k, v in b.items():
            lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    Path(path).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, no_ambient_credentials_module):
    tmp = tmp_path_factory.mktemp("openai")
    sim = simulator(key=PROVIDER, time_scale=3600)
    cfg = tmp / "batchcost.toml"
    write_config(cfg, sim.url, tmp / "ledger.db", [
        {"name": "search-daily", "project": "search", "period": "day", "limit_usd": 50.0},
        {"name": "ads-openai", "project": "ads", "provider": "openai", "period": "day", "limit_usd": 50.0},
        # Shared by the Anthropic project `chat` and the OpenAI project `ads`.
        {"name": "shared-tight", "period": "month", "limit_usd": 0.2},
    ])
    env = dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER)
    gw = gateway(cfg, env)
    yield {"sim": sim, "gw": gw}
    gw.stop()
    sim.stop()


@pytest.fixture(scope="module")
def no_ambient_credentials_module():
    import os
    saved = {k: os.environ.pop(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID",
                                             "OPENAI_PROJECT_ID", "ANTHROPIC_API_KEY") if k in os.environ}
    yield
    os.environ.update(saved)


def client(gw, env):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEYS[env], max_retries=0)


def chat_line(cid, text, model, **body):
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": msgs, **body}}


def responses_line(cid, text, model, **body):
    return {"custom_id": cid, "method": "POST", "url": "/v1/responses",
            "body": {"model": model, "instructions": SYSTEM, "input": text, **body}}


def jsonl(lines):
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def batch_prices():
    """{model: (batch input, batch cached, batch output)} per million tokens, for OpenAI rows."""
    table = tomllib.loads((REPO / "pricing.toml").read_text())
    today = datetime.now(timezone.utc).date()
    pdisc = Decimal(repr(table["providers"]["openai"]["batch_discount"]))
    out = {}
    for m in table["models"]:
        if m.get("provider") != "openai":
            continue
        e = max((e for e in m["prices"] if e["effective_from"] <= today), key=lambda e: e["effective_from"])
        disc = e.get("batch_discount", m.get("batch_discount"))
        disc = pdisc if disc is None else Decimal(repr(disc))
        mult = 1 - disc
        inp, outp = Decimal(repr(e["input"])) * mult, Decimal(repr(e.get("output", 0))) * mult
        cached = Decimal(repr(e["batch_cache_read"])) if "batch_cache_read" in e else inp
        for name in [m["id"], *m.get("aliases", [])]:
            out[name] = (m["id"], inp, cached, outp)
    return out


def line_cost(usage, price):
    _, inp, cached_p, outp = price
    if "input_tokens" in usage:
        prompt, out = usage["input_tokens"], usage["output_tokens"]
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    else:
        prompt, out = usage["prompt_tokens"], usage.get("completion_tokens", 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return ((prompt - cached) * inp + cached * cached_p + out * outp) / Decimal(1_000_000), cached


def wait_ended(c, batch_id):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        b = c.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not end")


def wait_settled(gw, batch_id):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            rec = json.loads(admin_get(f"{gw.url}/api/batches/{batch_id}", ADMIN))
        except urllib.error.HTTPError:
            rec = {}
        if rec.get("status") == "settled":
            return rec
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not settle")


def metric(text, name, labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_projects_upload_create_poll_read_and_agree_to_the_micro_dollar(stack):
    gw = stack["gw"]
    search, ads = client(gw, "SEARCH_KEY"), client(gw, "ADS_KEY")
    s_lines = [chat_line(f"s-{i}", f"Question {i}: what is {i}+{i}?", "gpt-5-mini", max_completion_tokens=60)
               for i in range(24)]
    s_lines[3]["body"].pop("messages")  # the endpoint refuses it: an error-file line, no cost
    a_lines = [responses_line(f"a-{i}", f"Summarise item {i}.", "gpt-4o-mini", max_output_tokens=80)
               for i in range(16)]
    jobs = {}
    for c, project, lines, endpoint in ((search, "search", s_lines, "/v1/chat/completions"),
                                         (ads, "ads", a_lines, "/v1/responses")):
        f = c.files.create(file=(f"{project}.jsonl", jsonl(lines)), purpose="batch")
        assert (f.object, f.purpose, f.bytes, f.filename) == ("file", "batch", len(jsonl(lines)), f"{project}.jsonl")
        assert c.files.retrieve(f.id).id == f.id
        b = c.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h",
                             metadata={"job": project})
        assert b.id.startswith("batch_") and b.input_file_id == f.id
        assert b.metadata["job"] == project
        jobs[project] = (c, f, b, lines)

    # Lists come from the ledger: each project sees its own, with OpenAI's page fields.
    for project, (c, f, b, _) in jobs.items():
        assert [x.id for x in c.files.list()] == [f.id]
        page = c.batches.list(limit=10)
        assert [x.id for x in page.data] == [b.id] and page.has_more is False

    prices = batch_prices()
    expected, cached_seen = {}, 0
    for project, (c, f, b, lines) in jobs.items():
        ended = wait_ended(c, b.id)
        assert ended.status == "completed", ended
        got = []
        total = Decimal(0)
        if ended.output_file_id:
            for raw in c.files.content(ended.output_file_id).text.splitlines():
                line = json.loads(raw)
                body = line["response"]["body"]
                cost, cached = line_cost(body["usage"], prices[body["model"]])
                total += cost
                cached_seen += cached
                got.append(line["custom_id"])
        errored = []
        if ended.error_file_id:
            errored = [json.loads(x)["custom_id"] for x in c.files.content(ended.error_file_id).text.splitlines()]
        assert sorted(got + errored) == sorted(x["custom_id"] for x in lines)
        if project == "search":
            assert errored == ["s-3"]
        model = lines[0]["body"]["model"]
        expected[project] = (b.id, total, len(got), len(errored), model)
    assert cached_seen > 0, "the shared system prompt should have produced cache hits"

    for project, (batch_id, total, ok, bad, model) in expected.items():
        rec = wait_settled(gw, batch_id)
        assert (rec["project"], rec["provider"]) == (project, "openai")
        assert Decimal(rec["cost_usd"]) == total, (project, rec["cost_usd"], total)
        assert Decimal(rec["reserved_usd"]) >= total
        (m,) = rec["models"]
        assert m["model"] == model
        assert (m["requests"]["succeeded"], m["requests"]["errored"]) == (ok, bad)

    budgets = {x["name"]: x for x in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"]}
    assert Decimal(budgets["search-daily"]["spent_usd"]) == expected["search"][1]
    assert Decimal(budgets["ads-openai"]["spent_usd"]) == expected["ads"][1]
    assert Decimal(budgets["search-daily"]["reserved_usd"]) == 0

    text = admin_get(f"{gw.url}/metrics", ADMIN)
    for project, (_, total, ok, bad, model) in expected.items():
        labels = {"project": project, "provider": "openai", "model": model}
        got = metric(text, "batchcost_cost_usd_total", labels)
        assert abs(Decimal(repr(got)) - total) < Decimal("0.000001"), (project, got, total)
        assert metric(text, "batchcost_requests_total", {**labels, "result": "succeeded"}) == ok
        assert metric(text, "batchcost_batches_settled_total", {"project": project, "provider": "openai"}) == 1

    today = datetime.now(timezone.utc).date()
    q = f"from={today - timedelta(days=2)}&to={today + timedelta(days=2)}&group_by=project,provider,model&format=json"
    report = json.loads(admin_get(f"{gw.url}/api/reports/spend?{q}", ADMIN))
    rows = {(r["project"], r["provider"], r["model"]): r for r in report["rows"]}
    for project, (_, total, ok, bad, model) in expected.items():
        r = rows[(project, "openai", model)]
        assert Decimal(r["cost_usd"]) == total
        assert (r["requests_succeeded"], r["requests_errored"]) == (ok, bad)
    focus = admin_get(f"{gw.url}/api/reports/spend?{q.replace('format=json', 'format=focus')}", ADMIN)
    openai_rows = [r for r in focus.splitlines()[1:] if ",OpenAI," in r]
    assert openai_rows and all("OpenAI Batch API" in r and ",Batch," in r for r in openai_rows)
    assert not any("Message Batch" in r for r in openai_rows)


def test_a_budget_shared_across_providers_refuses_the_overflowing_batch_before_the_upstream(stack):
    gw, sim = stack["gw"], stack["sim"]
    chat = anthropic.Anthropic(base_url=gw.url, api_key=KEYS["CHAT_KEY"], max_retries=0)
    ads = client(gw, "ADS_KEY")
    # The Anthropic project takes most of the shared $0.20 first.
    reqs = [{"custom_id": f"c-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 3000,
             "messages": [{"role": "user", "content": "hi"}]}} for i in range(20)]
    chat.messages.batches.create(requests=reqs)
    budgets = {x["name"]: x for x in json.loads(admin_get(f"{gw.url}/api/budgets", ADMIN))["budgets"]}
    shared = budgets["shared-tight"]
    assert Decimal(shared["reserved_usd"]) + Decimal(shared["spent_usd"]) > Decimal("0.1")
    lines = [chat_line(f"o-{i}", "long answer please", "gpt-5", max_completion_tokens=20000) for i in range(10)]
    f = ads.files.create(file=("big.jsonl", jsonl(lines)), purpose="batch")
    creates_before = sim_openai_creates(sim)
    with pytest.raises(openai.RateLimitError) as err:
        ads.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    resp = err.value.response
    body = resp.json()["error"]
    assert body["code"] == "budget_exceeded" and body["budget"]["name"] == "shared-tight", body
    assert resp.headers["x-should-retry"] == "false" and int(resp.headers["retry-after"]) >= 1
    assert sim_openai_creates(sim) == creates_before, "the upstream must not see the refused create"
    text = admin_get(f"{gw.url}/metrics", ADMIN)
    assert metric(text, "batchcost_submissions_rejected_total", {"project": "ads", "reason": "budget_exceeded"}) >= 1


def sim_openai_creates(sim):
    """Create calls the simulator received (either API; only an OpenAI one can come here)."""
    req = urllib.request.Request(f"{sim.url}/_sim/stats", headers={"x-api-key": PROVIDER})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["create_attempts"]


def test_isolation_and_key_hygiene(stack):
    gw = stack["gw"]
    search, ads = client(gw, "SEARCH_KEY"), client(gw, "ADS_KEY")
    lines = [chat_line(f"i-{i}", "hello", "gpt-5-nano", max_completion_tokens=10) for i in range(3)]
    f = search.files.create(file=("mine.jsonl", jsonl(lines)), purpose="batch")
    b = search.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    for call in (lambda: ads.files.retrieve(f.id), lambda: ads.files.content(f.id),
                 lambda: ads.files.delete(f.id), lambda: ads.batches.retrieve(b.id),
                 lambda: ads.batches.cancel(b.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    # A batch naming another project's file is refused, and creates nothing.
    with pytest.raises(openai.NotFoundError):
        ads.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert f.id not in [x.id for x in ads.files.list()]
    assert b.id not in [x.id for x in ads.batches.list()]
    ended = wait_ended(search, b.id)
    with pytest.raises(openai.NotFoundError):
        ads.files.content(ended.output_file_id)
    assert search.files.content(ended.output_file_id).text.count("\n") == 3
    # Bad keys are 401 in OpenAI's envelope.
    bad = openai.OpenAI(base_url=gw.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.files.list()
    assert err.value.response.json()["error"]["code"] == "invalid_api_key"
    # A bad line is a 400 naming its line and field.
    broken = jsonl(lines[:1] + [dict(lines[1], method="GET")])
    with pytest.raises(openai.BadRequestError) as err:
        search.files.create(file=("bad.jsonl", broken), purpose="batch")
    assert err.value.response.json()["error"]["message"].startswith("line 2: method:")
    # Also when the bad line is followed by megabytes the client is still sending.
    filler = [chat_line(f"f-{i}", "x" * 1000, "gpt-5-nano", max_completion_tokens=10) for i in range(20_000)]
    big = jsonl(lines[:1] + [dict(lines[1], method="GET")] + filler)
    assert len(big) > 20_000_000
    with pytest.raises(openai.BadRequestError) as err:
        search.files.create(file=("big-bad.jsonl", big), purpose="batch")
    assert err.value.response.json()["error"]["message"].startswith("line 2: method:")
    deleted = search.files.delete(f.id)
    assert deleted.deleted and f.id not in [x.id for x in search.files.list()]
    # Neither the provider key nor any client key ever leaves the gateway.
    text = admin_get(f"{gw.url}/metrics", ADMIN)
    for secret in [*KEYS.values(), ADMIN, PROVIDER]:
        assert secret not in text
        assert secret not in gw.logs()
    raw = search.batches.with_raw_response.retrieve(b.id)
    assert PROVIDER not in raw.text and PROVIDER not in str(dict(raw.headers))


def test_several_openai_compatible_upstreams_at_their_own_prefixes(tmp_path, no_ambient_credentials_module):
    """`together` (kind = "openai", its own rows in the price table) beside `openai`: each at
    its own prefix, its batches priced with its own rows and labelled with its name."""
    sim = simulator(key=PROVIDER, time_scale=3600)
    pricing = tmp_path / "pricing.toml"
    pricing.write_text((REPO / "pricing.toml").read_text() + """
[providers.together]
kind = "openai"
batch_discount = 0.5

[[models]]
provider = "together"
id = "gpt-5-mini"
max_output_tokens = 16000
[[models.prices]]
effective_from = 2025-01-01
source = "test row"
input = 0.5
output = 4
""")
    cfg = tmp_path / "batchcost.toml"
    write_config(cfg, sim.url, tmp_path / "ledger.db", [])
    text = cfg.read_text().replace(f'pricing = "{REPO / "pricing.toml"}"', f'pricing = "{pricing}"')
    text = text.replace("[admin]", f'[upstream.together]\nkind = "openai"\nbase_url = "{sim.url}"\n'
                                   'api_key_env = "TEST_PROVIDER_KEY"\n[admin]')
    cfg.write_text(text)
    gw = gateway(cfg, dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER))
    try:
        root = client(gw, "SEARCH_KEY")
        tog = openai.OpenAI(base_url=gw.url + "/together/v1", api_key=KEYS["SEARCH_KEY"], max_retries=0)
        lines = [chat_line(f"t-{i}", "hi", "gpt-5-mini", max_completion_tokens=20) for i in range(4)]
        ids = {}
        for name, c in (("openai", root), ("together", tog)):
            f = c.files.create(file=(f"{name}.jsonl", jsonl(lines)), purpose="batch")
            b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
            ids[name] = (c, f, b)
        # Each upstream's objects are only under its own prefix.
        with pytest.raises(openai.NotFoundError):
            root.files.retrieve(ids["together"][1].id)
        assert [x.id for x in tog.batches.list()] == [ids["together"][2].id]
        costs = {}
        for name, (c, f, b) in ids.items():
            wait_ended(c, b.id)
            rec = wait_settled(gw, b.id)
            assert rec["provider"] == name
            costs[name] = Decimal(rec["cost_usd"])
            assert rec["models"][0]["tokens"]["output"] > 0
        # Same tokens model, together's rows cost more than OpenAI's here.
        assert costs["together"] > costs["openai"] > 0
        metrics = admin_get(f"{gw.url}/metrics", ADMIN)
        got = metric(metrics, "batchcost_cost_usd_total", {"provider": "together", "model": "gpt-5-mini"})
        assert abs(Decimal(repr(got)) - costs["together"]) < Decimal("0.000001")
    finally:
        gw.stop()
        sim.stop()
