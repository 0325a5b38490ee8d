"""One run on one picture: CPU / memory / disk per host over time, a band coloured by verdict, and
alert markers; plus a short text summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from perfwatch.decoding import decode_sample  # noqa: E402
from perfwatch.errors import ContractError  # noqa: E402
from perfwatch.kafkaio import read_topic  # noqa: E402
from perfwatch.labels import HIGH, LOW, MEDIUM  # noqa: E402
from perfwatch.sample import Sample  # noqa: E402
from perfwatch.verdict import Alert, Verdict  # noqa: E402

COLORS = {LOW: "#4caf50", MEDIUM: "#ffb300", HIGH: "#e53935"}


@dataclass
class RunData:
    run_id: str
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def collect(conf: dict[str, Any], run_id: str, samples_topic: str, predictions_topic: str, alerts_topic: str,
            idle_s: float = 2.0) -> RunData:
    data = RunData(run_id)
    for m in read_topic(conf, samples_topic, idle_s=idle_s, read_committed=True):
        try:
            s = decode_sample(m.value(), max_bytes=1 << 20)
        except ContractError:
            continue
        if s.run_id == run_id:
            data.samples.append(s)
    for m in read_topic(conf, predictions_topic, idle_s=idle_s, read_committed=True):
        v = Verdict.model_validate_json(m.value() or b"{}")
        if v.run_id == run_id:
            data.verdicts.append(v)
    for m in read_topic(conf, alerts_topic, idle_s=idle_s, read_committed=True):
        a = Alert.model_validate_json(m.value() or b"{}")
        if a.run_id == run_id:
            data.alerts.append(a)
    return data


def summarize(data: RunData) -> str:
    if not data.verdicts:
        return f"run {data.run_id}: no verdicts found"
    labels = Counter(v.label for v in data.verdicts)
    hosts = sorted({v.host for v in data.verdicts})
    lines = [f"run {data.run_id}: {len(data.samples)} samples, {len(data.verdicts)} verdicts "
             f"({', '.join(f'{k} {n}' for k, n in sorted(labels.items()))}), {len(data.alerts)} alerts, "
             f"hosts {', '.join(hosts)}"]
    for h in hosts:
        vs = sorted((v for v in data.verdicts if v.host == h), key=lambda v: v.ts)
        high = [v for v in vs if v.label == HIGH]
        peak = max(vs, key=lambda v: max(v.cpu_pct, v.mem_pct, v.disk_pct))
        span = f"HighLoad {high[0].ts:%H:%M:%S}–{high[-1].ts:%H:%M:%S} ({len(high)} samples)" if high else "no HighLoad"
        lines.append(f"  {h}: {span}; peak cpu {peak.cpu_pct:.0f} mem {peak.mem_pct:.0f} disk {peak.disk_pct:.0f}")
    return "\n".join(lines)


def draw(data: RunData, path: Path) -> Path:
    hosts = sorted({v.host for v in data.verdicts} | {s.host for s in data.samples}) or ["(none)"]
    fig, axes = plt.subplots(len(hosts), 1, figsize=(11, 2.8 * len(hosts) + 0.6), squeeze=False, sharex=True,
                             constrained_layout=True)
    for ax, host in zip(axes[:, 0], hosts, strict=True):
        vs = sorted((v for v in data.verdicts if v.host == host), key=lambda v: v.ts)
        src: list[Verdict] | list[Sample] = vs or sorted((s for s in data.samples if s.host == host),
                                                         key=lambda s: s.ts)  # type: ignore[arg-type, return-value]
        t = [x.ts for x in src]
        for key, color, name in (("cpu_pct", "tab:blue", "CPU %"), ("mem_pct", "tab:purple", "memory %"),
                                 ("disk_pct", "tab:gray", "disk %")):
            ax.plot(t, [getattr(x, key) for x in src], color=color, lw=1.2, label=name)
        for a, b in zip(vs, vs[1:] + vs[-1:], strict=True):  # verdict band along the bottom
            ax.axvspan(a.ts, b.ts if b is not a else a.ts, ymin=0, ymax=0.06, color=COLORS.get(a.label, "k"), lw=0)
        for al in (x for x in data.alerts if x.host == host):
            marker = "v" if al.state != "resolved" else "^"
            ax.plot([al.ts], [102], marker=marker, color="#b71c1c" if al.state != "resolved" else "#2e7d32", ms=7)
        ax.set_ylim(0, 106)
        ax.set_ylabel(f"{host}\n% in use")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", ncol=3, fontsize=8)
    axes[0, 0].set_title(f"run {data.run_id}: metrics, verdict band (green/amber/red), alerts (▼)")
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
