"""The simulator's Gemini batch-mode surface, driven by the official google-genai SDK
(3.6.1 in the sdk-current venv) with `http_options={"base_url": .../gemini}` and nothing
patched: inline and file batches, both API versions, a long prompt, thinking tokens."""

import json

import pytest

from conftest import KEY, Simulator

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402


@pytest.fixture
def gsim(monkeypatch):
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    s = Simulator("--time-scale", "0", "--seed", "7", "--rate", "10", "--startup-secs", "60",
                  "--cancel-grace-secs", "1", "--validating-secs", "2")
    yield s
    s.stop()


def client(sim, version=None, key=KEY):
    opts = {"base_url": sim.base_url + "/gemini"}
    if version:
        opts["api_version"] = version
    return genai.Client(api_key=key, http_options=opts)


def inline(text, **config):
    item = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        item["config"] = config
    return item


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_an_inline_batch_runs_and_returns_responses_in_order(gsim, version):
    c = client(gsim, version)
    src = [inline(f"Question {i}", max_output_tokens=200, thinking_config={"thinking_budget": 64})
           for i in range(20)]
    src[3] = {**src[3], "metadata": {"key": "third"}}
    job = c.batches.create(model="gemini-2.5-flash", src=src, config={"display_name": "nightly"})
    assert job.name.startswith("batches/") and job.display_name == "nightly"
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.model == "models/gemini-2.5-flash"
    gsim.advance(2)
    assert c.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    # The SDK drops batchStats; the wire carries them as int64 strings, zeros omitted.
    v = version or "v1"
    raw = gsim.raw("GET", f"/gemini/{v}/{job.name}", headers={"x-goog-api-key": KEY})[2]
    assert raw["metadata"]["batchStats"] == {"requestCount": "20", "pendingRequestCount": "20"}
    assert raw["metadata"]["state"] == "BATCH_STATE_RUNNING" and "done" not in raw
    gsim.advance(100)
    job = c.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.end_time is not None
    responses = job.dest.inlined_responses
    assert len(responses) == 20 and responses[3].metadata == {"key": "third"}
    for r in responses:
        u = r.response.usage_metadata
        assert u.prompt_token_count > 0 and 1 <= u.candidates_token_count
        assert 0 < u.thoughts_token_count <= 64
        assert u.candidates_token_count + u.thoughts_token_count <= 200
        assert u.total_token_count == u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count
        assert u.cached_content_token_count is None
        assert r.response.candidates[0].content.parts[0].text
    raw = gsim.raw("GET", f"/gemini/{v}/{job.name}", headers={"x-goog-api-key": KEY})[2]
    assert raw["done"] is True
    assert raw["metadata"]["batchStats"] == {"requestCount": "20", "successfulRequestCount": "20"}
    assert raw["response"]["@type"].endswith("GenerateContentBatchOutput")
    assert raw["response"]["inlinedResponses"] == raw["metadata"]["output"]["inlinedResponses"]


