"""Static checks of dashboards/: the Grafana dashboard's structure, the alert rules'
metadata and tests, the Alertmanager routing, the provisioning and scrape configs.
promtool and amtool come from scripts/setup-test-env. The schema type check and
`promtool test rules` run in scripts/check-dashboards; test_monitoring.py runs every query
against a real Prometheus scraping the gateway."""

import json
import re
import subprocess
from collections import Counter

import yaml

from dashboard_queries import (
    CONTRACT_SERIES,
    DASHBOARDS,
    REPO,
    alerts,
    dashboard,
    panel_queries,
    panels,
    recorded_names,
    rules,
    series_names,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UNITS = {
    "currencyUSD", "s", "percentunit", "count:tokens", "count:tokens/h", "count:batches",
    "count:batches/h", "count:requests", "count:refusals/min", "reqpm", "none",
    "count:refusals/h", "count:notifications", "count:notifications/h",
}
SEVERITIES = {"page", "ticket", "info"}


def test_every_panel_has_title_one_line_description_unit_and_the_datasource_variable():
    found = panels()
    assert len(found) >= 20
    for p in found:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        assert p.get("title", "").strip(), where
        desc = p.get("description", "")
        one_line = desc.strip() and "\n" not in desc and len(desc) <= 160
        assert one_line, f"{where}: description {desc!r}"
        assert p["datasource"] == DATASOURCE, where
        unit = p["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, f"{where}: unit {unit!r}"
        assert p["targets"], f"{where}: no queries"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), f"{where}: duplicate refIds {refs}"
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, where
            assert t["expr"].strip(), where


def test_units_match_what_the_panels_show():
    for p in panels():
        unit = p["fieldConfig"]["defaults"]["unit"]
        title = p["title"]
        if "USD" in title or "Cost" in title or "savings" in title or "Spent" in title:
            assert unit == "currencyUSD", title
        if "Tokens" in title:
            assert unit.startswith("count:tokens"), title
        if any(w in title for w in ("duration", "latency", "Time ", "Oldest")):
            assert unit == "s", title
        if re.search(r"\b(share|error rate|ratio|used)\b|/ reservation", title):
            assert unit == "percentunit", title


def test_the_issue_rows_and_panels_are_all_there():
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Budgets", "Spend", "Batches", "Health"]
    titles = {p["title"] for p in panels()}
    for needed in [
        "Budget used (spent + reserved)", "Spent, reserved and limit", "Time left in window",
        "Burn rate (USD per hour)", "Projected spend at window end",
        "Cost by project and model (USD per hour)", "Batch savings (USD per hour)",
        "Tokens by kind (per hour)", "Cache read share of input tokens",
        "Batches in flight", "Batch duration p50 and p95", "Requests by result",
        "Request error rate (last hour)", "Settled cost / reservation",
        "Submissions refused by reason (per minute)", "Upstream latency by operation",
        "Upstream error ratio by operation", "Time since last settlement",
    ]:
        assert needed in titles


def test_ids_are_unique_and_panels_do_not_overlap():
    top = dashboard()["panels"]
    ids = [p["id"] for p in top] + [c["id"] for p in top for c in p.get("panels", [])]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    cells = {}
    for p in top:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_variables_pick_a_prometheus_datasource_and_default_to_all():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("project", "provider", "model"):
        v = variables[name]
        assert v["type"] == "query" and v["datasource"] == DATASOURCE, name
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".*", name
        pattern = r"label_values\(batchcost_\w+(\{.*\})?, " + name + r"\)"
        assert re.fullmatch(pattern, v["query"]), v["query"]
    # Budgets without a project (project="all") stay visible whatever project is selected.
    budget_exprs = [t["expr"] for p in panels() for t in p["targets"] if "budget:" in t["expr"]]
    assert budget_exprs
    for e in budget_exprs:
        assert 'project=~"$project|all"' in e, e


def test_every_query_reads_only_contract_metrics_and_recorded_series():
    known = CONTRACT_SERIES | recorded_names()
    for p, t, expr in panel_queries():
        names = series_names(expr)
        assert names, f"{p['title']}: no series in {expr!r}"
        assert names <= known, f"{p['title']}: unknown series {names - known}"
    for r in rules():
        assert series_names(r["expr"]) <= known, r.get("record") or r.get("alert")


# Gauges every replica reads from the shared ledger: the same value from each, so they are
# combined with max() (sum() would count them once per replica). Counters are per replica
# and summed (README "Monitoring", "Several replicas").
LEDGER_GAUGES = {
    "batchcost_budget_limit_usd", "batchcost_budget_spent_usd", "batchcost_budget_reserved_usd",
    "batchcost_budget_alert_threshold_ratio", "batchcost_budget_window_end_timestamp_seconds",
    "batchcost_batches_in_flight", "batchcost_requests_in_flight", "batchcost_oldest_batch_age_seconds",
}


def test_ledger_gauges_are_never_summed_across_replicas():
    exprs = [(p["title"], expr) for p, _, expr in panel_queries()]
    exprs += [(r.get("record") or r.get("alert"), r["expr"]) for r in rules()]
    for where, expr in exprs:
        for g in LEDGER_GAUGES:
            summed = re.search(r"\b(sum|count)\s*(by\s*\([^)]*\)\s*)?\(\s*" + g + r"\b", expr)
            assert not summed, f"{where}: {g} is the shared ledger's, combine it with max(): {expr!r}"
            bare = re.search(r"(?<![(\w])" + g + r"\b", expr.replace(" ", ""))
            if g in series_names(expr):
                assert not bare or re.search(r"max(by\([^)]*\))?\(" + g, expr.replace(" ", "")), \
                    f"{where}: {g} read without max(): one series per replica"


def test_every_recording_rule_is_used_by_the_dashboard_or_another_rule():
    used = set()
    for _, _, expr in panel_queries():
        used |= series_names(expr)
    for r in rules():
        used |= series_names(r["expr"])
    unused = recorded_names() - used
    assert not unused, f"recorded but never read: {unused}"


def test_recording_rule_names_follow_level_metric_operations():
    for name in recorded_names():
        level, metric, ops = name.split(":")
        assert level and ops, name
        assert metric.startswith("batchcost_") and not metric.endswith("_total"), name


def test_every_dashboard_query_parses(tmp_path):
    # promtool parses PromQL offline as rule expressions.
    group = {"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{p['id']}:{t['refId'].lower()}", "expr": expr}
        for p, t, expr in panel_queries()
    ]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [group]}))
    r = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_have_severity_summary_description_and_a_runbook_in_the_docs():
    docs = (REPO / "README.md").read_text()
    headings = set(re.findall(r"^### (\w+)$", docs, re.M))
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert len(names) == 12
    for a in alerts():
        name = a["alert"]
        assert name.startswith("Batchcost"), name
        assert a["labels"]["severity"] in SEVERITIES, name
        assert "for" in a, f"{name}: no `for`, flaps on one bad evaluation"
        ann = a["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url"}, name
        assert ann["runbook_url"] == f"README.md#{name.lower()}", name
        assert name in headings, f"{name}: no '### {name}' runbook in README.md"
    assert headings >= set(names)


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    tests = yaml.safe_load((DASHBOARDS / "alerts.test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    firing, quiet = Counter(), Counter()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet)[case["alertname"]] += 1
    for a in alerts():
        assert firing[a["alert"]] >= 1, f"{a['alert']}: no case where it fires"
        assert quiet[a["alert"]] >= 1, f"{a['alert']}: no case where it stays quiet"


def test_threshold_alert_is_one_per_budget_and_fraction():
    (rule,) = [a for a in alerts() if a["alert"] == "BatchcostBudgetThresholdCrossed"]
    expr = " ".join(rule["expr"].split())
    # Joined to the threshold gauge, keeping its `threshold` label: one alert per fraction.
    assert "group_right" in expr and "batchcost_budget_alert_threshold_ratio" in expr
    assert "by (budget, project, period, threshold)" in expr


def test_alertmanager_routes_budget_alerts_to_slack_and_pages_once():
    config = DASHBOARDS / "alertmanager.yml"
    am = yaml.safe_load(config.read_text())
    budget_route = am["route"]["routes"][0]
    assert budget_route["receiver"] == "budget-slack"
    assert set(budget_route["group_by"]) == {"alertname", "budget", "project", "period"}
    assert budget_route["repeat_interval"] == "24h"
    slack = [r for r in am["receivers"] if r["name"] == "budget-slack"][0]["slack_configs"][0]
    assert "api_url_file" in slack and "api_url" not in slack
    for a in alerts():
        name, severity = a["alert"], a["labels"]["severity"]
        expected = []
        if name.startswith("BatchcostBudget"):
            expected.append("budget-slack")
        if severity == "page":
            expected.append("pager")
        if not expected:
            expected.append("ops-slack")
        labels = [f"alertname={name}", f"severity={severity}", "budget=b", "project=p",
                  "period=day"]
        r = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={config}",
             f"--verify.receivers={','.join(expected)}", *labels],
            capture_output=True, text=True,
        )
        assert r.returncode == 0, f"{name}: routed to {r.stdout.strip()}, expected {expected}"


def test_prometheus_scrapes_with_a_bearer_token_file_and_loads_the_rules():
    prom = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "batchcost"]
    auth = job["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"]
    assert "credentials" not in auth and "bearer_token" not in job


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder():
    base = DASHBOARDS / "grafana" / "provisioning"
    ds = yaml.safe_load((base / "datasources" / "batchcost.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    assert source["jsonData"]["timeInterval"] == "15s"
    prov = yaml.safe_load((base / "dashboards" / "batchcost.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
