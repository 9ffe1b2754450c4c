"""Secrets never leak: real traffic with distinctive key values (creates, retrieves, lists,
results, cancels, deletes, bad bodies, 401s with near-miss keys, the admin API, /metrics),
both binaries logging at debug level, then a byte search of the gateway's and simulator's
logs, every response body and header, /metrics, and the SQLite ledger (+ -wal, -shm) for
every provider key, project key and admin token. Also: /api/* and /metrics refuse without
the admin token or with a wrong one."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import anthropic

from gateway_stack import BIN, Proc, gateway, write_config

PROVIDER = "sk-ant-PROVIDER-7f3a9c1e5b2d4680-secret"
KEYS = {"ALPHA_KEY": "sk-proj-ALPHA-2b8e6d4f0a1c3957", "BETA_KEY": "sk-proj-BETA-9d1f3b5a7c2e4068"}
ADMIN = "adm-TOKEN-5c7e9a1b3d2f4860-xyz"
METRICS_TOKEN = "met-TOKEN-8a2c4e6f1b3d5079-scrape"
READ_TOKEN = "rd-TOKEN-3f5b7d9a2c4e6081-finance"
HOOK_PATH = "/hooks/whk-PATH-6e8a0c2e4b6d8f13-slack"
HOOK_SECRET = "whsec-SIGN-1d3f5b7a9c2e4068-hmac"
SECRETS = [PROVIDER, ADMIN, *KEYS.values(), METRICS_TOKEN, READ_TOKEN, HOOK_PATH, HOOK_SECRET]


def webhook_receiver():
    """A local webhook that records what it is sent; returns (url, received list, server)."""
    import http.server
    import threading
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.path, dict(self.headers), self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}{HOOK_PATH}", got, srv


def call(url, method="GET", headers=None, body=None):
    """(status, header text, body bytes), whatever the status."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, str(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, str(e.headers), e.read()


def requests(tag, n):
    return [{"custom_id": f"{tag}-{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": f"Ticket {i}: printer on fire."}]}} for i in range(n)]


