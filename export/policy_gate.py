"""Check a bundle against the label policy, record the result in the bundle (manifest + model card),
and refuse to ship one that misses HighLoad.

The check covers the whole input cube when that is quick on this machine (the tiny shape: seconds),
and otherwise every input within ±3 of the policy's decision surface plus a uniform sample; a missed
HighLoad (the policy fires, the model is silent) is the worst error this product can make.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfwatch.bundle import CARD, CHECK_DIR, Precision, read_manifest, write_manifest
from perfwatch.console import console
from perfwatch.export.evaluate import (
    PolicyCheck,
    card_section,
    cube_points,
    evaluate_points,
    format_check,
    gate_points,
    measure_rate,
    precisions_of,
    read_disagreements,
    stratified_points,
    uniform_points,
    write_outputs,
)
from perfwatch.model_settings import Scope
from perfwatch.template import INPUTS


@dataclass(frozen=True)
class GateSettings:
    scope: Scope = "auto"  # auto: the cube when it takes at most max_seconds here, else surface + sample
    uniform_sample: int = 20_000  # uniform inputs added to the decision surface (scope surface)
    max_seconds: float = 150.0
    allow_missed_high: bool = False  # ship anyway, with a warning


class MissedHighLoad(RuntimeError):
    """The bundle is silent on inputs where the policy fires HighLoad."""


def check_bundle(bundle: Path, precision: Precision, exhaustive: bool, uniform_sample: int = 20_000,
                 seed: int = 0, extra: np.ndarray | None = None, stratified: int | None = None) -> PolicyCheck:
    """The whole cube (exhaustive); else the HighLoad decision surface ±3 plus a uniform sample, or, when
    ``extra`` inputs are given (another precision's disagreements), those plus the uniform sample.
    Written into the bundle: ``policy-check/`` (summary, every disagreeing input, picture), the
    manifest's ``metrics.policy_check`` and the model card."""
    if exhaustive:
        check = evaluate_points(bundle, cube_points(), precision, "cube")
    elif stratified is not None:
        # The other precision's recorded disagreements (e.g. int8's whole-cube check) plus the sample.
        other = "fp32" if precision == "int8" else "int8"
        known = read_disagreements(bundle / CHECK_DIR / f"policy-check-{other}-disagreements.csv")
        pts = np.unique(np.concatenate([stratified_points(stratified, seed), known]), axis=0)
        check = evaluate_points(bundle, pts, precision, "stratified+disagreements")
    elif extra is not None:
        pts = np.unique(np.concatenate([uniform_points(uniform_sample, seed), extra.astype(np.int16)]), axis=0)
        check = evaluate_points(bundle, pts, precision, "disagreements+uniform")
    else:
        check = evaluate_points(bundle, gate_points(uniform_sample, seed), precision, "surface+uniform")
    record(bundle, check)
    return check


def record(bundle: Path, check: PolicyCheck) -> None:
    paths = write_outputs(check, bundle / CHECK_DIR)
    manifest = read_manifest(bundle)
    metrics = dict(manifest.metrics)
    checks = dict(metrics.get("policy_check", {}))
    checks[check.precision] = check.summary()
    metrics["policy_check"] = checks
    write_manifest(bundle, manifest.model_copy(update={"metrics": metrics}))
    card = bundle / CARD
    text = card.read_text() if card.exists() else "# perfwatch load classifier\n"
    section = card_section(check, f"{CHECK_DIR}/{paths['picture'].name}")
    begin, end = f"<!-- policy-check:{check.precision} -->", f"<!-- /policy-check:{check.precision} -->"
    block = f"{begin}\n{section}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    card.write_text(text)


def gate(bundle: Path, settings: GateSettings = GateSettings()) -> dict[str, PolicyCheck]:
    """Check the bundle's first precision (int8, what the consumer runs by default) on the chosen scope,
    and any other (fp32: twice as slow) on the first one's disagreements plus the uniform sample; raise
    MissedHighLoad (listing the inputs) unless allowed."""
    first, *rest = precisions_of(bundle)
    exhaustive = settings.scope == "cube"
    if settings.scope == "auto":
        rate = measure_rate(bundle, first)
        estimate = INPUTS / rate
        exhaustive = estimate <= settings.max_seconds
        console.print(f"policy check: {rate:,.0f} inputs/s here, the whole cube would take ~{estimate:,.0f} s → "
                      + ("the whole cube" if exhaustive else f"the HighLoad surface ±3 + {settings.uniform_sample:,} "
                                                             "uniform inputs"))
    checks: dict[str, PolicyCheck] = {first: check_bundle(bundle, first, exhaustive, settings.uniform_sample)}
    for p in rest:
        checks[p] = check_bundle(bundle, p, False, settings.uniform_sample, extra=checks[first].disagreements[:, :3])
    for c in checks.values():
        for line in format_check(c):
            console.print(line)
    missed = {p: c.missed_high_inputs() for p, c in checks.items() if c.missed_high}
    if missed:
        listing = "; ".join(f"{p}: {len(v):,} inputs, e.g. " + ", ".join(f"cpu {a} mem {b} disk {d}"
                                                                       for a, b, d in v[:10])
                            for p, v in missed.items())
        message = (f"the bundle misses HighLoad where the label policy fires ({listing}); every one is listed in "
                   f"policy-check-PRECISION-disagreements.csv")
        if not settings.allow_missed_high:
            raise MissedHighLoad(message)
        console.print(f"[bold yellow]warning:[/] {message} (shipped anyway: --allow-missed-highload)")
    return checks
