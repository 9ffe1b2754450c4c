"""Conformance of `batchcost simulate` with the official anthropic SDK: the whole batch
lifecycle, every documented field and status, both auth styles, the beta resource."""

import json
import time
from datetime import timedelta

import anthropic
import pytest

from conftest import KEY, SDK_MAJOR, Simulator, check_batch, parse_ts, request

pytestmark = pytest.mark.usefixtures("no_ambient_credentials")


@pytest.mark.parametrize("auth", ["default", "token", "header"])
def test_create_retrieve_results_with_each_auth_style(sim, auth):
    client = sim.client(auth)
    raw = client.messages.batches.with_raw_response.create(
        requests=[request("a", "Summarize: the cat sat on the mat."), request("b", "Translate: bonjour", max_tokens=8)]
    )
    assert raw.http_response.status_code == 200
    assert raw.http_response.headers["content-type"] == "application/json"
    assert raw.http_response.headers["request-id"].startswith("req_")
    created = raw.http_response.json()
    check_batch(created, sim, 2, "in_progress")
    batch = raw.parse()
    assert isinstance(batch, anthropic.types.messages.MessageBatch)
    assert batch.results_url is None

    # Still running one simulated second before the end (60 s startup + 2 requests at 10/s).
    sim.advance(60.1)
    check_batch(client.messages.batches.with_raw_response.retrieve(batch.id).http_response.json(), sim, 2, "in_progress")
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        list(client.messages.batches.results(batch.id))

    sim.advance(0.1)
    ended = client.messages.batches.with_raw_response.retrieve(batch.id).http_response.json()
    check_batch(ended, sim, 2, "ended")
    assert ended["request_counts"]["succeeded"] == 2
    assert ended["created_at"] == created["created_at"]

    results = {r.custom_id: r for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"a", "b"}
    for custom_id, max_tokens in (("a", 64), ("b", 8)):
        r = results[custom_id]
        assert r.result.type == "succeeded"
        m = r.result.message
        assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
        assert m.model == "claude-sonnet-4-6"
        assert m.content[0].type == "text" and m.content[0].text
        assert 1 <= m.usage.output_tokens <= max_tokens
        assert m.stop_reason == ("max_tokens" if m.usage.output_tokens == max_tokens else "end_turn")
        assert m.usage.input_tokens > 0
        assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0
        assert m.usage.cache_creation.ephemeral_5m_input_tokens == 0
        assert m.usage.cache_creation.ephemeral_1h_input_tokens == 0
        assert m.usage.service_tier == "batch"

    stats = sim.stats()
    expect = {"default": "auth_bearer" if SDK_MAJOR >= 2 else "auth_x_api_key",
              "token": "auth_bearer", "header": "auth_x_api_key"}[auth]
    other = "auth_x_api_key" if expect == "auth_bearer" else "auth_bearer"
    # The SDK's calls all used the expected header (our own control calls use x-api-key).
    assert stats[expect] >= 6
    if other == "auth_bearer":
        assert stats["auth_bearer"] == 0


def test_results_follow_the_absolute_results_url(sim):
    client = sim.client()
    batch = client.messages.batches.create(requests=[request(f"r-{i}") for i in range(25)])
    sim.advance(100)
    url = client.messages.batches.retrieve(batch.id).results_url
    assert url.startswith(sim.base_url + "/")
    status, headers, body = sim.raw("GET", url)
    assert status == 200
    assert headers["content-type"] == "application/x-jsonl"
    assert headers["content-disposition"] == f"attachment; filename*=utf-8''{batch.id}_results.jsonl"
    lines = body.split("\n")
    assert lines[-1] == "" and all(lines[:-1]), "one object per line, no blank line"
    ids = [json.loads(line)["custom_id"] for line in lines[:-1]]
    assert sorted(ids) == sorted(f"r-{i}" for i in range(25))
    assert ids != [f"r-{i}" for i in range(25)], "arbitrary order: clients must match on custom_id"


def test_list_auto_paginates_newest_first(sim):
    client = sim.client()
    ids = []
    for i in range(7):
        ids.append(client.messages.batches.create(requests=[request(f"x{i}")]).id)
        sim.advance(1)
    listed = [b.id for b in client.messages.batches.list(limit=3)]
    assert listed == list(reversed(ids))
    first = client.messages.batches.list(limit=3)
    assert first.has_more is True
    assert first.first_id == ids[6] and first.last_id == ids[4]
    assert [b.id for b in first.data] == [ids[6], ids[5], ids[4]]
    # Paging backwards from the oldest: before_id yields the newer neighbours.
    newer = client.messages.batches.list(limit=2, before_id=ids[0])
    assert [b.id for b in newer.data] == [ids[2], ids[1]]
    assert [b.id for b in client.messages.batches.list(before_id=ids[0], limit=2)] == [ids[2], ids[1], ids[4], ids[3], ids[6], ids[5]]
    status, _, page = sim.raw("GET", "/v1/messages/batches")
    assert status == 200 and set(page) == {"data", "has_more", "first_id", "last_id"}
    assert len(page["data"]) == 7 and page["has_more"] is False
    for limit in (0, 1001):
        with pytest.raises(anthropic.BadRequestError) as e:
            client.messages.batches.list(limit=limit)
        assert e.value.body["error"]["message"].startswith("limit:")


