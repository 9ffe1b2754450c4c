"""Invalid creates: the documented status and the exact error envelope, through the SDK
where the SDK can send the body, raw HTTP where it cannot (malformed JSON)."""

import anthropic
import pytest

from conftest import request

pytestmark = pytest.mark.usefixtures("no_ambient_credentials")


def assert_envelope(err: anthropic.APIStatusError, status: int, error_type: str) -> str:
    assert err.status_code == status
    body = err.body
    assert set(body) == {"type", "error", "request_id"}
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == err.response.headers["request-id"]
    assert body["request_id"].startswith("req_")
    return body["error"]["message"]


@pytest.mark.parametrize(
    "requests, message",
    [
        ([], "requests: List should have at least 1 item after validation, not 0"),
        ([request("a"), request("b"), request("a")], "requests.2.custom_id: Duplicate custom_id 'a'"),
        ([request("has.dot")], "requests.0.custom_id: String should match pattern"),
        ([request("x" * 65)], "requests.0.custom_id: String should match pattern"),
        ([request("")], "requests.0.custom_id: String should match pattern"),
        ([{"custom_id": 12, "params": request("a")["params"]}], "requests.0.custom_id: Input should be a valid string"),
        ([{"custom_id": "a", "params": "not an object"}], "requests.0.params: Input should be a valid dictionary"),
        ([{"custom_id": "a"}], "requests.0.params: Field required"),
        (["just a string"], "Malformed JSON body: invalid type: string \"just a string\", expected requests.0 to be an object"),
    ],
)
def test_invalid_creates_are_400_naming_index_and_field(sim, requests, message):
    with pytest.raises(anthropic.BadRequestError) as e:
        sim.client().messages.batches.create(requests=requests)
    assert assert_envelope(e.value, 400, "invalid_request_error").startswith(message)
    assert sim.stats()["creates_accepted"] == 0


def test_more_than_100000_requests_are_refused(sim):
    params = request("x")["params"]
    reqs = [{"custom_id": f"r{i}", "params": params} for i in range(100_001)]
    with pytest.raises(anthropic.BadRequestError) as e:
        sim.client(timeout=300).messages.batches.create(requests=reqs)
    message = assert_envelope(e.value, 400, "invalid_request_error")
    assert message == "requests: List should have at most 100000 items after validation, not 100001"


def test_a_257_mb_body_is_413_request_too_large(sim):
    # 257 requests of 1 MiB of text each: the SDK sends one 257 MB body.
    text = "a" * (1024 * 1024)
    reqs = [request(f"big-{i}", text) for i in range(257)]
    with pytest.raises(anthropic.APIStatusError) as e:
        sim.client(timeout=300).messages.batches.create(requests=reqs)
    message = assert_envelope(e.value, 413, "request_too_large")
    assert "256 MB" in message
    assert sim.stats()["creates_accepted"] == 0


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"requests": [', "Malformed JSON body: EOF while parsing"),
        (b"requests=1", "Malformed JSON body: expected value"),
        (b'{"requests": {"a": 1}}', "Malformed JSON body: invalid type: map, expected `requests` to be a list"),
        (b'[{"requests": []}]', "Malformed JSON body: invalid type: sequence, expected the body to be an object"),
        (b'{"requests": [], "x": 1}', "requests: List should have at least 1 item"),
        (b'{"x": 1, "requests": []}', "x: Extra inputs are not permitted"),
        (b"{}", "requests: Field required"),
    ],
)
def test_malformed_json_and_wrong_shapes_are_400(sim, data, message):
    status, headers, body = sim.raw("POST", "/v1/messages/batches", data=data)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(message), body
    assert body["request_id"] == headers["request-id"]


def test_missing_version_header_and_unknown_routes(sim):
    status, _, body = sim.raw("GET", "/v1/messages/batches", headers={"anthropic-version": ""})
    assert status == 400 and body["error"]["message"].startswith("anthropic-version")
    status, _, body = sim.raw("GET", "/v1/messages/batches/msgbatch_missing")
    assert status == 404 and body["error"]["type"] == "not_found_error"
