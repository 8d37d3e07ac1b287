"""The images of `make images` into the node's containerd: `docker save`, then `ctr images import`.

No registry is reachable here, so the node gets its images the way `kind load` does it. Each save is
cached under `<cache>/images/node` by the image's id (a rebuilt image gets a new id, hence a new
archive; the previous archive of that image is removed), and the node remembers what it imported, so
importing again into the same node costs nothing. Pods use them with `imagePullPolicy: Never` or
`IfNotPresent` (the chart's default).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from stockpipe.paths import cache_dir
from stockpipe_dev.localservices.docker import DockerEngine, docker
from stockpipe_dev.localservices.imagebuild import CHART_TAG, IMAGES, TAG, Image, image_ref
from stockpipe_dev.localservices.kube.node import Node
from stockpipe_dev.localservices.process import ServiceError


def archive_dir() -> Path:
    path = cache_dir() / "images" / "node"
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_id(engine: DockerEngine, ref: str) -> str | None:
    """The engine's id of `ref` (sha256:...), or None when it has no such image."""
    output = docker(engine, "image", "inspect", "--format", "{{.Id}}", ref, check=False).strip()
    return output if output.startswith("sha256:") else None


def saved_archive(engine: DockerEngine, image: Image, identity: str) -> Path:
    """`docker save` of the image's two tags (`make images`' and the chart's), cached by the image id."""
    folder = archive_dir()
    target = folder / f"{image.name}-{identity.removeprefix('sha256:')[:16]}.tar"
    if target.exists():
        return target
    partial = target.with_suffix(".partial")
    refs = [image_ref(image, tag) for tag in dict.fromkeys((TAG, CHART_TAG))]
    docker(engine, "save", "--output", str(partial), *refs, timeout=600)
    partial.rename(target)
    for old in folder.glob(f"{image.name}-*.tar"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def import_images(
    node: Node, engine: DockerEngine, names: Sequence[str], echo: Callable[[str], None] = print
) -> dict[str, str]:
    """Import the named images (IMAGES' names) into the node; {name: image id}. Missing ones: ServiceError."""
    record = node.dir / "images.json"
    imported: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    by_name = {image.name: image for image in IMAGES}
    unknown = set(names) - set(by_name)
    if unknown:
        raise ServiceError(f"unknown image(s) {sorted(unknown)}; known: {sorted(by_name)}")
    result = {}
    for name in names:
        image = by_name[name]
        identity = image_id(engine, image_ref(image))
        if identity is None:
            raise ServiceError(f"no image {image_ref(image)} in the Docker engine: run `make images` first")
        if imported.get(name) != identity:
            node.import_image_file(saved_archive(engine, image, identity))
            imported[name] = identity
            record.write_text(json.dumps(imported, indent=2))
            echo(f"imported {image_ref(image)} ({identity[7:19]}) into the node")
        result[name] = identity
    return result


def import_built_images(node: Node, echo: Callable[[str], None] = print) -> list[str]:
    """At `cluster up --with-node`: import whichever of the four images the project's engine holds.

    Only when that engine already runs (it is not started for this); returns the names imported.
    """
    engine = DockerEngine.default()
    if not engine.answers():
        echo("no Docker engine answers: images not imported (`make images`, then `stockpipe cluster images`)")
        return []
    present = [image.name for image in IMAGES if image_id(engine, image_ref(image))]
    import_images(node, engine, present, echo)
    return present
