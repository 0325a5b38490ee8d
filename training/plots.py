"""Training pictures: curves over steps, the process's CPU and memory, the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training(history: Sequence[dict[str, float]], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    steps = [h["step"] for h in history]
    panels = (("loss", "training loss"), ("lr", "learning rate"), ("grad_norm", "gradient norm (before clipping)"))
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        ax.plot(steps, [h[key] for h in history], lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0, 0].set_yscale("log")
    evals = [h for h in history if "val_macro_f1" in h]
    ax = axes[1, 1]
    ax.plot([h["step"] for h in evals], [h["val_macro_f1"] for h in evals], marker="o", ms=3)
    ax.set_title("validation macro-F1")
    ax.set_xlabel("step")
    ax.set_ylim(min([0.9] + [h["val_macro_f1"] for h in evals]) - 0.01, 1.002)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_resources(samples: Sequence[tuple[float, float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.5), constrained_layout=True)
    if samples:
        t, cpu, rss = zip(*samples, strict=True)
        ax.plot(t, cpu, color="tab:blue", label="CPU % (100 = one core)")
        ax.set_ylabel("CPU %")
        ax2 = ax.twinx()
        ax2.plot(t, rss, color="tab:red", label="RSS MiB")
        ax2.set_ylabel("RSS MiB")
    ax.set_xlabel("seconds")
    ax.set_title("training process: CPU and memory")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5), constrained_layout=True)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(r) for r in cm) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    ax.set_title("test split")
    fig.savefig(path, dpi=110)
    plt.close(fig)
