"""Metric names in PromQL (parsed by promql-parser, not by regex) and the names the consumer exports."""

from __future__ import annotations

from typing import Any

import promql_parser

# Grafana's template variables, replaced by values PromQL accepts before parsing
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", '"$job"': '".*"'}


def metric_names(expr: str) -> set[str]:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            walk(node.expr)

    walk(promql_parser.parse(expr))
    return names


def consumer_metric_names() -> set[str]:
    """Every series name the consumer's registry can expose (labelled families have no samples until used,
    so names come from each family's type, as the exposition format spells them)."""
    from perfwatch.consumer.metrics import Metrics

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count",
                                                                                  "_created")}
    return {fam.name + s for fam in Metrics().registry.collect() for s in suffixes[fam.type]}