def test_a_file_batch_uploads_resumably_and_downloads_results(gsim, tmp_path):
    c = client(gsim)
    long_prompt = "lorem ipsum dolor sit amet " * 60000  # well above 200,000 tokens
    lines = [{"key": f"k{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Item {i}"}]}],
                                         "generationConfig": {"maxOutputTokens": 100}}} for i in range(10)]
    lines.append({"key": "long", "request": {"contents": [{"role": "user", "parts": [{"text": long_prompt}]}]}})
    lines.append({"key": "bad", "request": {"generationConfig": {}}})
    path = tmp_path / "input.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    f = c.files.upload(file=str(path), config={"mime_type": "application/jsonl", "display_name": "input"})
    assert f.name.startswith("files/") and f.size_bytes == path.stat().st_size
    assert f.state == types.FileState.ACTIVE and f.display_name == "input"
    assert c.files.get(name=f.name).size_bytes == f.size_bytes
    job = c.batches.create(model="gemini-2.5-pro", src=f.name)
    gsim.advance(100)
    job = c.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest.file_name == "files/batch-" + job.name.split("/")[1]
    data = c.files.download(file=job.dest.file_name)
    got = {line["key"]: line for line in map(json.loads, data.decode().splitlines())}
    assert set(got) == {x["key"] for x in lines}
    assert got["bad"]["error"]["code"] == 3 and "response" not in got["bad"]
    long_usage = got["long"]["response"]["usageMetadata"]
    assert long_usage["promptTokenCount"] > 200_000
    assert long_usage["thoughtsTokenCount"] > 0  # 2.5 Pro thinks by default
    for key in (f"k{i}" for i in range(10)):
        u = got[key]["response"]["usageMetadata"]
        assert u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0) <= 100
    # The results file is a generated file: downloadable by the REST URL form too.
    gen = c.files.get(name=job.dest.file_name)
    assert gen.source == types.FileSource.GENERATED and gen.size_bytes == len(data)
    status, _, text = gsim.raw("GET", f"/gemini/download/v1beta/{job.dest.file_name}:download?alt=media&key={KEY}",
                               headers={"x-api-key": ""})
    assert status == 200 and text.count("\n") == len(lines)
    with pytest.raises(errors.ClientError):
        c.files.download(file=f.name)  # uploaded files cannot be downloaded


def test_implicit_caching_reads_a_shared_prefix(gsim):
    c = client(gsim)
    system = "You are a meticulous reviewer of batch jobs. " * 200
    src = [{"contents": [{"role": "user", "parts": [{"text": f"Case {i}"}]}],
            "config": {"system_instruction": system, "max_output_tokens": 50}} for i in range(3)]
    job = c.batches.create(model="gemini-2.5-flash", src=src)
    gsim.advance(100)
    rs = c.batches.get(name=job.name).dest.inlined_responses
    cached = [r.response.usage_metadata.cached_content_token_count or 0 for r in rs]
    assert cached[0] == 0 and cached[1] == cached[2] > 1024
    assert all(c_ < r.response.usage_metadata.prompt_token_count for c_, r in zip(cached, rs))


def test_list_cancel_delete_and_errors(gsim):
    c = client(gsim)
    names = [c.batches.create(model="gemini-2.5-flash", src=[inline("hi")]).name for _ in range(5)]
    listed = [j.name for j in c.batches.list(config={"page_size": 2})]
    assert listed == names[::-1]
    c.batches.cancel(name=names[0])
    gsim.advance(1)
    assert c.batches.get(name=names[0]).state == types.JobState.JOB_STATE_CANCELLED
    with pytest.raises(errors.ClientError) as e:
        c.batches.delete(name=names[1])  # still running: cancel first
    assert e.value.code == 400 and e.value.status == "FAILED_PRECONDITION"
    c.batches.delete(name=names[0])
    with pytest.raises(errors.ClientError) as e:
        c.batches.get(name=names[0])
    assert e.value.code == 404 and e.value.status == "NOT_FOUND"
    with pytest.raises(errors.ClientError) as e:
        c.batches.create(model="gemini-9-ultra", src=[inline("hi")])
    assert e.value.code == 404
    bad = client(gsim, key="wrong")
    with pytest.raises(errors.ClientError) as e:
        bad.batches.list()
    assert e.value.code == 400 and "API key not valid" in e.value.message
    status, _, body = gsim.raw("GET", "/gemini/v1beta/batches", headers={"x-api-key": ""})
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    status, _, body = gsim.raw("GET", f"/gemini/v1beta/batches?key={KEY}", headers={"x-api-key": ""})
    assert status == 200 and len(body["operations"]) == 4
    gsim.set_faults(http_529_rate=1.0, operations=["create"])
    with pytest.raises(errors.ServerError) as e:
        c.batches.create(model="gemini-2.5-flash", src=[inline("hi")])
    assert e.value.code == 503 and e.value.status == "UNAVAILABLE"
    gsim.set_faults()
