"""The dashboard and the alert rules against a real Prometheus (Debian's `prometheus`
package, installed by scripts/setup-test-env) scraping `batchcost demo`: the gateway with
the simulator and sample traffic. After the demo's batches settle, every dashboard query and
every rule expression runs through Prometheus's HTTP API without error, the core panels
return data, and `promtool check metrics` is clean on a real scrape.

Skipped only while `batchcost demo --help` fails (the demo not built yet)."""

import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from dashboard_queries import (
    DASHBOARDS,
    REPO,
    dashboard,
    panel_queries,
    rules,
    rules_file,
    substitute,
)

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
STARTUP_TIMEOUT = 120
TRAFFIC_TIMEOUT = 300

# In-flight gauges only have series while something is in flight; once the demo's batches
# have settled these panels are legitimately empty. Every other panel must return data.
MAY_BE_EMPTY = {"Batches in flight", "Requests in flight", "Oldest batch in flight"}


def wait_for(what, check, timeout, diagnose=lambda: ""):
    """Polls `check` until it returns a truthy value; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}. {diagnose()}")
        time.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, token=None, timeout=10):
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Demo:
    proc: subprocess.Popen
    addr: str
    token: str
    log: object
    stdout: list = field(default_factory=list)

    def diagnose(self):
        self.log.flush()
        return f"demo stdout: {self.stdout[-20:]}\ndemo stderr:\n{self.log_text()[-4000:]}"

    def log_text(self):
        with open(self.log.name) as f:
            return f.read()


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen
    log_path: str

    def api(self, path, **params):
        status, body = http_get(f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}")
        assert status is not None, f"Prometheus unreachable: {body}"
        return status, json.loads(body)

    def query(self, expr):
        status, body = self.api("/api/v1/query", query=expr)
        assert status == 200 and body["status"] == "success", f"{expr!r}: {body}"
        return body["data"]["result"]

    def log_tail(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    binary = os.environ.get("BATCHCOST_BIN")
    assert binary, "BATCHCOST_BIN is not set: run the suite through scripts/test"
    helped = subprocess.run([binary, "demo", "--help"], capture_output=True, text=True,
                            timeout=60)
    if helped.returncode != 0:
        pytest.skip(f"`batchcost demo --help` failed (exit {helped.returncode}): "
                    "the demo is not built yet")

    token = secrets.token_urlsafe(24)
    args = [binary, "demo"]
    if "--listen" in helped.stdout:
        args += ["--listen", "127.0.0.1:0"]
    log = open(tmp_path_factory.mktemp("demo") / "stderr.log", "w")
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
        env={**os.environ, "BATCHCOST_ADMIN_TOKEN": token},
    )
    lines = queue.Queue()
    seen = []

    def read():
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    d = Demo(proc, "", token, log, seen)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not d.addr:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"demo printed no `listening on` line in {STARTUP_TIMEOUT}s. "
                            f"{d.diagnose()}")
            if line is None:
                pytest.fail(f"demo exited ({proc.wait()}) before listening. {d.diagnose()}")
            m = re.match(r"listening on http://(\S+)$", line.strip())
            if m:
                d.addr = m.group(1)
        yield d
    finally:
        stop(proc)
        log.close()


def prometheus_config(demo, tmp):
    """The shipped dashboards/prometheus.yml with test values; each replacement applies once."""
    (tmp / "token").write_text(demo.token + "\n")
    config = (DASHBOARDS / "prometheus.yml").read_text()
    for old, new in [
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("credentials_file: /etc/prometheus/batchcost-admin-token",
         f"credentials_file: {tmp / 'token'}"),
        ('"127.0.0.1:9400"', f'"{demo.addr}"'),
        ('"127.0.0.1:9093"', f'"127.0.0.1:{free_port()}"'),  # no Alertmanager in the test
        ("  - alerts.yml", f"  - {DASHBOARDS / 'alerts.yml'}"),
    ]:
        assert config.count(old) == 1, f"dashboards/prometheus.yml: expected {old!r} once"
        config = config.replace(old, new)
    path = tmp / "prometheus.yml"
    path.write_text(config)
    return path


def wait_for_traffic(p, demo):
    """Waits for the demo's batches to settle, three more scrapes (so rates have samples
    after the settlement) and one evaluation of every rule after that."""
    wait_for("the demo's batches to settle",
             lambda: p.query("sum(batchcost_batches_settled_total) > 0"), TRAFFIC_TIMEOUT,
             demo.diagnose)
    settled_at = time.time()

    def scrapes():
        return float(p.query('count_over_time(up{job="batchcost"}[1h])')[0]["value"][1])

    before = scrapes()
    wait_for("three more scrapes", lambda: scrapes() >= before + 3, 60)

    def evaluated():
        _, body = p.api("/api/v1/rules")
        groups = body["data"]["groups"]
        return groups and all(
            r.get("lastEvaluation", "").startswith("2")
            and rfc3339_seconds(r["lastEvaluation"]) > settled_at
            for g in groups
            for r in g["rules"]
        )

    wait_for("every rule to be evaluated after the traffic", evaluated, 60)


@pytest.fixture(scope="module")
def prometheus(demo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus")
    config = prometheus_config(demo, tmp)
    port = free_port()
    log_path = tmp / "prometheus.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    p = Prometheus(f"http://127.0.0.1:{port}", proc, str(log_path))
    try:
        wait_for("Prometheus to be ready",
                 lambda: proc.poll() is None and http_get(f"{p.url}/-/ready")[0] == 200,
                 STARTUP_TIMEOUT, lambda: f"exit {proc.poll()}; log:\n{p.log_tail()}")

        def target():
            _, body = p.api("/api/v1/targets")
            found = [t for t in body["data"]["activeTargets"] if t["labels"]["job"] == "batchcost"]
            return found[0] if found else {}

        wait_for("the batchcost target to be up", lambda: target().get("health") == "up",
                 STARTUP_TIMEOUT, lambda: f"target: {target()}\n{demo.diagnose()}")
        wait_for_traffic(p, demo)
        yield p
    finally:
        stop(proc)


def rfc3339_seconds(ts):
    """Prometheus's lastEvaluation (RFC 3339, nanoseconds, Z or offset) as epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", ts)
    assert m, ts
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(m.group(2) or 0)


