"""The run report's figure: the load on top, then one panel per host with its metrics, a band coloured by
verdict and a shaded span per alert episode; one legend explains every colour; times in UTC with the date."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from perfwatch.labels import HIGH, LABELS, LOW, MEDIUM  # noqa: E402
from perfwatch.sample import Sample  # noqa: E402
from perfwatch.subscriber.rundata import RunData, plural  # noqa: E402
from perfwatch.verdict import Verdict  # noqa: E402

LABEL_COLORS = {LOW: "#43a047", MEDIUM: "#fb8c00", HIGH: "#e53935"}
LABEL_MEANING = {LOW: "LowLoad", MEDIUM: "MediumLoad", HIGH: "HighLoad"}
METRICS = (("cpu_pct", "#1e88e5", "CPU %"), ("mem_pct", "#8e24aa", "memory %"), ("disk_pct", "#546e7a", "disk %"))
EPISODE_COLOR = "#c62828"
BAND = 0.08  # share of a host panel's height taken by the verdict band, at its foot
MARKERS_UP_TO = 150  # points per line drawn with a marker, so a lone sample is still visible


def _x(t: datetime) -> float:
    return float(mdates.date2num(t))


def _readings(data: RunData) -> list[Sample | Verdict]:
    return sorted([*data.samples, *data.verdicts], key=lambda x: x.ts or datetime.min.replace(tzinfo=UTC))


def _marker(n: int) -> str:
    return "o" if n <= MARKERS_UP_TO else ""


def _step(times: Sequence[datetime]) -> timedelta:
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False) if b > a]
    return timedelta(seconds=median(gaps) if gaps else 1.0)


def _band(ax: Axes, verdicts: Sequence[Verdict]) -> None:
    """Consecutive verdicts of one label as one span; the last reaches one typical step further."""
    if not verdicts:
        return
    times = [v.ts for v in verdicts]
    step = _step(times)
    start = 0
    for i in range(1, len(verdicts) + 1):
        if i == len(verdicts) or verdicts[i].label != verdicts[start].label:
            end = times[i] if i < len(verdicts) else times[-1] + step
            ax.axvspan(_x(times[start]), _x(end), ymin=0, ymax=BAND, color=LABEL_COLORS.get(verdicts[start].label, "k"),
                       lw=0, gid="verdict-band")
            start = i


def _load_panel(ax: Axes, data: RunData) -> list[Line2D]:
    rows: dict[datetime, tuple[float | None, float | None, float | None]] = {}
    for x in _readings(data):
        if x.ts is not None and (x.rps, x.p95_ms, x.error_pct) != (None, None, None):
            rows.setdefault(x.ts, (x.rps, x.p95_ms, x.error_pct))  # the run's load: the same on every host
    ax.set_gid("load")
    ax.set_ylabel("load")
    ax.grid(alpha=0.3)
    t = sorted(rows)
    series = [(i, name, color) for i, name, color in ((0, "RPS", "#00897b"), (1, "p95 ms", "#6d4c41"),
                                                       (2, "errors %", "#d81b60"))
              if any(rows[x][i] is not None for x in t)]
    if not series:
        ax.text(0.5, 0.5, "this run carries no load data (RPS, p95, errors)", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
        return []
    handles = []
    for n, (i, name, color) in enumerate(series):
        target = ax if n == 0 else ax.twinx()
        if n == 2:
            target.spines["right"].set_position(("axes", 1.07))
        pts = [(x, rows[x][i]) for x in t if rows[x][i] is not None]
        (line,) = target.plot([_x(p[0]) for p in pts], [float(p[1] or 0) for p in pts], color=color, lw=1.4,
                              marker=_marker(len(pts)), ms=2.5, label=name)
        target.set_ylabel(name, color=color)
        target.set_ylim(bottom=0)
        handles.append(line)
    return handles  # explained in the figure's legend, where they cover no data


def _host_panel(ax: Axes, host: str, data: RunData) -> int:
    ax.set_gid(f"host:{host}")
    vs = data.host_verdicts(host)
    src: Sequence[Sample | Verdict] = data.host_samples(host) or vs  # verdicts only where samples are gone
    t = [x.ts for x in src if x.ts is not None]  # every sample read has a ts (decoding gives one)
    for key, color, name in METRICS:
        ax.plot([_x(x) for x in t], [float(getattr(x, key)) for x in src], color=color, lw=1.2,
                marker=_marker(len(src)), ms=2, label=name)
    _band(ax, vs)
    episodes = [e for e in data.episodes() if e.host == host]
    last = max([*t, *(v.ts for v in vs)], default=None)
    for i, e in enumerate(episodes, start=1):
        end = e.end or last or e.start
        ax.axvspan(_x(e.start), _x(end), ymin=BAND, ymax=1, color=EPISODE_COLOR, alpha=0.13, lw=0, zorder=0,
                   gid="alert-episode")
        ax.axvline(_x(e.start), color=EPISODE_COLOR, lw=1, ls="--", zorder=1)
        ax.annotate(f"alert {i}", (_x(e.start), 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                    textcoords="offset points", va="top", fontsize=8, color=EPISODE_COLOR)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{host}\n% in use")
    ax.grid(alpha=0.3)
    return len(episodes)


def _legend(fig: Figure, load: list[Line2D]) -> None:
    handles: list[Line2D | Patch] = [Line2D([], [], color=h.get_color(), lw=1.5, label=f"load: {h.get_label()}")
                                     for h in load]
    handles += [Line2D([], [], color=c, lw=1.5, label=name) for _, c, name in METRICS]
    handles += [Patch(color=LABEL_COLORS[lab], label=f"verdict band: {LABEL_MEANING[lab]}") for lab in LABELS]
    handles.append(Patch(color=EPISODE_COLOR, alpha=0.25, label="alert episode (firing → resolved)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)


def build_figure(data: RunData) -> Figure:
    """The report figure (matplotlib objects; tests read them, draw() saves them)."""
    hosts = data.hosts
    has_load = any(x.rps is not None or x.p95_ms is not None or x.error_pct is not None for x in _readings(data))
    rows = [2.0] * has_load + [2.6] * max(1, len(hosts))
    fig = Figure(figsize=(12, sum(rows) + 1.4), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": rows})[:, 0]
    load = _load_panel(axes[0], data) if has_load else []
    host_axes = list(axes[1:] if has_load else axes)
    n_episodes = sum(_host_panel(ax, h, data) for ax, h in zip(host_axes, hosts, strict=False))
    if not hosts:
        host_axes[0].text(0.5, 0.5, "no samples or verdicts", transform=host_axes[0].transAxes, ha="center")
    times = [x.ts for x in _readings(data) if x.ts is not None]
    bottom = axes[-1]
    locator = mdates.AutoDateLocator(tz=UTC)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        locator, tz=UTC, show_offset=False, formats=["%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S"],
        zero_formats=["", "%Y", "%b", "%b %d", "%H:%M", "%H:%M:%S"]))
    day = f", {min(times).astimezone(UTC):%Y-%m-%d}" if times else ""
    bottom.set_xlabel(f"time (UTC{day})")
    verdict_note = f"; no verdicts: {data.why_no_verdicts}" if data.why_no_verdicts else ""
    fig.suptitle(f"run {data.run_id}: {plural(len(hosts), 'host')}, {plural(len(data.verdicts), 'verdict')}, "
                 f"{plural(n_episodes, 'alert episode')}{verdict_note}", fontsize=11)
    _legend(fig, load)
    return fig


def draw(data: RunData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    build_figure(data).savefig(path, dpi=110)
    return path
