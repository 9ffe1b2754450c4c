"""Reads dashboards/: the Grafana dashboard's panels and queries, the Prometheus rules, and
the contract's metric names. Shared by test_dashboards.py (static) and test_monitoring.py
(against a real Prometheus)."""

import json
import os
import re
from pathlib import Path

import yaml

REPO = Path(os.environ.get("BATCHCOST_REPO") or Path(__file__).resolve().parents[2])
DASHBOARDS = REPO / "dashboards"

# CONTRACT.md section 5, plus Prometheus's own `up`. Histograms are listed by family.
COUNTERS = {
    "batchcost_cost_usd_total",
    "batchcost_list_cost_usd_total",
    "batchcost_tokens_total",
    "batchcost_requests_total",
    "batchcost_batches_submitted_total",
    "batchcost_batches_settled_total",
    "batchcost_submissions_rejected_total",
    "batchcost_notifications_total",
}
GAUGES = {
    "batchcost_budget_limit_usd",
    "batchcost_budget_spent_usd",
    "batchcost_budget_reserved_usd",
    "batchcost_budget_alert_threshold_ratio",
    "batchcost_budget_window_end_timestamp_seconds",
    "batchcost_batches_in_flight",
    "batchcost_requests_in_flight",
    "batchcost_oldest_batch_age_seconds",
    "batchcost_last_settlement_timestamp_seconds",
    "batchcost_build_info",
    "batchcost_notifications_pending",
    "batchcost_budget_possible_overshoot_usd",
    "batchcost_upstream_up",
    "batchcost_upstream_last_success_timestamp_seconds",
}
HISTOGRAMS = {
    "batchcost_batch_duration_seconds",
    "batchcost_settlement_estimate_ratio",
    "batchcost_upstream_request_duration_seconds",
}
CONTRACT_SERIES = (
    COUNTERS
    | GAUGES
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
    | {"up"}
)

# What Grafana substitutes before a query reaches Prometheus: "All" of a variable is its
# allValue `.*`; the interval variables get values that suit a short test run.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "10m",
    "$project": ".*",
    "$provider": ".*",
    "$model": ".*",
}


def dashboard():
    return json.loads((DASHBOARDS / "batchcost.json").read_text())


def panels():
    """Every panel that is not a row, including those inside collapsed rows."""
    out = []
    for p in dashboard()["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def substitute(expr):
    for var, value in sorted(SUBSTITUTIONS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown dashboard variables {leftover} in {expr!r}"
    return expr


def panel_queries():
    """(panel, target, expr with variables substituted) for every query of every panel."""
    return [(p, t, substitute(t["expr"])) for p in panels() for t in p["targets"]]


def rules_file():
    return yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())


def rules():
    return [r for g in rules_file()["groups"] for r in g["rules"]]


def alerts():
    return [r for r in rules() if "alert" in r]


def recorded_names():
    return {r["record"] for r in rules() if "record" in r}


def series_names(expr):
    """Metric and recording-rule names an expression reads (string literals, label names
    inside braces, function names and keywords excluded)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "{}", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)", expr):
        name = m.group(1)
        rest = expr[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function call
        if name in {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    # Durations inside ranges ([1h]) are not names.
    return {n for n in names if not re.fullmatch(r"[0-9smhdwy]+", n)}
