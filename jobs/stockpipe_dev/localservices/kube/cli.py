"""`stockpipe cluster up|down|status`: a local Kubernetes control plane (etcd, API server, controllers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

cluster_app = typer.Typer(help="A local Kubernetes cluster built from source (control plane on loopback).")
console = Console(stderr=True)

RootOption = Annotated[
    Path | None,
    typer.Option("--root", envvar="STOCKPIPE_CLUSTER_DIR", help="The cluster's folder (default: <state dir>/cluster)."),
]


@cluster_app.command("up")
def cluster_up(
    root: RootOption = None,
    with_node: Annotated[
        bool,
        typer.Option(
            "--with-node",
            help="Also a node: containerd, CNI bridge, kubelet, scheduler, kube-proxy, Traefik as ingress (root).",
        ),
    ] = False,
) -> None:
    """Build the binaries once (~30 min cold), start etcd, kube-apiserver and kube-controller-manager."""
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane

    plane = ControlPlane(root, echo=console.print)
    info = plane.up(with_node=with_node)
    if with_node:
        from stockpipe_dev.localservices.docker import running_engine
        from stockpipe_dev.localservices.kube.images import import_built_images
        from stockpipe_dev.localservices.kube.ingress import install_ingress_controller
        from stockpipe_dev.localservices.kube.kindload import ensure_kind_loader
        from stockpipe_dev.localservices.kube.node import Node

        import_built_images(Node(plane.layout, echo=console.print), echo=console.print)
        with running_engine() as engine:  # Traefik's image is built (once) and loaded with it
            install_ingress_controller(plane, engine, echo=console.print)
        # skaffold loads its images through `kind load docker-image` (the context is kind-stockpipe-local).
        typer.echo(f"export PATH={ensure_kind_loader(plane.layout).parent}:$PATH")
    typer.echo(f"export KUBECONFIG={info.kubeconfig}")


@cluster_app.command("images")
def cluster_images(
    root: RootOption = None,
    names: Annotated[list[str] | None, typer.Argument(help="Images by name (default: all four).")] = None,
) -> None:
    """Import the images of `make images` into the running node's containerd (cached by image id)."""
    from stockpipe_dev.localservices.docker import running_engine
    from stockpipe_dev.localservices.imagebuild import IMAGES
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane
    from stockpipe_dev.localservices.kube.images import import_images
    from stockpipe_dev.localservices.kube.node import Node

    plane = ControlPlane(root, echo=console.print)
    if not plane.running("containerd"):
        console.print("[red]no node runs: `stockpipe cluster up --with-node` first[/]")
        raise typer.Exit(1)
    with running_engine() as engine:
        import_images(Node(plane.layout), engine, names or [image.name for image in IMAGES], echo=console.print)


@cluster_app.command(
    "skaffold", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
)
def cluster_skaffold(ctx: typer.Context, root: RootOption = None) -> None:
    """skaffold (built once from its vendored source) on this cluster, in the skaffold.yaml of the current
    folder (else the repository's): `stockpipe cluster skaffold dev --port-forward`. Its profile local-node
    gets the images' bases and wheelhouse; dev/run/deploy/delete also the node's `kind` loader and the
    broker and MinIO the chart's local-node values name, which stay up (for the pods a `run` leaves) until
    `stockpipe cluster down`."""
    from stockpipe_dev.localservices.imagebuild import repo_root
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane
    from stockpipe_dev.localservices.kube.skaffold import DEPLOYING_COMMANDS, run_skaffold, skaffold_session

    args = list(ctx.args)
    workdir = Path.cwd() if (Path.cwd() / "skaffold.yaml").is_file() else repo_root()
    plane = ControlPlane(root, echo=console.print)
    deploys = bool(args) and args[0] in DEPLOYING_COMMANDS
    with skaffold_session(plane, plane.layout.root / "skaffold", workdir, deploys, echo=console.print) as env:
        code = run_skaffold(args, env, workdir)
    raise typer.Exit(code)


@cluster_app.command("down")
def cluster_down(root: RootOption = None) -> None:
    """Stop every component by its recorded pid and remove the cluster's data (logs stay)."""
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane

    ControlPlane(root, echo=console.print).down()


@cluster_app.command("status")
def cluster_status(root: RootOption = None) -> None:
    """Ask each component whether it is healthy; exit 1 if any is not."""
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane

    plane = ControlPlane(root, echo=console.print)
    table = Table("component", "healthy", "detail")
    results = plane.status()
    for name, (ok, detail) in results.items():
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", detail)
    Console().print(table)
    if info := plane.info():
        Console().print(f"KUBECONFIG={info.kubeconfig}")
    if not all(ok for ok, _ in results.values()):
        raise typer.Exit(1)
