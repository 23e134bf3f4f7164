"""Single-node Kafka broker for tests, benchmarks and local runs.

The broker is Apache Kafka 4.1.1 in KRaft mode, one JVM acting as both broker and
controller, listening on 127.0.0.1 only. Its jars come from Maven Central through
``mvn dependency:copy-dependencies`` and are cached between runs, so a machine
needs Java 17 or later and Maven, but no Kafka download.

This module uses only the standard library, so it works before the project's
Kafka client libraries are installed.

Command line::

    python -m riskstream.devbroker resolve          # fetch the jars only
    python -m riskstream.devbroker start [--dir DIR] # run until SIGINT/SIGTERM
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_JVM_OPTIONS",
    "KAFKA_POM",
    "KAFKA_VERSION",
    "LOG4J2_PROPERTIES",
    "BrokerStartError",
    "DevBrokerError",
    "KafkaBroker",
    "find_java",
    "java_major_version",
    "new_cluster_id",
    "render_server_properties",
    "resolve_jars",
]

logger = logging.getLogger("riskstream.devbroker")

KAFKA_VERSION = "4.1.1"
MIN_JAVA_VERSION = 17
"""Kafka 4.x brokers require Java 17 or later."""

CACHE_ENV_VAR = "RISKSTREAM_KAFKA_CACHE"
"""Environment variable that overrides the folder for the broker jars."""

DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx768m",
    "-Djava.awt.headless=true",
    "-XX:+ExitOnOutOfMemoryError",
)

MARKER_NAME = ".resolved.json"
"""File in the jar folder that resolve_jars writes after Maven succeeded."""

LOG_NAME = "kafka.log"
"""Broker log in the work directory. LOG4J2_PROPERTIES writes to the same name."""

# Same text as deploy/kafka/pom.xml, embedded so an installed package can resolve
# the jars without the source checkout. tests/unit/test_devbroker.py compares them.
KAFKA_POM = """\
<?xml version="1.0" encoding="UTF-8"?>
<!--
  Resolves the jars of a Kafka 4.1.1 broker (KRaft mode) for local runs and tests.
  Nothing is built from this project: riskstream.devbroker embeds a copy of this
  file and runs
    mvn -q -B -f pom.xml dependency:copy-dependencies -DoutputDirectory=LIB
  so `java -cp 'LIB/*' kafka.Kafka server.properties` can start a broker.
  Keep this file and KAFKA_POM in src/riskstream/devbroker.py identical
  (tests/unit/test_devbroker.py checks it).
-->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>riskstream</groupId>
  <artifactId>riskstream-kafka-broker</artifactId>
  <version>4.1.1</version>
  <packaging>pom</packaging>

  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <kafka.version>4.1.1</kafka.version>
    <!-- The log4j2 version that kafka-server 4.1.1 depends on. -->
    <log4j.version>2.24.3</log4j.version>
  </properties>

  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${kafka.version}</version>
    </dependency>
    <!--
      Kafka 4.1 logs through slf4j-api 1.7 and ships no binding in its pom, so
      without this jar the broker prints a StaticLoggerBinder warning and drops
      every log line. log4j-slf4j-impl is the log4j2 binding for slf4j 1.x.
    -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${log4j.version}</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>

  <build>
    <plugins>
      <!-- Pinned so Maven does not fall back to its default 2.8 release. -->
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <configuration>
          <includeScope>runtime</includeScope>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
"""

# Same text as deploy/kafka/log4j2.properties, for the same reason as KAFKA_POM.
LOG4J2_PROPERTIES = """\
# log4j2 configuration for the development broker (riskstream.devbroker).
# Writes WARN and above to ${kafka.logs.dir}/kafka.log, where kafka.logs.dir is a
# JVM system property (default: the working directory). Keep this file and
# LOG4J2_PROPERTIES in src/riskstream/devbroker.py identical.
status = warn
# Without this setting log4j2 stops its logging context in its own shutdown hook
# while Kafka's shutdown hook still logs, which prints a SimpleLogger warning.
shutdownHook = disable

appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir:-.}/kafka.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n

rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
"""

_MVN_TIMEOUT_S = 900.0
_FORMAT_TIMEOUT_S = 120.0
_START_ATTEMPTS = 3
"""Start attempts, because a free port picked by start() can be taken before the
broker binds it."""

_BIND_FAILURE = re.compile(r"BindException|Address already in use")
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class DevBrokerError(RuntimeError):
    """Error raised when the development broker cannot be set up or started."""


class BrokerStartError(DevBrokerError):
    """Error raised when the broker process exits or is not ready in time."""


# --------------------------------------------------------------------------
# Jar resolution


def _default_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_root) / "riskstream" / f"kafka-{KAFKA_VERSION}" / "lib"


def _pom_digest() -> str:
    return hashlib.sha256(KAFKA_POM.encode("utf-8")).hexdigest()


def _cache_is_complete(lib_dir: Path) -> bool:
    """Check the marker against the embedded pom and the jars it lists."""
    try:
        marker = json.loads((lib_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("pom_sha256") != _pom_digest():
        return False
    jars = marker.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    return all((lib_dir / str(name)).is_file() for name in jars)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on path, so parallel resolves run Maven once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_cache(lib_dir: Path) -> None:
    """Delete an incomplete jar folder, but only if it contains only jars."""
    if not lib_dir.exists():
        return
    foreign = [
        entry.name
        for entry in lib_dir.iterdir()
        if not (entry.is_file() and entry.suffix == ".jar")
        and entry.name != MARKER_NAME
    ]
    if foreign:
        raise DevBrokerError(
            f"Kafka jar folder {lib_dir} is incomplete and also contains files that "
            f"are not jars ({', '.join(sorted(foreign)[:5])}). Set {CACHE_ENV_VAR} to "
            "an empty or missing folder, or remove those files."
        )
    shutil.rmtree(lib_dir)


def _run_maven(mvn: str, pom: Path, output_dir: Path) -> None:
    command = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
    ]
    logger.info("Resolving Kafka %s jars with Maven into %s", KAFKA_VERSION, output_dir)
    try:
        result = subprocess.run(
            command,
            cwd=pom.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_MVN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DevBrokerError(
            f"Maven did not resolve the Kafka jars within {_MVN_TIMEOUT_S:.0f} s: "
            f"{' '.join(command)}"
        ) from exc
    if result.returncode != 0:
        output = _last_lines(result.stdout + result.stderr, 30)
        raise DevBrokerError(
            f"Maven failed with exit code {result.returncode} while resolving the "
            f"Kafka jars: {' '.join(command)}\n{output}"
        )


def resolve_jars(cache_dir: Path | None = None) -> Path:
    """Download the Kafka broker jars with Maven unless the cache is complete.

    Maven writes into a temporary folder next to the cache, which is renamed into
    place and then gets a marker file, so an interrupted run never looks complete.
    A cache whose marker matches the embedded pom is returned without running
    Maven. Parallel callers are serialised by a lock file next to the cache.

    Args:
        cache_dir: Folder for the jars. Defaults to the ``RISKSTREAM_KAFKA_CACHE``
            environment variable, else ``~/.cache/riskstream/kafka-4.1.1/lib``
            (``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set).

    Returns:
        The folder that contains the jars, ready for ``java -cp 'FOLDER/*'``.

    Raises:
        DevBrokerError: If Maven is missing, fails or times out, or if cache_dir
            is incomplete and contains files other than jars.
    """
    lib_dir = (cache_dir if cache_dir is not None else _default_cache_dir()).resolve()
    if _cache_is_complete(lib_dir):
        return lib_dir

    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(lib_dir.parent / f".{lib_dir.name}.lock"):
        # Another process may have finished the download while this one waited.
        if _cache_is_complete(lib_dir):
            return lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevBrokerError(
                "Maven ('mvn') was not found on PATH, and it is needed once to "
                f"download the Kafka {KAFKA_VERSION} jars into {lib_dir}. Install "
                "Maven 3.8 or later."
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{lib_dir.name}.", dir=lib_dir.parent))
        try:
            pom = staging / "pom.xml"
            pom.write_text(KAFKA_POM, encoding="utf-8")
            _run_maven(mvn, pom, staging / "lib")
            jars = sorted(path.name for path in (staging / "lib").glob("*.jar"))
            if not any(name.startswith(f"kafka_2.13-{KAFKA_VERSION}") for name in jars):
                raise DevBrokerError(
                    f"Maven succeeded but kafka_2.13-{KAFKA_VERSION}.jar is missing "
                    f"from {staging / 'lib'}"
                )
            _remove_stale_cache(lib_dir)
            os.replace(staging / "lib", lib_dir)
            marker: dict[str, object] = {
                "kafka_version": KAFKA_VERSION,
                "pom_sha256": _pom_digest(),
                "jars": jars,
            }
            (lib_dir / MARKER_NAME).write_text(json.dumps(marker, indent=1) + "\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("Resolved %d Kafka jars into %s", len(jars), lib_dir)
    return lib_dir


# --------------------------------------------------------------------------
# Java


def find_java() -> Path:
    """Locate the java launcher: ``$JAVA_HOME/bin/java``, else ``java`` on PATH.

    Raises:
        DevBrokerError: If JAVA_HOME is set but has no bin/java, or if no java is
            on PATH.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise DevBrokerError(
                f"JAVA_HOME is {java_home}, but {java} is missing or not executable. "
                "Point JAVA_HOME at a Java 17+ installation or unset it."
            )
        return java
    found = shutil.which("java")
    if found is None:
        raise DevBrokerError(
            "java was not found on PATH and JAVA_HOME is not set. Install Java "
            f"{MIN_JAVA_VERSION} or later to run the Kafka broker."
        )
    return Path(found)


