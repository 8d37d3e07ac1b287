"""Kafdrop and the dashboard through a real ingress controller, in a real browser (issue 24, its first part).

The chart installed on the local node as in test_chart_on_node, plus what `deploy.INGRESS_VALUES` adds:
Kafdrop (the image built here from its vendored source) and the Ingresses of the chart for the class of
the Traefik that `cluster up --with-node` installs, Kafdrop and the dashboard exposed explicitly. Debian's
Chromium, driven by Playwright, reaches them by host name through Traefik on this machine's port
(`--host-resolver-rules`, no /etc/hosts edit). Airflow in the cluster is not part of this yet.
"""

from __future__ import annotations

import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from stockpipe_dev.localservices.kube.deploy import INGRESS_HOST_SUFFIX, NodeDeployment, deployed_on_node
from stockpipe_dev.localservices.kube.ingress import WEB_PORT
from stockpipe_dev.localservices.kube.node import missing_for_node
from tests.integration.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = pytest.mark.e2e

NAMESPACE = "stockpipe-ingress"
PAGE_LOADS = 20


def url(ui: str, path: str = "/") -> str:
    return f"http://{ui}.{INGRESS_HOST_SUFFIX}:{WEB_PORT}{path}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeDeployment]:
    if missing := missing_for_node("dockerd"):
        pytest.skip(f"the node needs {', '.join(missing)} (.ci/prereqs.sh installs them; CI runs as root)")
    work = tmp_path_factory.mktemp("ingress-on-node")
    with deployed_on_node(work, namespace=NAMESPACE, ingress=True, echo=print) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `make prereqs` as root (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    # The ingress hosts resolve to this machine, where Traefik listens; nothing else is resolved.
    rules = f"--host-resolver-rules=MAP *.{INGRESS_HOST_SUFFIX} 127.0.0.1"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules])
        yield chromium
        chromium.close()


def through_ingress(ui: str, path: str = "/", timeout_s: float = 30) -> tuple[int, bytes]:
    """GET through Traefik with the UI's host name (what the browser sends)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{WEB_PORT}{path}", headers={"Host": f"{ui}.{INGRESS_HOST_SUFFIX}"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback
        return response.status, response.read()


def wait_routed(ui: str, path: str, timeout_s: float = 240) -> None:
    """Until Traefik routes the host to a Ready backend (Kafdrop's first answer takes ~30 s)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            if through_ingress(ui, path)[0] == 200:
                return
        except OSError as exc:
            last = exc
        time.sleep(2)
    pytest.fail(f"{ui}{path} not routed through the ingress within {timeout_s:.0f} s: {last}")


def page_p95(ui: str, path: str) -> float:
    seconds = []
    for _ in range(PAGE_LOADS):
        started = time.monotonic()
        status, _ = through_ingress(ui, path)
        assert status == 200
        seconds.append(time.monotonic() - started)
    return statistics.quantiles(seconds, n=20)[-1]


@pytest.mark.e2e_check("kafdrop_via_ingress")
def test_kafdrop_lists_the_topics_and_shows_a_quote(
    deployment: NodeDeployment, browser: Any, record_property: Any
) -> None:
    quotes = deployment.values["kafka"]["topics"]["quotes"]["name"]
    # One message of ours, to find by its content on Kafdrop's message page.
    producer = Producer({"bootstrap.servers": deployment.broker.bootstrap})
    delivered: list[int] = []
    producer.produce(quotes, key=b"ZZZZ", value=b'{"symbol": "ZZZZ", "price": 4242.5}', partition=0,
                     on_delivery=lambda err, msg: delivered.append(-1 if err else msg.offset()))  # fmt: skip
    assert producer.flush(30) == 0
    [offset] = delivered
    assert offset >= 0
    wait_routed("kafdrop", "/")
    page = browser.new_page()
    try:
        page.goto(url("kafdrop"), wait_until="load", timeout=60_000)
        topics = page.locator("a[href^='/topic/']").all_inner_texts()
        assert {t.strip() for t in topics} >= {quotes, deployment.values["kafka"]["topics"]["dlq"]["name"]}, topics
        page.screenshot(path=str(SCREENSHOTS / "ingress-kafdrop.png"), full_page=True)
        page.goto(url("kafdrop", f"/topic/{quotes}/messages?partition=0&offset={offset}&count=1"), wait_until="load")
        page.get_by_text("4242.5").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "ingress-kafdrop-messages.png"), full_page=True)
    finally:
        page.close()
    p95 = page_p95("kafdrop", "/")
    record_property("cluster.ingress_page_p95_s.kafdrop", round(p95, 3))
    record_property("detail", f"topics listed, the quote ZZZZ shown; page p95 {p95:.2f} s over {PAGE_LOADS} loads")


@pytest.mark.e2e_check("dashboard_via_ingress")
def test_the_dashboard_serves_its_pages(deployment: NodeDeployment, browser: Any, record_property: Any) -> None:
    wait_routed("dashboard", "/_stcore/health")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url("dashboard"), wait_until="load", timeout=60_000)
        # Streamlit's app: its websocket through the same ingress carries the page's content.
        page.locator("[data-testid='stSidebarNav']").wait_for(timeout=60_000)
        links = page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
        assert any("Market" in link for link in links), links
        page.locator("[data-testid='stSidebarNav'] a", has_text="Market").first.click()
        page.locator("[data-testid='stMainBlockContainer']").wait_for(timeout=60_000)
        time.sleep(3)  # the page's queries run after its skeleton shows
        page.screenshot(path=str(SCREENSHOTS / "ingress-dashboard.png"), full_page=True)
        assert not page.locator("[data-testid='stException']").count(), page.inner_text("body")[:2000]
    finally:
        page.close()
    assert not errors, errors
    p95 = page_p95("dashboard", "/")
    record_property("cluster.ingress_page_p95_s.dashboard", round(p95, 3))
    record_property("detail", f"pages served through the ingress, Market opened; page p95 {p95:.2f} s")


def test_traefik_routes_only_the_hosts_the_chart_declares(deployment: NodeDeployment) -> None:
    ingresses = deployment.kubectl.json("get", "ingress", "-n", NAMESPACE)["items"]
    hosts = {rule["host"] for item in ingresses for rule in item["spec"]["rules"]}
    assert hosts == {f"kafdrop.{INGRESS_HOST_SUFFIX}", f"dashboard.{INGRESS_HOST_SUFFIX}"}  # Airflow is off here
    assert {item["spec"]["ingressClassName"] for item in ingresses} == {"traefik"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        through_ingress("nothing-here")
    assert refused.value.code == 404
