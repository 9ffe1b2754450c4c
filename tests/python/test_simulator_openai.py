"""The simulator's OpenAI Files + Batches surface, driven by the official `openai` SDK
(3.57.0 in the sdk-current venv) with `base_url` at the simulator and nothing patched."""

import json

import pytest

from conftest import KEY, Simulator

openai = pytest.importorskip("openai")

BATCH_FIELDS = {"id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window",
                "status", "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at",
                "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
                "request_counts", "usage", "metadata"}


@pytest.fixture
def osim(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    s = Simulator("--time-scale", "0", "--seed", "7", "--rate", "10", "--startup-secs", "60",
                  "--cancel-grace-secs", "1", "--validating-secs", "2", "--finalizing-secs", "5")
    yield s
    s.stop()


def client(sim, **kw):
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key=KEY, **kw)


def chat_line(cid, text="Hello there", model="gpt-4o-mini", **body):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines):
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def upload(c, lines, name="input.jsonl"):
    return c.files.create(file=(name, jsonl(lines)), purpose="batch")


def lines_of(c, file_id):
    text = c.files.content(file_id).text
    assert text.endswith("\n") and "\n\n" not in text
    return [json.loads(line) for line in text.splitlines()]


def test_a_chat_batch_runs_through_every_status_and_writes_both_files(osim):
    c = client(osim)
    lines = [chat_line(f"r-{i}", max_completion_tokens=40) for i in range(30)]
    lines[4] = {**lines[4], "body": {"model": "gpt-4o-mini"}}  # no messages: a 400 line
    f = upload(c, lines)
    assert (f.object, f.purpose, f.filename, f.bytes) == ("file", "batch", "input.jsonl", len(jsonl(lines)))
    assert f.id.startswith("file-") and f.expires_at == f.created_at + 30 * 86400

    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                         completion_window="24h", metadata={"job": "nightly"})
    assert b.status == "validating" and b.id.startswith("batch_")
    assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (30, 0, 0)
    assert b.metadata == {"job": "nightly"} and b.model == "gpt-4o-mini"
    assert b.output_file_id is None and b.in_progress_at is None
    raw = osim.raw("GET", f"/v1/batches/{b.id}", headers={"authorization": f"Bearer {KEY}"})[2]
    assert set(raw) == BATCH_FIELDS, raw

    osim.advance(2)
    b = c.batches.retrieve(b.id)
    assert b.status == "in_progress" and b.in_progress_at == b.created_at + 2
    osim.advance(61)  # 30 requests at 10/s after 60 s: all done at +63 s
    b = c.batches.retrieve(b.id)
    assert b.status == "finalizing" and b.finalizing_at == b.created_at + 63
    assert b.output_file_id is None
    osim.advance(5)
    b = c.batches.retrieve(b.id)
    assert b.status == "completed" and b.completed_at == b.created_at + 68
    assert (b.request_counts.completed, b.request_counts.failed) == (29, 1)

    out = lines_of(c, b.output_file_id)
    err = lines_of(c, b.error_file_id)
    assert sorted(line["custom_id"] for line in out + err) == sorted(f"r-{i}" for i in range(30))
    assert [line["custom_id"] for line in out] != [f"r-{i}" for i in range(30) if i != 4]
    total_in = total_out = 0
    for line in out:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        resp = line["response"]
        assert resp["status_code"] == 200 and resp["request_id"].startswith("req_")
        body = resp["body"]
        assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
        u = body["usage"]
        assert 1 <= u["completion_tokens"] <= 40 and u["prompt_tokens"] > 0
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        assert u["prompt_tokens_details"]["cached_tokens"] == 0
        assert u["completion_tokens_details"]["reasoning_tokens"] == 0
        finish = body["choices"][0]["finish_reason"]
        assert finish == ("length" if u["completion_tokens"] == 40 else "stop")
        total_in += u["prompt_tokens"]
        total_out += u["completion_tokens"]
    assert b.usage.input_tokens == total_in and b.usage.output_tokens == total_out
    assert b.usage.total_tokens == total_in + total_out
    [bad] = err
    assert bad["custom_id"] == "r-4" and bad["error"] is None
    assert bad["response"]["status_code"] == 400
    assert bad["response"]["body"]["error"]["param"] == "messages"

    of = c.files.retrieve(b.output_file_id)
    assert of.purpose == "batch_output" and of.bytes == len(c.files.content(b.output_file_id).content)
    ids = [x.id for x in c.files.list()]
    assert f.id in ids and b.output_file_id in ids and b.error_file_id in ids
    assert [x.id for x in c.files.list(purpose="batch")] == [f.id]
    assert c.files.delete(b.error_file_id).deleted
    with pytest.raises(openai.NotFoundError):
        c.files.content(b.error_file_id)


