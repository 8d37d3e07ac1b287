"""The Kafdrop and Traefik images of kube/addons.py run their workloads as their numeric users, read-only.

Kafdrop reads a local broker's topic and its JSON messages (and refuses Avro clearly: this build has no
Confluent serializers); Traefik answers its ping and reports its pinned version. Both run with the host's
network (the broker and the probes are on loopback) and only a tmpfs /tmp writable.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from stockpipe_dev.localservices.docker import DockerEngine, docker
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.kube.addons import (
    KAFDROP_UID,
    KAFDROP_VERSION,
    TRAEFIK_UID,
    TRAEFIK_VERSION,
    ensure_kafdrop_image,
    ensure_traefik_image,
)
from stockpipe_dev.localservices.process import free_port

pytestmark = pytest.mark.integration

CONTEXT_PATH = "/kafdrop"  # as behind the chart's ingress
FIRST_ANSWER_S = 120  # Kafdrop's first answer takes about 30 s on this machine


@pytest.fixture(scope="module")
def kafdrop_image(docker_engine: DockerEngine) -> str:
    return ensure_kafdrop_image(docker_engine)


@pytest.fixture(scope="module")
def traefik_image(docker_engine: DockerEngine) -> str:
    return ensure_traefik_image(docker_engine)


@contextmanager
def container(
    engine: DockerEngine, image: str, uid: int, args: list[str], env: dict[str, str] | None = None
) -> Iterator[str]:
    """A detached container as `uid`, read-only but for /tmp, on the host's network; removed by its id."""
    variables = [f"--env={key}={value}" for key, value in (env or {}).items()]
    cid = docker(
        engine,
        "run", "--detach", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--user", str(uid),
        "--cap-drop=ALL", "--security-opt=no-new-privileges", *variables, image, *args,
    ).strip()  # fmt: skip
    try:
        yield cid
    finally:
        docker(engine, "rm", "--force", cid, check=False)


def logs(engine: DockerEngine, cid: str) -> str:
    """The container's output (Kafdrop and Traefik log to stdout)."""
    return docker(engine, "logs", cid, check=False)


def describe(engine: DockerEngine, cid: str) -> str:
    """For assertion messages: the container's state and the tail of its output."""
    state = docker(engine, "inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}}", cid, check=False)
    return f"container {state.strip()}:\n{logs(engine, cid)[-4000:]}"


def get(url: str, accept: str = "application/json") -> tuple[int, str]:
    """Status and body; (0, reason) while nothing answers."""
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310  (loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def wait_for(url: str, engine: DockerEngine, cid: str, timeout: float = FIRST_ANSWER_S) -> str:
    deadline = time.monotonic() + timeout
    status, body = get(url)
    while status != 200 and time.monotonic() < deadline:
        if "running" not in docker(engine, "inspect", "--format", "{{.State.Status}}", cid, check=False):
            break
        time.sleep(2)
        status, body = get(url)
    assert status == 200, f"{url}: {status} {body[:300]}\n{describe(engine, cid)}"
    return body


def test_kafdrop_lists_the_topic_and_shows_its_json_messages(
    docker_engine: DockerEngine, kafdrop_image: str, kafka_broker: KafkaBroker
) -> None:
    topic = f"kafdrop-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})  # kept: its futures need the handle
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    quotes = [{"symbol": "AAPL", "price": 190.5}, {"symbol": "MSFT", "price": 410.25}, {"symbol": "NVDA", "price": 1.5}]
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for quote in quotes:
        producer.produce(topic, key=str(quote["symbol"]).encode(), value=json.dumps(quote).encode())
    assert producer.flush(30) == 0

    config = json.loads(docker(docker_engine, "image", "inspect", kafdrop_image))[0]["Config"]
    assert config["User"] == f"{KAFDROP_UID}:{KAFDROP_UID}"
    assert config["Labels"]["org.opencontainers.image.version"] == KAFDROP_VERSION

    ui, management = free_port(), free_port()
    # Configured as the chart configures the upstream image: Spring's variables, JVM_OPTS, CMD_ARGS.
    env = {
        "KAFKA_BROKERCONNECT": kafka_broker.bootstrap,
        "SERVER_PORT": str(ui),
        "SERVER_ADDRESS": "127.0.0.1",
        "MANAGEMENT_SERVER_PORT": str(management),
        "MANAGEMENT_SERVER_ADDRESS": "127.0.0.1",
        "JVM_OPTS": "-Xms32M -Xmx256M",
        "CMD_ARGS": f"--server.servlet.context-path={CONTEXT_PATH}",
    }
    with container(docker_engine, kafdrop_image, KAFDROP_UID, [], env) as cid:
        base = f"http://127.0.0.1:{ui}{CONTEXT_PATH}"
        topics = json.loads(wait_for(f"{base}/topic", docker_engine, cid))
        assert topic in [t["name"] for t in topics], topics
        # The management port serves health outside the UI's context path (the chart's probes use it).
        status, health = get(f"http://127.0.0.1:{management}/actuator/health")
        assert (status, json.loads(health)["status"]) == (200, "UP"), health
        # isAnyProto is required: upstream unboxes it unchecked (a NullPointerException without it).
        query = "partition=0&offset=0&count=10&isAnyProto=false"
        status, body = get(f"{base}/topic/{topic}/messages?{query}")
        assert status == 200, f"{status} {body[:500]}\n{describe(docker_engine, cid)}"
        messages = json.loads(body)
        assert [json.loads(m["message"]) for m in messages] == quotes
        assert [m["key"] for m in messages] == [q["symbol"] for q in quotes]
        # The HTML UI renders the topic too.
        status, page = get(f"{base}/topic/{topic}", accept="text/html")
        assert status == 200
        assert topic in page
        # Avro through a schema registry is refused with a message saying so, not a class-loading error.
        status, _ = get(f"{base}/topic/{topic}/messages?{query}&format=AVRO")
        assert status == 500
        assert "Avro messages through a schema registry are not supported" in logs(docker_engine, cid)
        assert "+#++:++#++:" in logs(docker_engine, cid)  # upstream's entrypoint script started it


def test_traefik_reports_its_version(docker_engine: DockerEngine, traefik_image: str) -> None:
    config = json.loads(docker(docker_engine, "image", "inspect", traefik_image))[0]["Config"]
    assert config["User"] == f"{TRAEFIK_UID}:{TRAEFIK_UID}"
    assert config["Entrypoint"] == ["traefik"]
    output = docker(docker_engine, "run", "--rm", "--network", "none", "--read-only", traefik_image, "version")
    assert f"Version:      {TRAEFIK_VERSION}" in output, output


def test_traefik_answers_its_ping(docker_engine: DockerEngine, traefik_image: str) -> None:
    port = free_port()
    args = ["--ping=true", f"--entryPoints.web.address=127.0.0.1:{port}", "--ping.entryPoint=web"]
    with container(docker_engine, traefik_image, TRAEFIK_UID, args) as cid:
        deadline = time.monotonic() + 30
        status, body = get(f"http://127.0.0.1:{port}/ping", accept="text/plain")
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            status, body = get(f"http://127.0.0.1:{port}/ping", accept="text/plain")
        assert (status, body) == (200, "OK"), describe(docker_engine, cid)
