"""`stockpipe bench images`: each image's size, its Python environment's size, cold and warm build times.

Cold: `docker build --no-cache` of the image's target (its builder stages included; the base image and
the wheelhouse are already in the cache, as they are after one `make images`). Warm: the same build
again with the layer cache, as after a change that touches no dependency. Both with the local engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.docker import DockerEngine, docker
from stockpipe_dev.localservices.imagebuild import IMAGES, build_all, image_ref


def python_env_mb(engine: DockerEngine, ref: str) -> float:
    """Size of /opt/venv (the dependency set) inside the image, from `du` run in it."""
    out = docker(engine, "run", "--rm", "--network=none", "--read-only", "--entrypoint", "du", ref, "-sk", "/opt/venv")
    return round(int(out.split()[0]) / 1024, 1)


def image_size_mb(engine: DockerEngine, ref: str) -> float:
    return round(int(docker(engine, "image", "inspect", "--format", "{{.Size}}", ref).strip()) / 1e6, 1)


def run_images_bench(out: Path, cold: bool = True) -> dict[str, Any]:
    engine = DockerEngine.default()
    record = engine.start()
    try:
        build_all(engine)  # base, wheelhouse and every layer in place before timing anything
        results: dict[str, dict[str, float | None]] = {}
        for image in IMAGES:
            cold_s = build_all(engine, [image.name], no_cache=True)[0].seconds if cold else None
            warm_s = build_all(engine, [image.name])[0].seconds
            ref = image_ref(image)
            results[image.name] = {
                "size_mb": image_size_mb(engine, ref),
                "python_env_mb": python_env_mb(engine, ref),
                "build_s_cold": round(cold_s, 1) if cold_s is not None else None,
                "build_s_warm": round(warm_s, 1),
            }
    finally:
        if record is not None:
            engine.stop(record)
    result: dict[str, Any] = {
        "images": results,
        "method": "docker image inspect Size; du -sk /opt/venv in the image; cold = docker build --no-cache of "
        "the target with base and wheelhouse cached; warm = the same build with the layer cache",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "images.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
