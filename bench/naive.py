"""The naive baseline, what the seed scripts do: poll one message, run a `transformers`
text-classification pipeline on torch for that one sample, produce the verdict, next message.
Same checkpoint, same template, same broker."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from perfwatch.bench.harness import Topics, produce
from perfwatch.bench.pipeline import payloads
from perfwatch.checkpoint_meta import read_checkpoint_meta
from perfwatch.template import render


def naive_throughput(conf: dict[str, Any], checkpoint: Path, n: int) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    torch.set_num_threads(torch.get_num_threads())  # torch's default: all cores, as a seed would run it
    version = read_checkpoint_meta(checkpoint).template_version
    clf = pipeline("text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device="cpu")
    topics = Topics.fresh(conf, 3, prefix="bench", broker_time=True)
    produce(conf, topics.samples, payloads(n, seed=23))
    c = Consumer({**conf, "group.id": f"naive-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    p = Producer(conf)
    c.subscribe([topics.samples])
    done, t0 = 0, None
    while done < n:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        if t0 is None:
            t0 = time.perf_counter()
        s = json.loads(msg.value() or b"{}")
        out = clf(render(s["cpu_pct"], s["mem_pct"], s["disk_pct"], version))[0]
        p.produce(topics.predictions, json.dumps({**s, "label": out["label"], "confidence": out["score"]}),
                  msg.key())
        p.poll(0)
        done += 1
    p.flush(30)
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return {"samples": n, "samples_per_s": n / elapsed if elapsed > 0 else 0.0}
