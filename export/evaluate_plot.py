"""Where a bundle disagrees with the policy: cpu × mem maps at a few disk levels, plus every disk level
at once, over the policy's labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from perfwatch.labels import HIGH, LABELS, policy_indices  # noqa: E402
from perfwatch.template import SIDE  # noqa: E402

if TYPE_CHECKING:
    from perfwatch.export.evaluate import PolicyCheck

# Disk levels around the policy's disk thresholds (70 medium, 85 pair, 90 any) and far from them.
DISK_LEVELS = (10, 69, 72, 84, 86, 89)


def plot_disagreements(check: PolicyCheck, path: Path, disk_levels: tuple[int, ...] = DISK_LEVELS) -> None:
    v = np.arange(SIDE)
    cpu, mem = np.meshgrid(v, v, indexing="ij")
    dis = check.disagreements
    h = LABELS.index(HIGH)
    background = ListedColormap(["#e8f3e8", "#fdf1d6", "#f6d5d5"])
    fig, axes = plt.subplots(2, 4, figsize=(17, 9.4), constrained_layout=True)
    panels = [("all disk levels", None), *((f"disk {d}", d) for d in disk_levels)]
    handles: dict[str, Any] = {}
    for ax, (title, disk) in zip(axes.flat, panels, strict=False):
        if disk is None:
            counts = np.zeros((101, 101))
            np.add.at(counts, (dis[:, 0], dis[:, 1]), 1)
            im = ax.imshow(counts.T, origin="lower", cmap="magma_r", extent=(-0.5, 100.5, -0.5, 100.5))
            fig.colorbar(im, ax=ax, shrink=0.8, label="disagreements over 101 disk levels")
        else:
            truth = policy_indices(cpu, mem, np.full_like(cpu, disk))
            ax.imshow(truth.T, origin="lower", cmap=background, vmin=0, vmax=2, extent=(-0.5, 100.5, -0.5, 100.5))
            at = dis[dis[:, 2] == disk]
            missed = at[(at[:, 3] == h) & (at[:, 4] != h)]
            false_high = at[(at[:, 4] == h) & (at[:, 3] != h)]
            other = at[(at[:, 3] != h) & (at[:, 4] != h)]
            kinds = ((missed, "#c00000", "missed HighLoad"), (false_high, "#ff8c00", "false HighLoad"),
                     (other, "#404040", "Low ↔ Medium"))
            for rows, colour, name in kinds:
                handles[name] = ax.scatter(rows[:, 0], rows[:, 1], s=10, c=colour, marker="s", label=name)
            title += f": {len(missed)} missed, {len(false_high)} false High, {len(other)} other"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cpu %")
        ax.set_ylabel("mem %")
        ax.set_xlim(-0.5, 100.5)
        ax.set_ylim(-0.5, 100.5)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
        ax.legend(list(handles.values()), list(handles), loc="center", title="disagreements")
    fig.suptitle(f"{check.precision} bundle vs the label policy over {check.n:,} inputs ({check.scope}): "
                 f"agreement {check.agreement * 100:.4f} %, {check.missed_high:,} missed HighLoad, "
                 f"{check.false_high:,} false HighLoad\nbackground: the policy's label (green Low, yellow Medium, "
                 "red High)")
    fig.savefig(path, dpi=90)
    plt.close(fig)
