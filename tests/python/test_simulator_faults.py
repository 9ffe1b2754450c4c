"""Faults as the SDK sees them: status, envelope and retry hints; faults never change
batch state, except the documented lost create answer; a cut results stream."""

import anthropic
import pytest

from conftest import request

pytestmark = pytest.mark.usefixtures("no_ambient_credentials")


@pytest.mark.parametrize(
    "faults, exc, status, error_type",
    [
        ({"http_500_rate": 1.0}, anthropic.InternalServerError, 500, "api_error"),
        ({"http_529_rate": 1.0, "retry_after_secs": 9}, anthropic.APIStatusError, 529, "overloaded_error"),
        ({"http_429_rate": 1.0, "retry_after_secs": 4}, anthropic.RateLimitError, 429, "rate_limit_error"),
    ],
)
def test_injected_errors_reach_the_sdk_and_create_nothing(sim, faults, exc, status, error_type):
    client = sim.client()
    sim.set_faults(**faults)
    for call in (lambda: client.messages.batches.create(requests=[request("a")]),
                 lambda: client.messages.batches.list(),
                 lambda: client.messages.batches.retrieve("msgbatch_any")):
        with pytest.raises(exc) as e:
            call()
        assert e.value.status_code == status
        assert e.value.body["error"]["type"] == error_type
        assert e.value.body["request_id"] == e.value.response.headers["request-id"]
        if "retry_after_secs" in faults:
            assert e.value.response.headers["retry-after"] == str(faults["retry_after_secs"])
    sim.set_faults()
    assert list(client.messages.batches.list()) == []
    stats = sim.stats()
    assert stats["create_attempts"] == 1 and stats["creates_accepted"] == 0
    assert sum(stats["faults"].values()) == 3


def test_the_sdk_retries_through_overload(sim):
    sim.set_faults(http_529_rate=0.5, retry_after_secs=1, operations=["create"])
    client = sim.client(max_retries=8)
    batch = client.messages.batches.create(requests=[request("r")])
    sim.set_faults()
    assert [b.id for b in client.messages.batches.list()] == [batch.id], "retries made exactly one batch"
    stats = sim.stats()
    assert stats["creates_accepted"] == 1
    assert stats["create_attempts"] == 1 + stats["faults"]["http_529"]


def test_a_lost_create_answer_makes_a_retrying_client_submit_twice(sim):
    sim.set_faults(create_lost_rate=1.0)
    client = sim.client(max_retries=1)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(requests=[request("dup")])
    sim.set_faults()
    # Both attempts were accepted upstream: the hazard a gateway must handle.
    assert len(list(client.messages.batches.list())) == 2
    assert sim.stats()["faults"]["create_lost"] == 2


def test_a_cut_results_stream_breaks_the_sdk_iteration_mid_file(sim):
    client = sim.client()
    batch = client.messages.batches.create(requests=[request(f"c{i}") for i in range(3000)])
    sim.advance(400)
    sim.set_faults(cut_results_rate=1.0)
    seen = 0
    with pytest.raises(Exception) as e:
        for _ in client.messages.batches.results(batch.id):
            seen += 1
    assert "RemoteProtocolError" in type(e.value).__name__ or "incomplete" in str(e.value), repr(e.value)
    assert seen < 3000
    sim.set_faults()
    assert len(list(client.messages.batches.results(batch.id))) == 3000


def test_slow_answers_trip_client_timeouts(sim):
    sim.set_faults(slow_rate=1.0, slow_ms=1500, operations=["list"])
    with pytest.raises(anthropic.APITimeoutError):
        sim.client(timeout=0.3).messages.batches.list()
    assert sim.stats()["faults"]["slow"] == 1
