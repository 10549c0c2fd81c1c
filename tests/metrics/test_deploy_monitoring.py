"""deploy/prometheus rules and deploy/grafana dashboard: they parse, and every expression names
metrics rotator really exports (promtool is not assumed to be installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
import yaml

from rotator.config import Settings
from rotator.exporter import EXPORTER_METRICS, RedisCollector
from rotator.metrics import WORKER_METRICS, instruments

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rotator-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "rotator-dashboard.json"
_NAME = re.compile(r"\brotator_[a-z_]+\b")
_SUFFIXES = ("_bucket", "_count", "_sum")


def exported() -> set[str]:
    return set(WORKER_METRICS) | set(EXPORTER_METRICS)


def names_in(expr: str) -> set[str]:
    found = set()
    for name in _NAME.findall(expr):
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in exported():
                name = name.removesuffix(suffix)
        found.add(name)
    return found


def balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', "", expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def test_worker_metric_list_is_what_the_worker_registers() -> None:
    registered = set()
    for attribute in vars(instruments()).values():
        for family in attribute.collect():
            suffix = "_total" if family.type == "counter" else ""
            registered.add(family.name + suffix)
    assert registered == set(WORKER_METRICS)


def test_exporter_metric_list_is_what_the_exporter_yields(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, key_prefix="t:")
    config = SimpleNamespace(get=lambda: SimpleNamespace(targets={}))
    collector = RedisCollector(settings, fakeredis.FakeRedis(), config)
    families = list(collector.collect())
    assert {f.name for f in families} == set(EXPORTER_METRICS)
    scrape_error = next(f for f in families if f.name == "rotator_exporter_scrape_error")
    assert scrape_error.samples[0].value == 0


def test_alert_rules_cover_the_issue_and_name_exported_metrics() -> None:
    document: dict[str, Any] = yaml.safe_load(RULES.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert {g["name"] for g in document["groups"]} == {"rotator"}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert balanced(rule["expr"]), rule["expr"]
        assert names_in(rule["expr"]), rule["expr"]
        assert names_in(rule["expr"]) <= exported(), rule["expr"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert {r["alert"] for r in rules} >= {
        "RotatorCredentialOverdue",
        "RotatorRotationFailures",
        "RotatorDeadLetters",
        "RotatorAuditSpoolGrowing",
        "RotatorNoDispatch",
    }


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    shown: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert balanced(expr), expr
            assert names_in(expr) and names_in(expr) <= exported(), expr
            shown |= names_in(expr)
    # Every metric an operator acts on has a panel (the rest feed the alerts only).
    not_shown = {
        "rotator_target_overdue",
        "rotator_dispatch_interval_seconds",
        "rotator_exporter_scrape_error",
    }
    assert shown == exported() - not_shown
