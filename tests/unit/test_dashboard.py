"""deploy/grafana/perfwatch.json is a valid Grafana dashboard model over metrics the consumer exports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.promql import consumer_metric_names, metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "perfwatch.json"

gf = pytest.importorskip("grafana_foundation_sdk", reason="dev dependency grafana-foundation-sdk")


def _load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _missing(file: Any, model: Any, path: str = "") -> list[str]:
    """Paths in ``file`` that Grafana's model does not give back equal (unknown keys are dropped by it)."""
    if isinstance(file, dict):
        if not isinstance(model, dict):
            return [path]
        return [p for k, v in file.items() for p in (_missing(v, model[k], f"{path}/{k}") if k in model
                                                     else [f"{path}/{k}"])]
    if isinstance(file, list):
        if not isinstance(model, list) or len(model) != len(file):
            return [path]
        return [p for i, (a, b) in enumerate(zip(file, model, strict=True)) for p in _missing(a, b, f"{path}[{i}]")]
    return [] if file == model else [f"{path}: {file!r} != {model!r}"]


def test_dashboard_round_trips_through_grafanas_dashboard_model() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()  # panel options and Prometheus queries decode to their typed models
    data = _load()
    model = Dashboard.from_json(data)
    assert model.title == "perfwatch" and model.uid == "perfwatch-consumer" and (model.schema_version or 0) >= 36
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert _missing(data, again) == []
    # and a typo is caught by the same check
    broken = json.loads(DASHBOARD.read_text())
    broken["panels"][0]["titel"] = "x"
    assert _missing(broken, json.loads(json.dumps(Dashboard.from_json(broken), cls=JSONEncoder))) == \
        ["/panels[0]/titel"]


def test_dashboard_json_is_what_the_builder_writes() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboard", ROOT / "deploy/grafana/build_dashboard.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert DASHBOARD.read_text() == mod.render(), "run: python deploy/grafana/build_dashboard.py"


def test_panels_are_laid_out_and_query_prometheus() -> None:
    data = _load()
    panels = data["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        assert p["type"] in {"stat", "timeseries"} and p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs)
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and t["expr"]
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"


def test_every_query_names_a_metric_the_consumer_exports() -> None:
    exported = consumer_metric_names()
    assert "perfwatch_verdicts_total" in exported and "perfwatch_batch_size_bucket" in exported
    used: set[str] = set()
    for p in _load()["panels"]:
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert names, t["expr"]
            assert names <= exported, f"{p['title']}: {names - exported} not exported by the consumer"
            used |= names
    for v in _load()["templating"]["list"]:
        if v["type"] == "query":
            assert v["query"] == "label_values(perfwatch_samples_total, job)"
    # the list: verdicts by label, alerts, DLQ by reason, batch size, inference, latency, lag, paused
    assert {"perfwatch_verdicts_total", "perfwatch_alerts_total", "perfwatch_dlq_total",
            "perfwatch_batch_size_bucket", "perfwatch_inference_seconds_bucket",
            "perfwatch_end_to_end_seconds_bucket", "perfwatch_consumer_lag", "perfwatch_paused"} <= used


def test_metric_name_parser_sees_through_functions_and_aggregations() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))'
                        ' / on (job) sum(b) > 0 and c offset 5m') == {"a_bucket", "b", "c"}


def test_every_alert_reads_recording_rules_evaluated_before_it_in_its_own_group() -> None:
    """Groups are evaluated independently (in promtool's unit tests, in either order), so an alert that
    read a recording rule of another group saw this minute's value or the last one's: the unit test's
    expected annotation failed 4 runs in 30. Only the rules of one group run in order."""
    import re

    import yaml

    rules = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "prometheus" /
                            "perfwatch-rules.yml").read_text())
    recorded_anywhere = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for group in rules["groups"]:
        before: set[str] = set()
        for rule in group["rules"]:
            if "record" in rule:
                before.add(rule["record"])
                continue
            used = set(re.findall(r"[a-z_]+:[a-z_0-9:]+", rule["expr"])) & recorded_anywhere
            assert used <= before, f"{rule['alert']} reads {sorted(used - before)} from outside its group or after it"