def java_major_version(java: Path) -> int:
    """Run ``java -version`` and parse the major version (8 for "1.8.0_x").

    Raises:
        DevBrokerError: If java cannot be run or its output has no version.
    """
    try:
        result = subprocess.run(
            [str(java), "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevBrokerError(f"Running '{java} -version' failed: {exc}") from exc
    # java -version prints to stderr, and some builds print to stdout.
    output = result.stderr + result.stdout
    match = _JAVA_VERSION.search(output)
    if match is None:
        raise DevBrokerError(
            f"No version found in the output of '{java} -version': {output.strip()!r}"
        )
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def _checked_java(java: Path | None) -> Path:
    java = java if java is not None else find_java()
    major = java_major_version(java)
    if major < MIN_JAVA_VERSION:
        raise DevBrokerError(
            f"{java} is Java {major}, but Kafka {KAFKA_VERSION} needs Java "
            f"{MIN_JAVA_VERSION} or later. Set JAVA_HOME to a newer installation."
        )
    return java


# --------------------------------------------------------------------------
# Broker configuration


def new_cluster_id() -> str:
    """Generate a KRaft cluster id: 16 random bytes, URL-safe base64, no padding.

    Kafka's own ``Uuid.randomUuid()`` also skips ids that start with "-", because
    a command line parser would read them as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    node_id: int = 1,
    num_partitions: int = 4,
) -> str:
    """Render server.properties for a combined broker and controller on 127.0.0.1.

    Replication settings are 1 because the cluster has one node, and the initial
    rebalance delay is 0 so consumer groups in tests form at once.

    Args:
        port: Client (PLAINTEXT) listener port.
        controller_port: KRaft controller listener port.
        log_dir: Folder for topic data and the cluster metadata log.
        node_id: KRaft node id of the single node.
        num_partitions: Partitions of auto-created topics.

    Returns:
        The file content, one ``key=value`` per line.
    """
    host = "127.0.0.1"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": (
            f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        # Java properties files treat backslashes as escapes, so use forward slashes.
        "log.dirs": log_dir.as_posix(),
        "num.partitions": str(num_partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    lines = ["# Written by riskstream.devbroker."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _pick_free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free ports on 127.0.0.1.

    The sockets close before the broker binds, so another process can take a port
    in between. KafkaBroker.start() retries with new ports when that happens.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    return ports


# --------------------------------------------------------------------------
# Readiness check over the Kafka wire protocol


class _ProtocolError(Exception):
    pass


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise _ProtocolError("connection closed by the broker")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    """Cursor over a big-endian Kafka response body."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._offset)
        self._offset += struct.calcsize(fmt)
        return int(value)

    def skip_string(self) -> None:
        length = self.unpack(">h")
        self._offset += max(length, 0)


def _metadata_is_ready(host: str, port: int, timeout: float) -> bool:
    """Send one Metadata v4 request and check that it lists a broker and controller.

    Version 4 is the first with allow_auto_topic_creation, so the probe creates no
    topic, and it predates the tagged fields of version 9, so the encoding stays
    short. Kafka 4.1.1 accepts it, which the integration tests exercise.
    """
    api_key_metadata, api_version, correlation_id = 3, 4, 1
    client_id = b"riskstream-devbroker"
    header = struct.pack(
        ">hhih", api_key_metadata, api_version, correlation_id, len(client_id)
    )
    # Body: an empty topic array (no topics, not null meaning all topics), then
    # allow_auto_topic_creation=false.
    body = struct.pack(">i?", 0, False)
    request = header + client_id + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            reader = _Reader(_recv_exact(sock, size))
        if reader.unpack(">i") != correlation_id:
            return False
        reader.unpack(">i")  # throttle_time_ms
        broker_count = reader.unpack(">i")
        for _ in range(broker_count):
            reader.unpack(">i")  # node_id
            reader.skip_string()  # host
            reader.unpack(">i")  # port
            reader.skip_string()  # rack (nullable)
        reader.skip_string()  # cluster_id (nullable)
        controller_id = reader.unpack(">i")
    except (OSError, struct.error, _ProtocolError):
        return False
    return broker_count > 0 and controller_id >= 0


# --------------------------------------------------------------------------
# Broker process


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-count:])


