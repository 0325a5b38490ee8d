"""Writes deploy/grafana/perfwatch.json: the consumer's metrics as a Grafana dashboard, built with Grafana's
own typed model (grafana-foundation-sdk, a dev dependency). Run from the repository root:

    python deploy/grafana/build_dashboard.py            # rewrite the JSON
    python deploy/grafana/build_dashboard.py --check    # exit 1 if the committed JSON is out of date
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

OUT = Path(__file__).with_name("perfwatch.json")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job=~"$job"'
_ids = itertools.count(1)


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)


def ts(title: str, unit: str, *queries: prometheus.Dataquery, x: int, y: int, w: int = 12, h: int = 8,
       description: str = "") -> timeseries.Panel:
    p = (timeseries.Panel().id(next(_ids)).title(title).unit(unit).datasource(DS)
         .grid_pos(GridPos(h=h, w=w, x=x, y=y))
         .legend(cb.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
                 .show_legend(True))
         .tooltip(cb.VizTooltipOptions().mode(TooltipDisplayMode.MULTI)))
    if description:
        p = p.description(description)
    for query in queries:
        p = p.with_target(query)
    return p


def big(title: str, unit: str, query: prometheus.Dataquery, x: int) -> stat.Panel:
    return (stat.Panel().id(next(_ids)).title(title).unit(unit).datasource(DS).grid_pos(GridPos(h=4, w=6, x=x, y=0))
            .graph_mode(BigValueGraphMode.AREA)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .with_target(query))


def build() -> dict:
    quantiles = [("p50", "0.5", "A"), ("p95", "0.95", "B"), ("p99", "0.99", "C")]

    def hist(name: str) -> list[prometheus.Dataquery]:
        return [q(f"histogram_quantile({v}, sum by (le) (rate({name}_bucket{{{SEL}}}[$__rate_interval])))", k, r)
                for k, v, r in quantiles]

    d = (
        dashboard.Dashboard("perfwatch")
        .uid("perfwatch-consumer")
        .description("perfwatch stream processor: verdicts, alerts, dead letters, batches, latency, lag")
        .tags(["perfwatch", "kafka", "onnx"])
        .time("now-1h", "now")
        .refresh("30s")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(dashboard.QueryVariable("job").label("job").datasource(DS)
                       .query("label_values(perfwatch_samples_total, job)").include_all(True).multi(True)
                       .all_value(".*"))
        .with_panel(big("Samples / s", "ops", q(f"sum(rate(perfwatch_samples_total{{{SEL}}}[$__rate_interval]))"), 0))
        .with_panel(big("Consumer lag", "short", q(f"sum(max by (partition) (perfwatch_consumer_lag{{{SEL}}}))"), 6))
        .with_panel(big("Paused (backpressure)", "short", q(f"max(perfwatch_paused{{{SEL}}})"), 12))
        .with_panel(big("Dead letters / s", "ops", q(f"sum(rate(perfwatch_dlq_total{{{SEL}}}[$__rate_interval]))"), 18))
        .with_panel(ts("Verdicts by label", "ops",
                       q(f"sum by (label) (rate(perfwatch_verdicts_total{{{SEL}}}[$__rate_interval]))", "{{label}}"),
                       x=0, y=4))
        .with_panel(ts("Alerts by state", "ops",
                       q(f"sum by (state) (rate(perfwatch_alerts_total{{{SEL}}}[$__rate_interval]))", "{{state}}"),
                       x=12, y=4, description="high: every HighLoad verdict (no hysteresis); firing/resolved: "
                                              "hysteresis transitions"))
        .with_panel(ts("Dead letters by reason", "ops",
                       q(f"sum by (reason) (rate(perfwatch_dlq_total{{{SEL}}}[$__rate_interval]))", "{{reason}}"),
                       x=0, y=12))
        .with_panel(ts("Batch size", "short", *hist("perfwatch_batch_size"),
                       q(f"sum(rate(perfwatch_batch_size_sum{{{SEL}}}[$__rate_interval])) / "
                         f"sum(rate(perfwatch_batch_size_count{{{SEL}}}[$__rate_interval]))", "mean", "D"),
                       x=12, y=12))
        .with_panel(ts("Inference time per batch", "s", *hist("perfwatch_inference_seconds"), x=0, y=20))
        .with_panel(ts("End-to-end latency (sample time → verdict)", "s", *hist("perfwatch_end_to_end_seconds"),
                       x=12, y=20))
        .with_panel(ts("Consumer lag by partition", "short",
                       q(f"max by (partition) (perfwatch_consumer_lag{{{SEL}}})", "partition {{partition}}"),
                       x=0, y=28))
        .with_panel(ts("Paused for backpressure", "short",
                       q(f"max by (instance) (perfwatch_paused{{{SEL}}})", "{{instance}}"), x=12, y=28))
    )
    return json.loads(json.dumps(d.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")
