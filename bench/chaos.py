"""Reliability scenarios with exact counts, against real brokers: what `perfwatch chaos` runs (long form)
and tests/reliability runs (short form). Every scenario ends with lost / duplicated / DLQ counts.

Counting: every input message is identified by (partition, offset) on the samples topic; every verdict
carries its source offset. lost = inputs without a verdict (or DLQ record), duplicated = extra verdicts.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from perfwatch.bench.harness import (
    Result,
    Supervised,
    Topics,
    at_least,
    committed,
    consume_process,
    count,
    group_coordinator,
    local_broker,
    outputs,
    produce,
    sample_value,
    wait_until,
)


def consumer_crashes(bootstrap: str, bundle: Path, guarantee: str, n: int = 20_000, kills: int = 5,
                     seed: int = 1) -> Result:
    conf = {"bootstrap.servers": bootstrap}
    topics = Topics.fresh(conf)
    produce(conf, topics.samples, (sample_value(i) for i in range(n)))
    rng = random.Random(seed)
    group = f"chaos-{uuid.uuid4().hex[:8]}"
    flags = ["--group-id", group, "--guarantee", guarantee, "--batch-size", "64"]
    if guarantee == "exactly-once":
        # One instance at a time, restarted under the same id: it fences its killed predecessor and
        # aborts that one's open transaction at start (what the README recommends for deployments).
        flags += ["--transactional-id", f"{group}-0"]
    stalls = 0
    for _ in range(kills):
        proc = consume_process(bootstrap, topics, bundle, *flags)
        # At most n: outputs count redeliveries too, so a target past n may never come once the inputs
        # are all answered (seen in CI: a 300 s wait in a run that was otherwise done in 40 s). Every input
        # gets at least one output, so n always comes; not reaching it is a stall.
        target = min(n, outputs(conf, topics) + rng.randint(n // (kills * 4), n // (kills * 2)))
        if not wait_until(at_least(conf, topics, target), timeout=300):
            stalls += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    final = consume_process(bootstrap, topics, bundle, *flags, "--until-idle", "8")
    final.wait(900)
    inputs, lost, dup, dlq = count(conf, topics)
    ok = lost == 0 and (dup == 0 if guarantee == "exactly-once" else True) and inputs == n and stalls == 0
    notes = [f"{stalls} stalls"] if stalls else []
    if guarantee == "at-least-once" and dup:
        notes.append("duplicates allowed by at-least-once")
    return Result(f"consumer SIGKILLed ×{kills} ({guarantee})", inputs, lost, dup, dlq, ok, "; ".join(notes))


def broker_restart(bundle: Path, n: int = 6000, rate: float = 600.0) -> Result:
    """A single node stopped and started mid-stream; the consumer recovers on its own."""
    with local_broker(1) as kafka:
        state = kafka.load_state()
        assert state is not None  # noqa: S101
        conf = {"bootstrap.servers": state.bootstrap}
        topics = Topics.fresh(conf)
        proc = consume_process(state.bootstrap, topics, bundle, "--group-id", "chaos-restart",
                               "--guarantee", "at-least-once")
        producer = threading.Thread(target=produce, args=(conf, topics.samples, (sample_value(i) for i in range(n)),
                                                          rate), daemon=True)
        producer.start()
        wait_until(lambda: outputs(conf, topics) > n // 4, timeout=120)
        kafka.stop()
        time.sleep(5)
        kafka.start(timeout=120)
        producer.join(600)
        wait_until(lambda: outputs(conf, topics) >= n, timeout=300)
        time.sleep(3)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        inputs, lost, dup, dlq = count(conf, topics)
        return Result("broker stopped/started mid-stream", inputs, lost, dup, dlq,
                      lost == 0 and inputs == n and alive, "consumer never restarted" if alive else "consumer died")


def coordinator_loss(bundle: Path, runs: int = 10, n: int = 1000, rate: float = 100.0) -> Result:
    """3 nodes, RF 3, min ISR 2, exactly-once. In each run (fresh topics and group) the broker that coordinates
    the consumer's group, found with the admin API, is SIGKILLed and restarted 8 s later, or SIGSTOPped for 20 s,
    alternately, mid-stream. librdkafka can hang inside ``send_offsets_to_transaction`` when the coordinator
    dies: the consumer then exits on its watchdog's deadline and a supervisor restarts it, as Kubernetes
    would. Every run must end with every input answered once, and none may hang."""
    with local_broker(3) as kafka:
        state = kafka.load_state()
        assert state is not None  # noqa: S101
        conf = {"bootstrap.servers": state.bootstrap}
        inputs = lost = dup = dlq = restarts = hung = 0
        slowest = 0.0
        for run in range(runs):
            fault = "SIGKILL" if run % 2 == 0 else "SIGSTOP"
            topics = Topics.fresh(conf, partitions=3, replication=3)
            group = f"chaos-coord-{uuid.uuid4().hex[:6]}"
            sup = Supervised(lambda t=topics, g=group: consume_process(  # type: ignore[misc]
                state.bootstrap, t, bundle, "--group-id", g, "--guarantee", "exactly-once"))
            producer = threading.Thread(target=produce, args=(conf, topics.samples,
                                                              (sample_value(i) for i in range(n)), rate), daemon=True)
            producer.start()
            try:
                wait_until(lambda t=topics: outputs(conf, t) > n // 4, timeout=180)  # type: ignore[misc]
                victim = group_coordinator(conf, group)
                hit = time.monotonic()
                if fault == "SIGKILL":
                    kafka.kill_node(victim)
                    time.sleep(8)
                    kafka.start_node(victim, timeout=180)
                else:
                    kafka.freeze_node(victim, 20)
                producer.join(600)
                # Done means every input committed by the group, not outputs on the topics (under exactly-once
                # those run ahead: transaction markers and aborted records count there too).
                if not wait_until(lambda t=topics, g=group: committed(conf, g, t.samples) >= n,  # type: ignore[misc]
                                  timeout=300):
                    hung += 1
                slowest = max(slowest, time.monotonic() - hit)
                time.sleep(2)
            finally:
                sup.stop()
            counts = count(conf, topics)
            inputs, lost, dup, dlq = (a + b for a, b in zip((inputs, lost, dup, dlq), counts, strict=True))
            restarts += sup.restarts
        ok = lost == 0 and dup == 0 and hung == 0 and inputs == runs * n
        return Result(f"3-node cluster, group coordinator SIGKILLed/SIGSTOPped ×{runs} (exactly-once)",
                      inputs, lost, dup, dlq, ok,
                      f"consumer exited and was restarted {restarts}×; {hung} runs hung; "
                      f"slowest run done {slowest:.0f}s after its fault")


def scale_in_out(bootstrap: str, bundle: Path, n: int = 12_000, rate: float = 800.0) -> Result:
    conf = {"bootstrap.servers": bootstrap}
    topics = Topics.fresh(conf, partitions=6)
    group = f"chaos-scale-{uuid.uuid4().hex[:6]}"
    flags = ["--group-id", group, "--guarantee", "at-least-once", "--batch-size", "32"]
    procs = [consume_process(bootstrap, topics, bundle, *flags) for _ in range(3)]
    producer = threading.Thread(target=produce, args=(conf, topics.samples, (sample_value(i) for i in range(n)),
                                                      rate), daemon=True)
    producer.start()
    steps = [("join", None), ("leave", 0), ("leave", 1), ("join", None)]
    for k, (what, idx) in enumerate(steps):
        wait_until(at_least(conf, topics, n * (k + 1) // (len(steps) + 2)), timeout=300)
        if what == "join":
            procs.append(consume_process(bootstrap, topics, bundle, *flags))
        else:
            victim = procs[idx]  # type: ignore[index]
            victim.send_signal(signal.SIGTERM)
            victim.wait(60)
    producer.join(600)
    wait_until(lambda: outputs(conf, topics) >= n, timeout=300)
    time.sleep(3)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(60)
    inputs, lost, dup, dlq = count(conf, topics)
    return Result("3 consumers on 6 partitions, 2 join and 2 leave", inputs, lost, dup, dlq,
                  lost == 0 and inputs == n, "duplicates allowed by at-least-once" if dup else "")


def run_all(long: bool = True) -> list[Result]:
    """The long form, on freshly started local brokers (what `perfwatch chaos` runs)."""
    from perfwatch.bench.bundle import ensure_bench_bundle
    from perfwatch.console import console

    bundle = ensure_bench_bundle("tiny")
    results = []
    scale = 1 if long else 5
    with local_broker(1) as kafka:
        st = kafka.load_state()
        assert st is not None  # noqa: S101
        for guarantee in ("exactly-once", "at-least-once"):
            console.print(f"scenario: consumer crashes ({guarantee}) …")
            results.append(consumer_crashes(st.bootstrap, bundle, guarantee, 20_000 // scale, 5 if long else 3))
        console.print("scenario: scale in/out …")
        results.append(scale_in_out(st.bootstrap, bundle, 12_000 // scale))
        from perfwatch.bench.fuzz import bad_input_at_volume

        console.print("scenario: bad input at volume …")
        results.append(bad_input_at_volume(st.bootstrap, bundle, 10_000 // scale))
    console.print("scenario: broker restart …")
    results.append(broker_restart(bundle, 6000 // scale))
    console.print("scenario: 3-node cluster loses its group coordinator …")
    results.append(coordinator_loss(bundle, runs=10 if long else 2))
    from perfwatch.bench.security import bad_bundle_refused, sasl_round_trip

    console.print("scenario: bad model …")
    results.append(bad_bundle_refused(bundle))
    console.print("scenario: SASL …")
    results.append(sasl_round_trip(bundle))
    return results


def table(results: list[Result]) -> str:
    rows = ["| scenario | messages | lost | duplicated | DLQ | result |", "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| {r.scenario} | {r.messages} | {r.lost} | {r.duplicated} | {r.dlq} | "
             f"{'pass' if r.ok else 'FAIL'}{' — ' + r.note if r.note else ''} |" for r in results]
    return "\n".join(rows)


def to_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)


def run_and_save(long: bool, out: Path) -> list[Result]:
    """Run every scenario and write the results as JSON to ``out``."""
    results = run_all(long=long)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(results))
    return results
