"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from perfwatch.app.cli import build_parser, main
from perfwatch.settings import ConsumerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_services_images_and_healthchecks() -> None:
    services = COMPOSE["services"]
    assert set(services) >= {"kafka", "topics", "consumer", "replay"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "healthcheck" in services["kafka"] and "kafka-data:/var/lib/kafka/data" in services["kafka"]["volumes"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["consumer"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["consumer"]["build"]["target"] == "consumer"
    assert services["replay"]["profiles"] == ["replay"]
    assert "HEALTHCHECK" in DOCKERFILE and "/healthz" in DOCKERFILE
    assert "/healthz" in " ".join(services["consumer"]["healthcheck"]["test"])


def test_env_names_are_settings_the_code_reads() -> None:
    fields = {f"PERFWATCH_{name.upper()}" for name in ConsumerSettings.model_fields}
    for name, svc in COMPOSE["services"].items():
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("PERFWATCH_"):
                assert key in fields, f"{name}: {key} is not a setting"
    consumer_env = COMPOSE["services"]["consumer"]["environment"]
    s = ConsumerSettings(**{k.removeprefix("PERFWATCH_").lower(): v for k, v in consumer_env.items()})
    assert s.metrics_port == 9108 and s.bootstrap_servers == "kafka:19092"


def test_consumer_command_is_one_the_cli_accepts() -> None:
    cmd = COMPOSE["services"]["consumer"]["command"]
    args = build_parser().parse_args(cmd)  # raises SystemExit on an unknown flag
    assert args.command == "consume"
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    replay = build_parser().parse_args(COMPOSE["services"]["replay"]["command"])
    assert replay.command == "replay"


def test_dockerfile_is_slim_non_root_exec_form() -> None:
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.M)
    assert re.search(r"^USER perfwatch", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["perfwatch"]' in DOCKERFILE  # exec form: perfwatch is PID 1 and receives SIGTERM
    consumer_stage = DOCKERFILE.split("AS consumer", 1)[1]
    assert 'pip install ".[consumer]"' in consumer_stage and "torch" not in consumer_stage


def test_docker_compose_config_when_the_client_can() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                         check=False).returncode != 0:
        pytest.skip("no docker compose client here")
    res = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_consumer_environment_as_the_dockerfile_builds_it(tmp_path: Path) -> None:
    """Same requirement set as the image (`pip install ".[consumer]"`), in a fresh venv: the contract imports
    with the base install alone; the consumer imports and its CLI works with no torch or transformers."""
    extras = re.search(r'AS consumer.*?pip install "\.(\[[a-z,]+\])"', DOCKERFILE, re.S)
    assert extras is not None
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # The base install alone first: every module of the contract imports with it.
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)],
                             capture_output=True, text=True, timeout=900, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    contract = sorted(f"perfwatch.{f.stem}" for f in (ROOT / "perfwatch").glob("*.py") if f.stem != "__init__")
    res = subprocess.run([str(py), "-c", f"import {', '.join(contract)}"], capture_output=True, text=True,
                         timeout=120, check=False, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{ROOT}{extras.group(1)}"],
                             capture_output=True, text=True, timeout=900, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    code = ("import importlib.util as u, sys, perfwatch.consumer.processor, perfwatch.runtime.model, perfwatch.app.cli;"
            "assert u.find_spec('torch') is None and u.find_spec('transformers') is None, 'torch present';"
            "sys.argv=['perfwatch','consume','--help']; perfwatch.app.cli.main()")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, check=False,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--guarantee" in res.stdout


def test_image_copies_every_folder_of_the_layout_but_the_benchmarks() -> None:
    import tomllib

    layout = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["perfwatch"]["layout"]
    copied = set(re.findall(r"^COPY (\S+) \./", DOCKERFILE, re.M))
    assert copied >= {folder for folder in layout.values() if folder != "bench"}
    assert "bench" not in copied and "setup.py" in DOCKERFILE
