"""Start, stop and inspect a local Apache Kafka (KRaft) on loopback: one node, or three for fault tests.

Everything about a cluster lives in its data dir: ``cluster.json`` (cluster id, ports, pids), one
``server.properties``, log and ``data/`` per node. Ports are chosen free once and kept, so a
restarted broker comes back at the same address with its data.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from perfwatch.errors import InputError
from perfwatch.tooling.jars import BrokerSetupError, cache_root, ensure_jars, kafka_version, log4j_config


def default_data_dir() -> Path:
    """Where `perfwatch broker` keeps its cluster unless told: $PERFWATCH_BROKER_DIR, else the user's cache
    ($PERFWATCH_CACHE/broker, ~/.cache/perfwatch/broker): the same broker from any working directory."""
    given = os.environ.get("PERFWATCH_BROKER_DIR")
    return (Path(given).expanduser() if given else cache_root() / "broker").absolute()


@dataclass(frozen=True)
class SaslUser:
    username: str
    password: str


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    sasl_port: int | None = None
    pid: int | None = None


@dataclass
class ClusterState:
    cluster_id: str
    nodes: list[Node]
    sasl_users: list[SaslUser] = field(default_factory=list)
    kafka_version: str = ""

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def sasl_bootstrap(self) -> str | None:
        if not self.sasl_users:
            return None
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self.nodes)


def new_cluster_id() -> str:
    """A KRaft cluster id (base64url of a random UUID). Like Kafka's Uuid.randomUuid(), never one that
    starts with '-': StorageTool would take `-t -Xyz…` for an option and refuse to format."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class LocalKafka:
    def __init__(self, data_dir: Path, nodes: int = 1, sasl_users: list[SaslUser] | None = None,
                 heap_mb: int = 512) -> None:
        if nodes not in (1, 3):
            raise InputError("the local broker runs 1 node, or 3 for fault tests")
        self.data_dir = Path(data_dir).absolute()
        self.requested_nodes = nodes
        self.sasl_users = sasl_users or []
        self.heap_mb = heap_mb
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- state ----------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.data_dir / "cluster.json"

    def load_state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        raw = json.loads(self.state_file.read_text())
        return ClusterState(
            cluster_id=raw["cluster_id"],
            nodes=[Node(**n) for n in raw["nodes"]],
            sasl_users=[SaslUser(**u) for u in raw.get("sasl_users", [])],
            kafka_version=raw.get("kafka_version", ""),
        )

    def _save(self, state: ClusterState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self.state_file)

    def _new_state(self) -> ClusterState:
        cluster_id = new_cluster_id()
        nodes = [
            Node(node_id=i + 1, port=free_port(), controller_port=free_port(),
                 sasl_port=free_port() if self.sasl_users else None)
            for i in range(self.requested_nodes)
        ]
        return ClusterState(cluster_id, nodes, list(self.sasl_users), kafka_version())

    # -- configuration --------------------------------------------------------------------------
    def _node_dir(self, node: Node) -> Path:
        return self.data_dir / f"node-{node.node_id}"

    def _properties(self, state: ClusterState, node: Node) -> str:
        n = len(state.nodes)
        voters = ",".join(f"{x.node_id}@127.0.0.1:{x.controller_port}" for x in state.nodes)
        listeners = [f"PLAINTEXT://127.0.0.1:{node.port}", f"CONTROLLER://127.0.0.1:{node.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        protocol_map = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self._node_dir(node) / 'data'}",
            f"num.partitions={1 if n == 1 else 3}",
            f"default.replication.factor={n}",
            f"min.insync.replicas={1 if n == 1 else 2}",
            "offsets.topic.num.partitions=1",
            f"offsets.topic.replication.factor={n}",
            f"transaction.state.log.replication.factor={n}",
            f"transaction.state.log.min.isr={1 if n == 1 else 2}",
            "transaction.state.log.num.partitions=4",
            f"share.coordinator.state.topic.replication.factor={n}",
            f"share.coordinator.state.topic.min.isr={1 if n == 1 else 2}",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.dedupe.buffer.size=8388608",
            "auto.create.topics.enable=true",
            # Roomy enough for the 1 MB payloads of the bad-input tests (they must reach the DLQ path).
            "message.max.bytes=2097152",
            "replica.fetch.max.bytes=2097152",
        ]
        if state.sasl_users and node.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}")
            protocol_map += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            users = " ".join(f'user_{u.username}="{u.password}"' for u in state.sasl_users)
            lines += [
                "sasl.enabled.mechanisms=PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            ]
        lines += [
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            f"listener.security.protocol.map={protocol_map}",
        ]
        return "\n".join(lines) + "\n"

    def _java(self, lib: Path) -> list[str]:
        return ["java", f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
                f"-Dlog4j2.configurationFile={log4j_config()}", "-cp", f"{lib}/*"]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> ClusterState:
        """Start every node (formatting storage the first time) and wait until metadata answers."""
        lib = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state = self.load_state() or self._new_state()
        if len(state.nodes) != self.requested_nodes and self.state_file.exists():
            raise BrokerSetupError(
                f"{self.data_dir} holds a {len(state.nodes)}-node cluster; use another --data-dir")
        self._save(state)
        for node in state.nodes:
            if not _alive(node.pid):
                self._launch(state, node, lib)
        self._save(state)
        self.wait_ready(state, timeout)
        return state

    def _launch(self, state: ClusterState, node: Node, lib: Path) -> None:
        ndir = self._node_dir(node)
        ndir.mkdir(parents=True, exist_ok=True)
        props = ndir / "server.properties"
        props.write_text(self._properties(state, node))
        if not (ndir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [*self._java(lib), "kafka.tools.StorageTool", "format", "-t", state.cluster_id,
                 "-c", str(props), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise BrokerSetupError(f"formatting node {node.node_id} failed:\n{fmt.stdout}{fmt.stderr}")
        log = (ndir / "broker.log").open("ab")
        proc = subprocess.Popen(
            [*self._java(lib), "kafka.Kafka", str(props)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI that started it; stopped by pid
        )
        log.close()
        self._procs[node.node_id] = proc
        node.pid = proc.pid

    def wait_ready(self, state: ClusterState | None = None, timeout: float = 90.0) -> None:
        state = state or self.load_state()
        if state is None:
            raise BrokerSetupError(f"no broker in {self.data_dir}")
        deadline = time.monotonic() + timeout
        alive = [n for n in state.nodes if _alive(n.pid)]
        last: Exception | None = None
        # First the TCP port (quietly), then a real metadata request through the Kafka protocol.
        while time.monotonic() < deadline and not any(_port_open(n.port) for n in alive):
            time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": state.bootstrap, "log_level": 0,
                             "socket.connection.setup.timeout.ms": 2000})
        while time.monotonic() < deadline:
            for node in state.nodes:
                if node.pid and not _alive(node.pid) and node in alive:
                    raise BrokerSetupError(f"broker node {node.node_id} exited; see {self._node_dir(node)}/broker.log")
            try:
                md = admin.list_topics(timeout=2)
                if len(md.brokers) >= len(alive):
                    return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last = exc
            time.sleep(0.3)
        raise BrokerSetupError(f"broker not ready after {timeout:.0f}s ({last}); see {self.data_dir}/node-*/broker.log")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node; False when there was nothing to stop (no cluster here, or none running)."""
        state = self.load_state()
        if state is None:
            return False
        running = any(_alive(n.pid) for n in state.nodes)
        for node in state.nodes:
            self._signal(node, signal.SIGTERM)
        for node in state.nodes:
            self._wait_exit(node, timeout)
            node.pid = None
        self._save(state)
        return running

    def _signal(self, node: Node, sig: signal.Signals) -> None:
        if node.pid and _alive(node.pid):
            try:
                os.kill(node.pid, sig)
            except ProcessLookupError:
                pass

    def _wait_exit(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while node.pid and _alive(node.pid) and time.monotonic() < deadline:
            self._reap(node)
            time.sleep(0.1)
        if node.pid and _alive(node.pid):
            self._signal(node, signal.SIGKILL)
            while _alive(node.pid):
                self._reap(node)
                time.sleep(0.05)
        self._reap(node)

    def _reap(self, node: Node) -> None:
        proc = self._procs.get(node.node_id)
        if proc is not None:
            proc.poll()

    def kill_node(self, node_id: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Fault injection: signal one node (SIGKILL by default) and wait until it is gone."""
        state = self._require_state()
        node = next(n for n in state.nodes if n.node_id == node_id)
        self._signal(node, sig)
        self._wait_exit(node, 30.0)
        node.pid = None
        self._save(state)

    def freeze_node(self, node_id: int, seconds: float) -> None:
        """Fault injection: SIGSTOP one node for ``seconds`` (a long GC pause, a stalled VM), then SIGCONT.
        Its sockets stay open, so clients see silence rather than refused connections."""
        node = next(n for n in self._require_state().nodes if n.node_id == node_id)
        self._signal(node, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self._signal(node, signal.SIGCONT)

    def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        state = self._require_state()
        node = next(n for n in state.nodes if n.node_id == node_id)
        if not _alive(node.pid):
            self._launch(state, node, ensure_jars(verbose=False))
            self._save(state)
        self.wait_ready(state, timeout)

    def _require_state(self) -> ClusterState:
        state = self.load_state()
        if state is None:
            raise BrokerSetupError(f"no broker in {self.data_dir}")
        return state

    def status(self) -> dict[str, object]:
        state = self.load_state()
        if state is None:
            return {"running": False, "data_dir": str(self.data_dir)}
        nodes = [{"node_id": n.node_id, "port": n.port, "pid": n.pid, "alive": _alive(n.pid)} for n in state.nodes]
        return {
            "running": any(n["alive"] for n in nodes),
            "bootstrap": state.bootstrap,
            "sasl_bootstrap": state.sasl_bootstrap,
            "kafka_version": state.kafka_version,
            "data_dir": str(self.data_dir),
            "nodes": nodes,
        }

    def broker_version_line(self) -> str | None:
        """The 'Kafka version: X' line the broker logged, for proof that a real broker ran."""
        state = self.load_state()
        if state is None:
            return None
        for node in state.nodes:
            log = self._node_dir(node) / "broker.log"
            if log.exists():
                for line in log.read_text(errors="replace").splitlines():
                    if "Kafka version:" in line:
                        return line.strip()
        return None