def test_reasoning_and_prompt_caching_in_the_responses_api(osim):
    c = client(osim)
    prefix = "You are a careful reviewer. " * 400  # well above 1,024 tokens
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/responses",
              "body": {"model": "gpt-5-mini", "instructions": prefix, "input": f"Question {i}",
                       "max_output_tokens": 300}} for i in range(3)]
    f = upload(c, lines)
    first = c.batches.create(input_file_id=f.id, endpoint="/v1/responses", completion_window="24h")
    osim.advance(100)
    second = c.batches.create(input_file_id=f.id, endpoint="/v1/responses", completion_window="24h")
    osim.advance(100)
    first, second = c.batches.retrieve(first.id), c.batches.retrieve(second.id)
    assert first.status == second.status == "completed"
    cached = []
    for b in (first, second):
        for line in lines_of(c, b.output_file_id):
            body = line["response"]["body"]
            assert body["object"] == "response" and body["status"] in ("completed", "incomplete")
            u = body["usage"]
            r = u["output_tokens_details"]["reasoning_tokens"]
            assert 0 < r <= u["output_tokens"] <= 300
            c_ = u["input_tokens_details"]["cached_tokens"]
            assert c_ <= u["input_tokens"]
            assert c_ == 0 or (c_ >= 1024 and (c_ - 1024) % 128 == 0)
            cached.append(c_)
        assert b.usage.output_tokens_details.reasoning_tokens > 0
    # The first request of the first batch writes the cache; later ones read it.
    assert cached.count(0) == 1 and max(cached) >= 1024
    assert second.usage.input_tokens_details.cached_tokens >= 3 * 1024


