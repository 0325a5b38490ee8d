"""librdkafka speaks through Python logging: a 20 s broker outage under a running consumer is a handful
of stderr lines (down, back), not hundreds, and the consumer recovers on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from perfwatch.bench.harness import Topics, count, local_broker, outputs, produce, sample_value, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 20
HANDFUL = 8


def test_broker_outage_is_a_handful_of_lines_and_the_consumer_recovers(tiny_bundle: Path) -> None:
    with local_broker(1) as kafka:
        state = kafka.load_state()
        assert state is not None
        conf = {"bootstrap.servers": state.bootstrap}
        topics = Topics.fresh(conf)
        err = tempfile.NamedTemporaryFile("w+", prefix="perfwatch-consume-err-", suffix=".log")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "perfwatch.app.cli", "consume", "--bootstrap-servers", state.bootstrap,
             *topics.flags(), "--bundle", str(tiny_bundle), "--group-id", "outage-logging"],
            stdout=subprocess.DEVNULL, stderr=err, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            produce(conf, topics.samples, (sample_value(i, run="before") for i in range(200)))
            assert wait_until(lambda: outputs(conf, topics) >= 200, timeout=120), "no verdicts before the outage"
            kafka.stop()
            time.sleep(OUTAGE_S)
            kafka.start(timeout=120)
            produce(conf, topics.samples, (sample_value(i, run="after") for i in range(200, 400)))
            recovered = wait_until(lambda: outputs(conf, topics) >= 400, timeout=240)
            assert proc.poll() is None, "the consumer died during the outage"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        inputs, lost, _dup, _dlq = count(conf, topics)
        lines = [ln for ln in Path(err.name).read_text().splitlines() if ln.strip()]
        print(f"\n{len(lines)} stderr line(s) for a {OUTAGE_S} s outage:\n" + "\n".join(lines[:40]))
        assert recovered, "verdicts for the samples sent after the restart never arrived"
        assert (inputs, lost) == (400, 0)
        assert len(lines) <= HANDFUL, f"{len(lines)} stderr lines for one outage"
        text = "\n".join(lines)
        assert "broker down" in text and "broker back after" in text
