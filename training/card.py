"""model_card.md: what the model is, what it was trained on, how well it does, how to reproduce it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from perfwatch.checkpoint_meta import CheckpointMeta
from perfwatch.model_settings import TrainSettings
from perfwatch.template import render

# Settings that do not change what is learned: where it goes, resuming, threads, tracking.
_NOT_LEARNED = {"out", "resume", "threads", "report_to", "base_model", "from_scratch"}


def reproduce_command(cfg: dict[str, Any], lr: float | None = None) -> str:
    """The `perfwatch train` command that trains this model again: its source and every setting that changes
    what is learned, defaults included (a later default must not change what the line trains), with the
    learning rate actually used (``lr``) where the config left it to the shape. ``--flag=value`` keeps a
    value that starts with "-" a value; floats print in full (repr round-trips)."""
    parts = ["perfwatch train", f"--from-scratch={cfg['from_scratch']}" if cfg.get("from_scratch")
             else f"--base-model={shlex.quote(str(cfg['base_model']))}"]
    for name in TrainSettings.model_fields:
        if name in _NOT_LEARNED or name not in cfg:
            continue
        value, flag = cfg[name], "--" + name.replace("_", "-")
        if name == "lr" and value is None:
            value = lr
        if name == "data":
            parts += [f"--data={shlex.quote(str(p))}" for p in value]
        elif value is not None:
            parts.append(f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={shlex.quote(str(value))}")
    return " ".join(parts)


def write_card(path: Path, meta: CheckpointMeta) -> None:
    m = meta.metrics
    def lookup(r: dict[str, Any]) -> str:
        b = r.get("lookup_baseline")
        return f"{b['macro_f1']:.4f}" if b else "–"

    rows = "\n".join(
        f"| {name} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {lookup(r)} |"
        for name, r in m["slices"].items()
    )
    shared = m.get("texts_shared_with_train", {})
    dropped = m.get("dropped_shared_text", {})
    per_class = "\n".join(
        f"| {lab} | {v['precision']:.4f} | {v['recall']:.4f} | {v['support']} |"
        for lab, v in m["slices"]["test"]["per_class"].items()
    )
    how = reproduce_command(meta.config, meta.lr)
    shape = meta.shape
    path.write_text(f"""# perfwatch load classifier

Labels a performance-test sample as {', '.join(meta.labels)}.

- **Base**: `{meta.base_model}` — GPT2ForSequenceClassification, {shape['n_layer']} layers,
  {shape['n_embd']} wide, {shape['n_head']} heads, vocabulary {shape['vocab_size']},
  {shape['parameters']:,} parameters.
- **Input**: text template `{meta.template_version}` (e.g. `{render(91, 40, 12, meta.template_version)}`);
  tokens per sample: median {m['tokens_per_sample']['median']}, max {m['tokens_per_sample']['max']}.
- **Data**: hash `{meta.data_hash}`; examples per split and label: `{meta.data_summary}`.
  Runs never cross splits. Synthetic runs are labelled by the label policy of DESIGN.md.
- **Training**: {m['steps']} steps, {m['train_seconds']} s, best validation macro-F1
  {m['best_val_macro_f1']:.4f} at step {m['best_step']}, lr {meta.lr}, seed {meta.seed}.

## Evaluation

| slice | n | accuracy | macro-F1 | lookup baseline macro-F1 |
| --- | --- | --- | --- | --- |
{rows}

Test texts that also occur in training: **{shared.get('test', 'n/a')}** (validation: {shared.get('val', 'n/a')});
evaluation examples whose text occurred in training were dropped ({dropped.get('test', 0)} test,
{dropped.get('val', 0)} validation), so every number above is on inputs the model never saw. The
lookup baseline labels each test input like its nearest training input (no learning at all): the gap
between it and the model is what the model learned beyond remembering its neighbours.

Test split per class:

| label | precision | recall | support |
| --- | --- | --- | --- |
{per_class}

`boundary`: some metric within ±3 of a policy threshold. `seed_text`: examples that came from
seed-style text lines (`CPU Load: 90%, Memory: 95%, Disk: 95%`, memory sometimes in GB).
`coverage`: examples drawn over the policy's regions (each metric ≥ 90 alone, each two-of pair with the
third metric low / medium / high, each MediumLoad cause alone, LowLoad, uniform), weighted near thresholds.

The bundle's copy of this card (`model_card.md` in the bundle) adds the check against the label policy
over the inputs the model can see (`perfwatch evaluate BUNDLE --exhaustive`).

## Reproduce

```
{how}
```
""")
