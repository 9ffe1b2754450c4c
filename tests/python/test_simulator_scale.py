"""A full-size batch through the SDK, and seeded determinism of the results bytes."""

import pytest

from conftest import Simulator, request

pytestmark = pytest.mark.usefixtures("no_ambient_credentials")


def test_a_100000_request_batch_is_accepted_ends_and_streams_to_the_sdk(sim):
    client = sim.client(timeout=600)
    params = request("x")["params"]
    batch = client.messages.batches.create(requests=[{"custom_id": f"row-{i:06d}", "params": params} for i in range(100_000)])
    assert batch.request_counts.processing == 100_000
    sim.advance(60 + 100_000 / 10)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 100_000
    seen = set()
    for r in client.messages.batches.results(batch.id):
        assert r.result.type == "succeeded"
        seen.add(r.custom_id)
    assert len(seen) == 100_000
    assert sim.stats()["result_lines_streamed"] == 100_000


def results_bytes(seed: str) -> str:
    sim = Simulator("--time-scale", "0", "--seed", seed, "--errored-fraction", "0.2")
    try:
        client = sim.client()
        system = [{"type": "text", "text": "Shared context for every request. " * 300,
                   "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
        batch = client.messages.batches.create(
            requests=[request(f"d{i}", f"Question {i}?", max_tokens=100 + i, system=system) for i in range(200)])
        sim.advance(3600)
        status, _, body = sim.raw("GET", f"/v1/messages/batches/{batch.id}/results")
        assert status == 200
        return body
    finally:
        sim.stop()


def test_the_same_seed_gives_byte_identical_results():
    a, b, c = results_bytes("11"), results_bytes("11"), results_bytes("12")
    assert a == b
    assert a != c
    assert '"cache_read_input_tokens":0' in a and '"ephemeral_1h_input_tokens":0' in a
