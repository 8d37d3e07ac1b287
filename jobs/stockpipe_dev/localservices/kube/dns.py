"""The node's cluster DNS: Service names to ClusterIPs, read from the API server (CoreDNS's job in a cluster).

No CoreDNS image can be pulled here, and clients that find the API server by its name
(`kubernetes.default.svc`, as kopf's in-cluster login does) need one. This answers A queries for
`<service>.<namespace>.svc.cluster.local` (and the shorter forms a pod's search path produces) with
the Service's ClusterIP, AAAA with no address, anything else with NXDOMAIN (nothing upstream is
reachable). It listens on UDP on the bridge's gateway, the kubelet's `clusterDNS`; the Service list is
re-read at most once a second.

Run: `python -m stockpipe_dev.localservices.kube.dns --address 10.244.0.1 --kubeconfig <admin kubeconfig>`.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import time
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

CLUSTER_DOMAIN = "cluster.local"
TTL_S = 5


class ServiceTable:
    """ClusterIPs by Service name, from the API server (as the admin of the local cluster)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.token = config["users"][0]["user"]["token"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.table: dict[str, str] = {}
        self.read_at = 0.0

    def lookup(self, name: str) -> str | None:
        if time.monotonic() - self.read_at > 1.0:
            self.table = self._read()
            self.read_at = time.monotonic()
        return self.table.get(name)

    def _read(self) -> dict[str, str]:
        request = urllib.request.Request(  # noqa: S310 - our own API server
            f"{self.server}/api/v1/services", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=3, context=self.context) as response:  # noqa: S310
                services = json.loads(response.read())["items"]
        except OSError:
            return self.table  # the API server is restarting: keep answering from what was read
        return {
            f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.{CLUSTER_DOMAIN}.": s["spec"]["clusterIP"]
            for s in services
            if s["spec"].get("clusterIP") not in (None, "", "None")
        }


def answer(query: bytes, services: ServiceTable) -> bytes | None:
    """The response to one DNS query (None for a packet that is not a query)."""
    try:
        message = dns.message.from_wire(query)
    except Exception:  # any malformed packet: no answer, as a resolver does
        return None
    response = dns.message.make_response(message)
    response.flags |= dns.flags.AA
    if not message.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = message.question[0]
    address = services.lookup(question.name.to_text().lower())
    if address is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, TTL_S, "IN", "A", address))
    return response.to_wire()


def serve(address: str, port: int, kubeconfig: Path) -> None:
    services = ServiceTable(kubeconfig)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, port))
        while True:
            query, client = sock.recvfrom(4096)
            reply = answer(query, services)
            if reply is not None:
                sock.sendto(reply, client)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stockpipe_dev.localservices.kube.dns", description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.address, args.port, args.kubeconfig)


if __name__ == "__main__":
    main()