def test_cancel_goes_through_canceling_and_keeps_in_flight_successes(sim):
    client = sim.client()
    batch = client.messages.batches.create(requests=[request(f"c{i}") for i in range(50)])
    sim.advance(61)
    raw = client.messages.batches.with_raw_response.cancel(batch.id).http_response.json()
    check_batch(raw, sim, 50, "canceling")
    assert parse_ts(raw["cancel_initiated_at"]) - parse_ts(raw["created_at"]) == timedelta(seconds=61)
    sim.advance(1)
    ended = client.messages.batches.with_raw_response.retrieve(batch.id).http_response.json()
    check_batch(ended, sim, 50, "ended")
    # Requests completing by cancel + 1 s (62 s) were in flight and still succeed.
    assert ended["request_counts"] == {"processing": 0, "succeeded": 20, "errored": 0, "canceled": 30, "expired": 0}
    kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
    assert kinds.count("canceled") == 30 and kinds.count("succeeded") == 20
    again = client.messages.batches.cancel(batch.id)
    assert again.processing_status == "ended" and again.request_counts.canceled == 30


def test_delete_only_after_the_end(sim):
    client = sim.client()
    batch = client.messages.batches.create(requests=[request("d")])
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.batches.delete(batch.id)
    assert e.value.body["error"]["type"] == "invalid_request_error"
    sim.advance(61)
    raw = client.messages.batches.with_raw_response.delete(batch.id).http_response.json()
    assert raw == {"id": batch.id, "type": "message_batch_deleted"}
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.batches.retrieve(batch.id)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    assert e.value.body["request_id"] == e.value.response.headers["request-id"]


def test_the_beta_resource_uses_beta_true_and_works_the_same(sim):
    client = sim.client()
    batch = client.beta.messages.batches.create(requests=[request("beta-1"), request("beta-2")])
    assert batch.processing_status == "in_progress"
    sim.advance(61)
    assert client.beta.messages.batches.retrieve(batch.id).processing_status == "ended"
    assert [b.id for b in client.beta.messages.batches.list()] == [batch.id]
    assert sorted(r.custom_id for r in client.beta.messages.batches.results(batch.id)) == ["beta-1", "beta-2"]
    assert client.beta.messages.batches.cancel(batch.id).processing_status == "ended"
    assert client.beta.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_bad_params_surface_as_errored_results(sim):
    client = sim.client()
    batch = client.messages.batches.create(requests=[
        request("fine"),
        request("zero", max_tokens=0),
        {"custom_id": "unknown-model", "params": {"model": "claude-nonexistent-9", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "x"}]}},
        {"custom_id": "no-messages", "params": {"model": "claude-sonnet-4-6", "max_tokens": 5}},
    ])
    sim.advance(61)
    b = client.messages.batches.retrieve(batch.id)
    assert (b.request_counts.succeeded, b.request_counts.errored) == (1, 3)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["fine"].type == "succeeded"
    assert results["zero"].error.error.type == "invalid_request_error"
    assert results["zero"].error.error.message.startswith("max_tokens:")
    assert results["unknown-model"].error.error.type == "not_found_error"
    assert results["no-messages"].error.error.message == "messages: Field required"


def test_expiry_and_archival_in_simulated_time():
    sim = Simulator("--time-scale", "0", "--rate", "0.000277777777777778", "--startup-secs", "0")
    try:
        client = sim.client()
        batch = client.messages.batches.create(requests=[request(f"e{i}") for i in range(30)])
        sim.advance(24 * 3600)
        raw = client.messages.batches.with_raw_response.retrieve(batch.id).http_response.json()
        check_batch(raw, sim, 30, "ended")
        assert raw["ended_at"] == raw["expires_at"]
        assert raw["request_counts"]["expired"] == 6 and raw["request_counts"]["succeeded"] == 24
        assert sum(r.result.type == "expired" for r in client.messages.batches.results(batch.id)) == 6
        sim.advance(28 * 86400)
        raw = client.messages.batches.with_raw_response.retrieve(batch.id).http_response.json()
        check_batch(raw, sim, 30, "ended")
        assert raw["archived_at"] is not None
        with pytest.raises(anthropic.NotFoundError):
            list(client.messages.batches.results(batch.id))
    finally:
        sim.stop()


def test_time_scale_runs_a_batch_to_the_end_without_manual_steps():
    # 3600x: the 60 s startup passes in ~17 ms of real time.
    sim = Simulator("--time-scale", "3600")
    try:
        client = sim.client()
        batch = client.messages.batches.create(requests=[request("t1"), request("t2")])
        deadline = time.monotonic() + 30
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            assert time.monotonic() < deadline, "batch did not end"
            time.sleep(0.02)
        assert len(list(client.messages.batches.results(batch.id))) == 2
    finally:
        sim.stop()


def test_count_tokens(sim):
    client = sim.client()
    r = client.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hello world"}])
    assert r.input_tokens == 8
    longer = client.messages.count_tokens(
        model="claude-sonnet-4-6", system="You are terse.", messages=[{"role": "user", "content": "Hello world"}])
    assert longer.input_tokens > r.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nonexistent-9", messages=[{"role": "user", "content": "x"}])


def test_wrong_key_is_401_in_the_envelope(sim):
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="not-" + KEY, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        client.messages.batches.list()
    assert e.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert KEY not in json.dumps(e.value.body)
