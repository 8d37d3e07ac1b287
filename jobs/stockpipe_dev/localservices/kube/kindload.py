"""`kind load docker-image` for the local node: how skaffold's images reach it, as they reach a kind node.

skaffold loads the images it built only into clusters it takes for local ones; for a kube context named
`kind-<name>` it runs `kind load docker-image --name <name> <tag>` per image (after skipping those the
nodes already list). The local cluster's admin context is `kind-stockpipe-local` (layout.ADMIN_CONTEXT),
and `cluster up --with-node` writes `<cluster dir>/bin/kind`, which runs this: `docker save` of the tag
from the project's engine (the one skaffold builds with here), then `ctr images import` into the node's containerd,
as kind does into its node containers. Only that subcommand exists here; any other exits 2 saying so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from stockpipe_dev.localservices.docker import DockerEngine, docker
from stockpipe_dev.localservices.kube.layout import ADMIN_CONTEXT, Layout, default_root
from stockpipe_dev.localservices.process import ServiceError

CLUSTER_NAME = ADMIN_CONTEXT.removeprefix("kind-")
_LAUNCHER = """#!/bin/sh
# stockpipe's local cluster: `kind load docker-image` into this cluster's node (what skaffold runs for a
# kind-* context). Not kind: only that subcommand exists. Written by `stockpipe cluster up --with-node`.
STOCKPIPE_CLUSTER_DIR={root} exec {python} -m stockpipe_dev.localservices.kube.kindload "$@"
"""


def ensure_kind_loader(layout: Layout) -> Path:
    """`<cluster dir>/bin/kind`, the launcher skaffold finds on PATH; returns its path."""
    launcher = layout.root / "bin" / "kind"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    text = _LAUNCHER.format(root=layout.root, python=sys.executable)
    if not launcher.exists() or launcher.read_text() != text:
        launcher.write_text(text)
        launcher.chmod(0o755)
    return launcher


def load_images(layout: Layout, engine: DockerEngine, tags: list[str]) -> None:
    """Each tag, saved from the engine, into the node's containerd (what `kind load docker-image` does)."""
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane
    from stockpipe_dev.localservices.kube.node import Node

    if not ControlPlane(layout.root).running("containerd"):
        raise ServiceError(f"no node runs in {layout.root}: `stockpipe cluster up --with-node` first")
    node = Node(layout)
    with tempfile.TemporaryDirectory(prefix="kindload-") as scratch:
        for tag in tags:
            archive = Path(scratch) / "image.tar"
            docker(engine, "save", "--output", str(archive), tag, timeout=600)
            node.import_image_file(archive)
            archive.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kind", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load").add_subparsers(dest="what", required=True)
    images = load.add_parser("docker-image", help="load images from the Docker engine into the node")
    images.add_argument("--name", default=CLUSTER_NAME, help=f"the cluster (this one is {CLUSTER_NAME!r})")
    images.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    if args.name != CLUSTER_NAME:
        print(f"kind: no cluster {args.name!r} here; the local cluster is {CLUSTER_NAME!r}", file=sys.stderr)
        return 1
    root = os.environ.get("STOCKPIPE_CLUSTER_DIR")
    layout = Layout(Path(root) if root else default_root())
    try:
        load_images(layout, DockerEngine.default(), args.images)
    except ServiceError as exc:
        print(f"kind: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