def test_embeddings_report_prompt_tokens_only(osim):
    c = client(osim)
    lines = [{"custom_id": "e1", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"]}}]
    b = c.batches.create(input_file_id=upload(c, lines).id, endpoint="/v1/embeddings", completion_window="24h")
    osim.advance(100)
    b = c.batches.retrieve(b.id)
    [line] = lines_of(c, b.output_file_id)
    body = line["response"]["body"]
    assert len(body["data"]) == 2 and body["data"][1]["index"] == 1
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert b.usage.output_tokens == 0


def test_cancel_keeps_finished_requests_and_cancels_the_rest(osim):
    c = client(osim)
    f = upload(c, [chat_line(f"r{i}") for i in range(100)])
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    osim.advance(62)
    b = c.batches.cancel(b.id)
    assert b.status == "cancelling" and b.cancelling_at == b.created_at + 62
    osim.advance(1)
    b = c.batches.retrieve(b.id)
    assert b.status == "cancelled" and b.cancelled_at == b.created_at + 63
    out, err = lines_of(c, b.output_file_id), lines_of(c, b.error_file_id)
    assert len(out) == b.request_counts.completed == 30
    assert len(err) == 70 and {line["error"]["code"] for line in err} == {"batch_cancelled"}
    assert all(line["response"] is None for line in err)


def test_unfinished_requests_expire_after_24_hours():
    s = Simulator("--time-scale", "0", "--rate", "0.001", "--startup-secs", "0")
    try:
        c = client(s)
        b = c.batches.create(input_file_id=upload(c, [chat_line(f"r{i}") for i in range(200)]).id,
                             endpoint="/v1/chat/completions", completion_window="24h")
        s.advance(86400)
        b = c.batches.retrieve(b.id)
        assert b.status == "expired" and b.expired_at == b.expires_at == b.created_at + 86400
        err = lines_of(c, b.error_file_id)
        assert {line["error"]["code"] for line in err} == {"batch_expired"}
        assert len(err) + b.request_counts.completed == 200
    finally:
        s.stop()


def test_bad_input_files_are_refused_naming_the_line_and_field(osim):
    c = client(osim)
    cases = {
        "custom_id: 'a' is a duplicate (first used on line 1)": [chat_line("a"), chat_line("a")],
        "line 2: url:": [chat_line("a"), {**chat_line("b"), "url": "/v1/responses"}],
        "line 1: method": [{**chat_line("a"), "method": "GET"}],
        "line 2: body.model": [chat_line("a"), chat_line("b", model="gpt-4o")],
    }
    for needle, lines in cases.items():
        with pytest.raises(openai.BadRequestError) as e:
            upload(c, lines)
        assert needle in e.value.body["message"], e.value.body
        assert e.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError, match="Must be .jsonl"):
        upload(c, [chat_line("a")], name="input.json")
    f = upload(c, [chat_line("a")])
    with pytest.raises(openai.BadRequestError, match="does not match"):
        c.batches.create(input_file_id=f.id, endpoint="/v1/responses", completion_window="24h")
    with pytest.raises(openai.BadRequestError) as e:
        c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="48h")
    assert e.value.body["param"] == "completion_window"
    with pytest.raises(openai.NotFoundError):
        c.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        c.batches.retrieve("batch_nope")
    assert osim.stats()["creates_accepted"] == 0


def test_auth_pagination_and_faults_as_the_sdk_sees_them(osim):
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=osim.base_url + "/v1", api_key="wrong", max_retries=0).batches.list()
    assert e.value.code == "invalid_api_key" and "wrong" not in str(e.value.body)
    c = client(osim)
    f = upload(c, [chat_line("a")])
    made = [c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                             completion_window="24h").id for _ in range(5)]
    page = c.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2] and page.has_more
    assert [b.id for b in c.batches.list(limit=2)] == made[::-1]  # auto-pagination via after=
    resp = c.batches.with_raw_response.retrieve(made[0])
    assert resp.headers["x-request-id"].startswith("req_")

    osim.set_faults(http_529_rate=1.0, retry_after_secs=0, operations=["create"])
    with pytest.raises(openai.InternalServerError) as e:
        c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert e.value.status_code == 503 and e.value.body["type"] == "server_error"
    osim.set_faults(http_429_rate=1.0, retry_after_secs=0, operations=["upload"])
    with pytest.raises(openai.RateLimitError):
        upload(c, [chat_line("b")])
    osim.set_faults()
    assert osim.stats()["faults"]["http_529"] == 1 and osim.stats()["faults"]["http_429"] == 1


def test_item_failure_knobs_fail_a_share_as_overloaded_and_as_invalid():
    s = Simulator("--time-scale", "0", "--overloaded-fraction", "0.3", "--invalid-fraction", "0.2")
    try:
        c = client(s)
        f = upload(c, [chat_line(f"r{i}") for i in range(400)])
        b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        s.advance(3600)
        b = c.batches.retrieve(b.id)
        statuses = [line["response"]["status_code"] for line in lines_of(c, b.error_file_id)]
        assert 80 <= statuses.count(503) <= 160 and 30 <= statuses.count(400) <= 100
        assert b.request_counts.failed == len(statuses)
        assert b.request_counts.completed + b.request_counts.failed == 400
    finally:
        s.stop()