def _tail(path: Path, count: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 64 * 1024, 0))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return _last_lines(text, count) or "(log is empty)"


def _parent_death_signal() -> Callable[[], None] | None:
    """Build a preexec_fn that makes Linux send SIGTERM to the child on our exit.

    Without it a broker outlives a test run that was killed. NOTE: Linux sends
    the signal when the thread that started the child exits, not the process, so
    start brokers from a thread that lives as long as they should.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_death_signal


class KafkaBroker:
    """Single-node Kafka broker in a subprocess, for tests and local runs.

    Use it as a context manager, or call start() and stop(). The broker keeps all
    its state (configuration, topic data, ``kafka.log``) in one work directory.

    Example::

        with KafkaBroker() as broker:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        keep: bool = False,
        jars_dir: Path | None = None,
        java: Path | None = None,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        num_partitions: int = 4,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        """Configure a broker without starting it.

        Args:
            workdir: Empty or missing folder for the broker's files. Defaults to
                a new temporary folder.
            keep: Keep the work directory after stop() instead of deleting it.
            jars_dir: Folder with the Kafka jars. Defaults to resolve_jars().
            java: java launcher. Defaults to find_java().
            jvm_options: JVM options placed before the main class, replacing
                DEFAULT_JVM_OPTIONS.
            num_partitions: Partitions of auto-created topics.
            startup_timeout: Seconds start() waits for the broker to serve a
                Metadata request, per attempt.
            stop_timeout: Seconds stop() waits after SIGTERM before SIGKILL.
        """
        self._requested_workdir = Path(workdir) if workdir is not None else None
        self.keep = keep
        self._jars_dir = jars_dir
        self._java = java
        self._jvm_options = tuple(jvm_options)
        self._num_partitions = num_partitions
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.cluster_id = new_cluster_id()

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers string for clients, ``"127.0.0.1:PORT"``."""
        if self._port is None or self._process is None:
            raise DevBrokerError("The broker is not running. Call start() first.")
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int:
        """Process id of the broker's JVM."""
        if self._process is None:
            raise DevBrokerError("The broker is not running. Call start() first.")
        return self._process.pid

    @property
    def workdir(self) -> Path:
        """Folder with server.properties, topic data and the log."""
        if self._workdir is None:
            raise DevBrokerError(
                "The broker has no work directory. Call start() first."
            )
        return self._workdir

    @property
    def log_path(self) -> Path:
        """Broker log: WARN and above from log4j2, plus the JVM's stdout/stderr."""
        return self.workdir / LOG_NAME

    def is_running(self) -> bool:
        """Check whether the broker process has been started and not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> KafkaBroker:
        """Start the broker and wait until it serves Metadata requests.

        Returns:
            This broker, so ``broker = KafkaBroker().start()`` works.

        Raises:
            DevBrokerError: If Java or the jars are unusable, the work directory
                is not empty, or storage formatting fails.
            BrokerStartError: If the broker exits or is not ready within
                startup_timeout seconds. The work directory is kept in that case,
                even without keep, so its log can be read.
        """
        if self._process is not None:
            raise DevBrokerError(f"The broker is already running with pid {self.pid}")
        jars_dir = self._jars_dir if self._jars_dir is not None else resolve_jars()
        java = _checked_java(self._java)
        self._workdir = self._create_workdir()
        started_at = time.monotonic()
        try:
            for attempt in range(1, _START_ATTEMPTS + 1):
                if self._launch(
                    java, jars_dir, last_attempt=attempt == _START_ATTEMPTS
                ):
                    break
                logger.warning(
                    "Kafka broker could not bind its ports (attempt %d of %d), so "
                    "start() retries with new ports. See %s",
                    attempt,
                    _START_ATTEMPTS,
                    self.log_path,
                )
        except BaseException:
            # Keep the work directory, because the error message points at its log.
            self._terminate()
            logger.error(
                "Kafka broker failed to start. Its work directory %s is kept.",
                self._workdir,
            )
            raise
        logger.info(
            "Kafka broker %s started in %.1f s (pid %d, work directory %s)",
            self.bootstrap,
            time.monotonic() - started_at,
            self.pid,
            self._workdir,
        )
        return self

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after stop_timeout seconds.

        Deletes the work directory unless keep is set. Calling stop() again, or
        on a broker that never started, does nothing.
        """
        self._terminate()
        if self._workdir is not None and not self.keep:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _create_workdir(self) -> Path:
        if self._requested_workdir is None:
            return Path(tempfile.mkdtemp(prefix="riskstream-kafka-")).resolve()
        workdir = self._requested_workdir.expanduser().resolve()
        if workdir.exists() and any(workdir.iterdir()):
            # A KRaft log stores the controller's address, so the old data would
            # not work with the new ports that start() picks.
            raise DevBrokerError(
                f"Broker work directory {workdir} is not empty. Remove it or choose "
                "a new folder."
            )
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir

    def _launch(self, java: Path, jars_dir: Path, *, last_attempt: bool) -> bool:
        """Configure, format and start one broker process and wait for it.

        Returns:
            True when the broker is ready, False when it failed to bind a port
            and last_attempt is false.
        """
        workdir = self.workdir
        data_dir = workdir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        port, controller_port = _pick_free_ports(2)
        properties = workdir / "server.properties"
        properties.write_text(
            render_server_properties(
                port=port,
                controller_port=controller_port,
                log_dir=data_dir,
                num_partitions=self._num_partitions,
            ),
            encoding="utf-8",
        )
        log4j_config = workdir / "log4j2.properties"
        log4j_config.write_text(LOG4J2_PROPERTIES, encoding="utf-8")
        classpath = f"{jars_dir}{os.sep}*"
        self._format_storage(java, classpath, properties)

        command = [
            str(java),
            *self._jvm_options,
            f"-Dkafka.logs.dir={workdir}",
            f"-Dlog4j2.configurationFile={log4j_config}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties),
        ]
        # log4j2 appends to the same file, and both writers open it in append
        # mode, so their lines interleave without overwriting each other.
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        self._port = port
        try:
            self._wait_until_ready(port)
        except BrokerStartError:
            if last_attempt or not _BIND_FAILURE.search(_tail(self.log_path, 200)):
                raise
            self._terminate()
            return False
        return True

    def _format_storage(self, java: Path, classpath: str, properties: Path) -> None:
        """Run ``kafka-storage.sh format --standalone`` via its main class."""
        command = [
            str(java),
            *self._jvm_options,
            f"-Dkafka.logs.dir={self.workdir}",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(properties),
            "--standalone",
        ]
        try:
            result = subprocess.run(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_FORMAT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DevBrokerError(
                f"Formatting Kafka storage timed out after {_FORMAT_TIMEOUT_S:.0f} s: "
                f"{' '.join(command)}"
            ) from exc
        if result.returncode != 0:
            output = _last_lines(result.stdout + result.stderr, 30)
            raise DevBrokerError(
                f"Formatting Kafka storage failed with exit code {result.returncode}: "
                f"{' '.join(command)}\n{output}"
            )

    def _wait_until_ready(self, port: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            exit_code = self._process.poll()
            if exit_code is not None:
                raise BrokerStartError(
                    f"Kafka broker exited with code {exit_code} during startup. "
                    f"See {self.log_path}. Last lines:\n{_tail(self.log_path)}"
                )
            if _metadata_is_ready("127.0.0.1", port, timeout=2.0):
                return
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"Kafka broker on 127.0.0.1:{port} did not respond to a Metadata "
                    f"request within {self._startup_timeout:.0f} s (timed out). See "
                    f"{self.log_path}. Last lines:\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "Kafka broker pid %d did not stop within %.0f s of SIGTERM; "
                    "sending SIGKILL",
                    process.pid,
                    self._stop_timeout,
                )
                process.kill()
                process.wait()
        logger.info(
            "Kafka broker pid %d stopped (exit code %s)",
            process.pid,
            process.returncode,
        )
        self._process = None
        self._port = None


# --------------------------------------------------------------------------
# Command line


def _run_start(args: argparse.Namespace) -> int:
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        logger.info("Received %s, stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    # A folder named on the command line is kept, so its log can be read later.
    broker = KafkaBroker(
        args.dir, keep=args.dir is not None, startup_timeout=args.timeout
    )
    try:
        broker.start()
    except DevBrokerError as exc:
        logger.error("%s", exc)
        return 1
    try:
        print(broker.bootstrap, flush=True)
        logger.info("Broker log: %s. Press Ctrl+C to stop.", broker.log_path)
        while not stop_requested.wait(1.0):
            if not broker.is_running():
                logger.error(
                    "Kafka broker pid %d exited unexpectedly. See %s. Last lines:\n%s",
                    broker.pid,
                    broker.log_path,
                    _tail(broker.log_path),
                )
                return 1
    finally:
        broker.stop()
    return 0


def _run_resolve(args: argparse.Namespace) -> int:
    try:
        lib_dir = resolve_jars(args.cache_dir)
    except DevBrokerError as exc:
        logger.error("%s", exc)
        return 1
    print(lib_dir, flush=True)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m riskstream.devbroker",
        description=f"Run a single-node Kafka {KAFKA_VERSION} broker on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser(
        "start",
        help="start a broker, print its bootstrap address, run until SIGINT/SIGTERM",
    )
    start.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="empty or missing work directory, kept after stop "
        "(default: a temporary folder deleted at stop)",
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker to become ready (default: 60)",
    )
    start.set_defaults(handler=_run_start)

    resolve = commands.add_parser(
        "resolve", help="download the broker jars with Maven and print their folder"
    )
    resolve.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"folder for the jars (default: ${CACHE_ENV_VAR}, else "
        f"~/.cache/riskstream/kafka-{KAFKA_VERSION}/lib)",
    )
    resolve.set_defaults(handler=_run_resolve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface and return its exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
