"""Security and bad-model scenarios: SASL/PLAIN end to end with credentials from the environment (never
printed), a wrong password failing fast, and a tampered bundle refused at start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perfwatch.bench.harness import Result, Topics, count, local_broker, sample_value
from perfwatch.tooling import SaslUser

USER, PASSWORD = "perfwatch-user", "s3cret-Pa55word"


def _cli(*args: str, env: dict[str, str], timeout: float = 300) -> tuple[int, str, float]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, **env}, check=False)
    return res.returncode, res.stdout + res.stderr, time.monotonic() - t0


def sasl_round_trip(bundle: Path, n: int = 500) -> Result:
    with local_broker(1, sasl_users=[SaslUser(USER, PASSWORD)]) as kafka:
        st = kafka.load_state()
        assert st is not None and st.sasl_bootstrap  # noqa: S101
        plain = {"bootstrap.servers": st.bootstrap}
        topics = Topics.fresh(plain)
        sasl_env = {"PERFWATCH_BOOTSTRAP_SERVERS": st.sasl_bootstrap, "PERFWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                    "PERFWATCH_SASL_MECHANISM": "PLAIN", "PERFWATCH_SASL_USERNAME": USER,
                    "PERFWATCH_SASL_PASSWORD": PASSWORD}
        rec = Path(tempfile.mkdtemp()) / "run.jsonl"
        rec.write_text("".join(sample_value(i, run="sasl")[1].decode() + "\n" for i in range(n)))
        outputs = []
        code1, out1, _ = _cli("replay", str(rec), "--speed", "max", "--no-progress", *topics.flags()[:2],
                              env=sasl_env)
        code2, out2, _ = _cli("consume", "--bundle", str(bundle), "--until-idle", "5", "--group-id", "sasl",
                              *topics.flags(), env=sasl_env)
        code3, out3, _ = _cli("alerts", "--from-beginning", "--until-idle", "3", "--alerts-topic", topics.alerts,
                              env=sasl_env)
        outputs += [out1, out2, out3]
        wrong = {**sasl_env, "PERFWATCH_SASL_PASSWORD": "wrong-password"}
        code4, out4, secs = _cli("consume", "--bundle", str(bundle), *topics.flags(), env=wrong, timeout=120)
        outputs.append(out4)
        inputs, lost, dup, dlq = count(plain, topics)
        leaked = any(PASSWORD in o or "wrong-password" in o for o in outputs)
        fast = code4 != 0 and secs < 30 and "authentication" in out4.lower()
        ok = code1 == code2 == 0 and code3 in (0, 1) and inputs == n and lost == 0 and fast and not leaked
        return Result("SASL/PLAIN: replay, consume, alerts with env credentials; wrong password", inputs, lost, dup,
                      dlq, ok, f"wrong password: exit {code4} after {secs:.1f}s; password printed: {leaked}")


def bad_bundle_refused(bundle: Path) -> Result:
    copy = Path(tempfile.mkdtemp()) / "bundle"
    shutil.copytree(bundle, copy)
    with (copy / "model.int8.onnx").open("r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, out, secs = _cli("consume", "--bundle", str(copy), "--bootstrap-servers", "127.0.0.1:1", env={},
                           timeout=60)
    ok = code != 0 and "model.int8.onnx" in out and "does not match the manifest" in out
    return Result("bundle with one changed byte", 1, 0, 0, 0, ok,
                  f"refused at start in {secs:.1f}s (exit {code}); no hot reload exists to test")


