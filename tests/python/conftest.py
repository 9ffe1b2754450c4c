"""Shared fixtures: the real `batchcost simulate` binary, started per test on port 0.

Environment (set by scripts/test): BATCHCOST_BIN = the built binary, BATCHCOST_SDK = the
venv name (sdk-current: anthropic 2.x, Bearer auth; sdk-1x: anthropic 1.x, x-api-key).
"""

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anthropic
import pytest

KEY = "sim-test-key-3f9c2a"
REPO = Path(os.environ.get("BATCHCOST_REPO", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("BATCHCOST_BIN", str(REPO / "target" / "debug" / "batchcost"))
SDK = os.environ.get("BATCHCOST_SDK", "sdk-current")
SDK_MAJOR = int(anthropic.__version__.split(".")[0])

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Simulator:
    """One `batchcost simulate` process and a small control client for `/_sim/*`."""

    def __init__(self, *args: str):
        env = {k: v for k, v in os.environ.items() if k != "BATCHCOST_SIMULATOR_KEY"}
        self.proc = subprocess.Popen(
            [BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", KEY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://\S+)\n", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"simulator did not start: {line!r} {self.proc.stderr.read()}")
        self.base_url = match.group(1)

    def raw(self, method, path, body=None, headers=None, data=None):
        """(status, headers, parsed JSON or text) of a request with the key as x-api-key."""
        hdrs = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
        hdrs.update(headers or {})
        if data is None and body is not None:
            data = json.dumps(body).encode()
        url = path if path.startswith("http") else self.base_url + path
        req = urllib.request.Request(url, method=method, data=data, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, rh, payload = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, rh, payload = e.code, e.headers, e.read()
        try:
            return status, rh, json.loads(payload)
        except ValueError:
            return status, rh, payload.decode()

    def ctl(self, method, path, body=None):
        status, _, payload = self.raw(method, path, body)
        assert status == 200, payload
        return payload

    def advance(self, seconds: float):
        return self.ctl("POST", "/_sim/advance", {"seconds": seconds})

    def stats(self):
        return self.ctl("GET", "/_sim/stats")

    def set_faults(self, **faults):
        return self.ctl("PUT", "/_sim/faults", faults)

    def client(self, auth: str = "default", **kw) -> anthropic.Anthropic:
        """An SDK client; `auth` picks how the key travels:
        default = `api_key=` (2.x sends Bearer, 1.x sends x-api-key),
        token = `auth_token=` (Bearer in both), header = an explicit X-Api-Key header."""
        kw.setdefault("max_retries", 0)
        if auth == "default":
            return anthropic.Anthropic(base_url=self.base_url, api_key=KEY, **kw)
        if auth == "token":
            return anthropic.Anthropic(base_url=self.base_url, auth_token=KEY, **kw)
        if auth == "header":
            return anthropic.Anthropic(base_url=self.base_url, api_key=None, default_headers={"X-Api-Key": KEY}, **kw)
        raise ValueError(auth)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def no_ambient_credentials(monkeypatch):
    """The SDK must use only the credentials a test gives it."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim(no_ambient_credentials):
    """A simulator whose time stands still until the test advances it (seed 7, 10 req/s,
    60 s startup, 1 s cancel grace)."""
    s = Simulator("--time-scale", "0", "--seed", "7", "--rate", "10", "--startup-secs", "60", "--cancel-grace-secs", "1")
    yield s
    s.stop()


def request(custom_id: str, text: str = "Hello there", max_tokens: int = 64, **params):
    return {
        "custom_id": custom_id,
        "params": {"model": "claude-sonnet-4-6", "max_tokens": max_tokens,
                   "messages": [{"role": "user", "content": text}], **params},
    }


def parse_ts(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


BATCH_FIELDS = {"id", "type", "processing_status", "request_counts", "ended_at", "created_at",
                "expires_at", "archived_at", "cancel_initiated_at", "results_url"}


def check_batch(raw: dict, sim: Simulator, n: int, status: str):
    """Every documented field of a message_batch object, as JSON on the wire."""
    assert set(raw) == BATCH_FIELDS, raw
    assert raw["id"].startswith("msgbatch_") and re.fullmatch(r"msgbatch_[A-Za-z0-9]+", raw["id"])
    assert raw["type"] == "message_batch"
    assert raw["processing_status"] == status
    counts = raw["request_counts"]
    assert set(counts) == {"processing", "succeeded", "errored", "canceled", "expired"}
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    assert sum(counts.values()) == n
    created = parse_ts(raw["created_at"])
    assert parse_ts(raw["expires_at"]) - created == timedelta(hours=24)
    if status == "ended":
        assert counts["processing"] == 0
        assert parse_ts(raw["ended_at"]) >= created
        assert raw["results_url"] == f"{sim.base_url}/v1/messages/batches/{raw['id']}/results"
    else:
        assert counts == {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        assert raw["ended_at"] is None and raw["results_url"] is None
    if raw["cancel_initiated_at"] is not None:
        assert parse_ts(raw["cancel_initiated_at"]) >= created
    if raw["archived_at"] is not None:
        assert parse_ts(raw["archived_at"]) - created == timedelta(days=29)


def pytest_sessionfinish(session, exitstatus):
    """Process logs go to one temporary folder: deleted after a passing run, so test runs
    leave nothing in the system temp folder; kept (and named) when something failed."""
    import gateway_stack

    gateway_stack.clean_logs(passed=exitstatus == 0)