def test_no_secret_appears_in_logs_responses_metrics_or_the_ledger(tmp_path):
    sim = Proc([BIN, "simulate", "--listen", "127.0.0.1:0", "--api-key", PROVIDER,
                "--time-scale", "3600", "--seed", "5"], env={"RUST_LOG": "debug"})
    db = tmp_path / "ledger.db"
    cfg = tmp_path / "batchcost.toml"
    write_config(cfg, sim.url, {"alpha": ["ALPHA_KEY"], "beta": ["BETA_KEY"]},
                 [{"name": "alpha-daily", "project": "alpha", "period": "day", "limit_usd": 50.0,
                   "alert_at": [0.000001]}], db)
    # Scoped tokens and a signed webhook: their values are secrets too.
    hook_url, hook_got, hook_srv = webhook_receiver()
    text = cfg.read_text().replace(
        'token_env = "TEST_ADMIN_TOKEN"',
        'token_env = "TEST_ADMIN_TOKEN"\nmetrics_token_env = "TEST_METRICS_TOKEN"\nread_token_env = "TEST_READ_TOKEN"')
    text += '[[notify]]\nurl_env = "TEST_HOOK_URL"\nformat = "json"\nsecret_env = "TEST_HOOK_SECRET"\n'
    cfg.write_text(text)
    env = dict(KEYS, TEST_ADMIN_TOKEN=ADMIN, TEST_PROVIDER_KEY=PROVIDER, RUST_LOG="debug",
               TEST_METRICS_TOKEN=METRICS_TOKEN, TEST_READ_TOKEN=READ_TOKEN,
               TEST_HOOK_URL=hook_url, TEST_HOOK_SECRET=HOOK_SECRET)
    gw = gateway(cfg, env)
    seen = []  # every response: status line, headers and body

    def record(resp):
        status, headers, body = resp
        seen.append(f"{status}\n{headers}\n".encode() + body)
        return status, body

    try:
        url = gw.url
        alpha = anthropic.Anthropic(base_url=url, api_key=KEYS["ALPHA_KEY"], max_retries=0)
        beta = anthropic.Anthropic(base_url=url, auth_token=KEYS["BETA_KEY"], api_key=None, max_retries=0)
        a = alpha.messages.batches.create(requests=requests("a", 5))
        b = beta.messages.batches.create(requests=requests("b", 3))
        seen.append(a.model_dump_json().encode())
        seen.append(b.model_dump_json().encode())
        c = beta.messages.batches.cancel(b.id)
        seen.append(c.model_dump_json().encode())
        deadline = time.monotonic() + 60
        while alpha.messages.batches.retrieve(a.id).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for line in alpha.messages.batches.results(a.id):
            seen.append(line.model_dump_json().encode())
        seen.append(json.dumps([x.model_dump() for x in alpha.messages.batches.list(limit=5)], default=str).encode())

        ak = {"x-api-key": KEYS["ALPHA_KEY"], "anthropic-version": "2023-06-01", "content-type": "application/json"}
        status, _ = record(call(f"{url}/v1/messages/batches/{a.id}", headers=ak))
        assert status == 200
        record(call(f"{url}/v1/messages/batches/{a.id}/results", headers=ak))
        record(call(f"{url}/v1/messages/batches?limit=3", headers=ak))
        # Errors of every kind, with keys that contain the real ones (echo detectors).
        assert record(call(f"{url}/v1/messages/batches", "POST", ak, b"{not json"))[0] == 400
        assert record(call(f"{url}/v1/messages/batches", "POST", ak, {"requests": []}))[0] == 400
        for wrong in [KEYS["ALPHA_KEY"] + "x", "x" + KEYS["BETA_KEY"], ADMIN, PROVIDER, KEYS["ALPHA_KEY"][:-1]]:
            h = {"x-api-key": wrong, "anthropic-version": "2023-06-01"}
            assert record(call(f"{url}/v1/messages/batches", "POST", h, {"requests": requests("w", 1)}))[0] == 401
            assert record(call(f"{url}/v1/messages/batches/{a.id}", headers={"authorization": f"Bearer {wrong}"}))[0] == 401
        assert record(call(f"{url}/v1/messages/batches/{a.id}", headers={
            "x-api-key": KEYS["BETA_KEY"], "anthropic-version": "2023-06-01"}))[0] == 404
        # The admin API: refused without the token or with a wrong one, served with it.
        for path in ["/api/budgets", f"/api/batches/{a.id}", "/metrics"]:
            assert record(call(f"{url}{path}"))[0] == 401, path
            for wrong in [ADMIN + "x", KEYS["ALPHA_KEY"], PROVIDER, ADMIN[:-1]]:
                assert record(call(f"{url}{path}", headers={"authorization": f"Bearer {wrong}"}))[0] == 401, path
            assert record(call(f"{url}{path}", headers={"x-api-key": ADMIN}))[0] == 401, path
        est = {"requests": requests("e", 2)}
        assert record(call(f"{url}/api/estimate", "POST", {"content-type": "application/json"}, est))[0] == 401
        admin = {"authorization": f"Bearer {ADMIN}"}
        assert record(call(f"{url}/api/estimate", "POST", admin, est))[0] == 200
        assert record(call(f"{url}/api/budgets", headers=admin))[0] == 200
        assert record(call(f"{url}/api/batches/{a.id}", headers=admin))[0] == 200
        status, metrics = record(call(f"{url}/metrics", headers=admin))
        assert status == 200 and b"batchcost_batches_submitted_total" in metrics
        # Scoped tokens reach their scope, are refused (403) elsewhere, and echo nothing.
        assert record(call(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}))[0] == 200
        assert record(call(f"{url}/api/budgets", headers={"authorization": f"Bearer {METRICS_TOKEN}"}))[0] == 403
        assert record(call(f"{url}/api/budgets", headers={"authorization": f"Bearer {READ_TOKEN}"}))[0] == 200
        assert record(call(f"{url}/metrics", headers={"authorization": f"Bearer {READ_TOKEN}"}))[0] == 403
        assert record(call(f"{url}/api/approvals/apr_x/approve", "POST",
                           {"authorization": f"Bearer {READ_TOKEN}"}, b""))[0] == 403
        # The budget's threshold was crossed: the signed notification arrives.
        deadline = time.monotonic() + 60
        while not hook_got:
            assert time.monotonic() < deadline, "no notification"
            time.sleep(0.2)
        path, headers, body = hook_got[0]
        assert path == HOOK_PATH and json.loads(body)["budget"] == "alpha-daily"
        assert headers["x-batchcost-signature"].startswith("sha256=")
        seen.append(body)
        record(call(f"{url}/healthz"))
        record(call(f"{url}/readyz"))
        # Deleting settles first; then the batch is gone upstream.
        record(call(f"{url}/v1/messages/batches/{a.id}", "DELETE", ak))
        live = [Path(str(db) + s) for s in ("", "-wal", "-shm") if Path(str(db) + s).exists()]
        stored_live = b"".join(p.read_bytes() for p in live)
    finally:
        gw.stop()
        sim.stop()
        hook_srv.shutdown()

    stored = stored_live + b"".join(
        Path(str(db) + s).read_bytes() for s in ("", "-wal", "-shm") if Path(str(db) + s).exists())
    places = {
        "gateway log": gw.logs().encode(),
        "simulator log": sim.logs().encode(),
        "responses": b"\n".join(seen),
        "ledger files": stored,
    }
    assert len(places["gateway log"]) > 10_000, "debug logging was not on"
    assert len(places["responses"]) > 5_000
    leaks = [(name, where) for name in SECRETS for where, data in places.items() if name.encode() in data]
    # Partial leaks count too: the distinctive middle of each secret.
    leaks += [(name, where) for name in SECRETS for where, data in places.items()
              if name[8:24].encode() in data and (name, where) not in leaks]
    print(f"searched {sum(len(d) for d in places.values())} bytes in {len(places)} places "
          f"for {len(SECRETS)} secrets: {len(leaks)} leaks")
    assert not leaks, leaks
