"""A single-node KRaft Apache Kafka broker from its Maven Central jars."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.process import ProcessRecord, ServiceError, port_in_use, spawn, terminate, wait_until
from stockpipe_dev.localservices.toolchain import require
from stockpipe_dev.localservices.versions import KAFKA_VERSION

_POM = Path(__file__).with_name("kafka-pom.xml")

_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def ensure_kafka_jars() -> Path:
    """Kafka's broker jars, resolved once from Maven Central into the cache."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    mvn = require("mvn", "install Maven 3.8+ (Debian: apt-get install maven)")
    require("java", "install Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    staging = Path(tempfile.mkdtemp(prefix="kafka-libs-", dir=cache_dir()))
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(_POM),
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceError(f"could not fetch Kafka {KAFKA_VERSION} jars from Maven Central:\n{result.stdout[-3000:]}")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(libs)
    return libs


@dataclass
class KafkaBroker:
    data_dir: Path
    port: int
    controller_port: int
    heap: str = "768m"
    # The client listener's address (also the advertised one): loopback unless pods on a bridge need it.
    host: str = "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    def _properties(self) -> Path:
        props = self.data_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "data"),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "message.max.bytes": "2097152",
        }
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return props

    def start(self) -> ProcessRecord:
        libs = ensure_kafka_jars()
        java = require("java", "install Java 17")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._properties()
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.data_dir / "server.log"))
        classpath = f"{libs}/*"
        jvm = [java, f"-Xmx{self.heap}", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        if not (self.data_dir / "data" / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # StorageTool would read a leading dash as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(props)],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise ServiceError(f"Kafka storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
        pid = spawn([*jvm, "kafka.Kafka", str(props)], self.log_file)
        wait_until(self.ready, 90, "Kafka broker", pid=pid, log=self.data_dir / "server.log")
        return ProcessRecord(
            name="kafka",
            pid=pid,
            log_file=str(self.log_file),
            ports={"broker": self.port, "controller": self.controller_port},
            extra={"bootstrap": self.bootstrap, "data_dir": str(self.data_dir)},
        )

    def ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_in_use(self.port, self.host):  # keeps librdkafka from logging refused connections while Java starts
            return False
        metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
        return bool(metadata.brokers)

    @staticmethod
    def stop(record: ProcessRecord) -> None:
        terminate(record.pid, grace_s=30)