def test_metrics_need_the_admin_token(demo):
    url = f"http://{demo.addr}/metrics"
    assert http_get(url)[0] == 401
    assert http_get(url, token="wrong-" + demo.token)[0] == 401
    status, body = http_get(url, token=demo.token)
    assert status == 200 and "batchcost_build_info" in body


def test_promtool_check_metrics_is_clean_on_a_real_scrape(demo, prometheus):
    status, body = http_get(f"http://{demo.addr}/metrics", token=demo.token)
    assert status == 200
    for family in ("batchcost_cost_usd_total", "batchcost_budget_limit_usd",
                   "batchcost_batch_duration_seconds"):
        assert f"# TYPE {family}" in body, f"{family} missing from a scrape after traffic"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_threshold_label_is_the_fraction_as_text(demo, prometheus):
    series = prometheus.query("batchcost_budget_alert_threshold_ratio")
    assert series, "the demo configures no budget with alert_at"
    for s in series:
        assert float(s["metric"]["threshold"]) == float(s["value"][1]), s
        assert 0 < float(s["value"][1]) <= 1, s


def test_rules_load_and_evaluate_without_error(prometheus):
    _, body = prometheus.api("/api/v1/rules")
    groups = body["data"]["groups"]
    expected = rules_file()["groups"]
    assert sorted(g["name"] for g in groups) == sorted(g["name"] for g in expected)
    assert sum(len(g["rules"]) for g in groups) == len(rules())
    for g in groups:
        for r in g["rules"]:
            assert r["health"] == "ok" and not r.get("lastError"), r


def test_every_rule_expression_runs(prometheus):
    for r in rules():
        prometheus.query(r["expr"])


def test_every_panel_query_runs_and_core_panels_return_data(prometheus):
    end = time.time()
    empty = set()
    for panel, target, expr in panel_queries():
        if target.get("instant"):
            result = prometheus.query(expr)
        else:
            status, body = prometheus.api(
                "/api/v1/query_range", query=expr, start=end - 600, end=end, step=15)
            assert status == 200 and body["status"] == "success", \
                f"{panel['title']}: {expr!r}: {body}"
            result = body["data"]["result"]
        if not result:
            empty.add(panel["title"])
    missing = sorted(empty - MAY_BE_EMPTY)
    assert not missing, f"panels without data after traffic: {missing}"
    print(f"{len(panel_queries())} queries run; empty panels (allowed): {sorted(empty)}")


def test_variable_queries_return_values(prometheus):
    for v in dashboard()["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"])
        assert m, v["query"]
        status, body = prometheus.api(
            f"/api/v1/label/{m.group(2)}/values", **{"match[]": substitute(m.group(1))})
        assert status == 200 and body["data"], f"variable {v['name']}: {body}"


def test_budget_scopes_match_the_cost_counters(prometheus):
    # The rules join budgets to cost counters by project, "all" meaning every project: that
    # only holds if each budget's spent is the settled cost in its scope (the demo runs
    # within one window, so all its cost is in the current windows).
    budgets = prometheus.query("budget:batchcost_budget_spent_usd:max")
    assert any(b["metric"]["project"] == "all" for b in budgets), "the demo has no global budget"
    for b in budgets:
        project = b["metric"]["project"]
        selector = "" if project == "all" else f'{{project="{project}"}}'
        cost = prometheus.query(f"sum(batchcost_cost_usd_total{selector})")
        in_scope = float(cost[0]["value"][1]) if cost else 0.0
        assert abs(float(b["value"][1]) - in_scope) < 0.005, (b["metric"], b["value"][1], in_scope)
