"""The lake behind fsspec: a local directory (file://) or any S3 endpoint (s3://, MinIO included).

Writes are atomic: locally a temporary file renamed into place; on S3 a single PUT (or a completed
multipart upload), which S3 publishes whole. No reader ever sees half an object.

`write_new` is the fenced write of the stream's objects: the first write of a name wins and no later
one replaces it (S3: a conditional PUT, `If-None-Match: *`; locally: a hard link, which fails when the
name exists). A second write of identical bytes is a retry and succeeds as a no-op; different bytes
raise `ObjectConflict`: a writer that lost its partition (a zombie) can never overwrite its successor.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from stockpipe.settings import LakeSettings


class ObjectConflict(Exception):
    """The name is taken by an object with other bytes: another writer got there first."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} already exists with other content")
        self.key = key


def _precondition_failed(exc: BaseException) -> bool:
    """S3's 412 to a conditional PUT. s3fs maps it to FileExistsError only when the answer names the
    condition (AWS does, MinIO does not); otherwise an OSError whose cause is botocore's ClientError."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "PreconditionFailed"


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the lake root
    size: int
    etag: str  # S3's ETag, or mtime-size for local files: changes whenever the content does

    @classmethod
    def from_fsspec(cls, key: str, info: dict[str, Any]) -> ObjectInfo:
        """The one ETag rule: S3's ETag (unquoted), or mtime-size where the store has none (local files)."""
        etag = info.get("ETag") or info.get("etag") or f"{info.get('mtime', info.get('created', 0))}-{info['size']}"
        return cls(key=key, size=int(info["size"]), etag=str(etag).strip('"'))


class Lake:
    def __init__(self, settings: LakeSettings) -> None:
        self.settings = settings
        self.url = settings.url
        if settings.url.startswith("s3://"):
            self.fs: Any = fsspec.filesystem(
                "s3",
                key=settings.access_key.get_secret_value() if settings.access_key else None,
                secret=settings.secret_key.get_secret_value() if settings.secret_key else None,
                endpoint_url=settings.s3_endpoint_url,
                client_kwargs={"region_name": settings.region},
                skip_instance_cache=True,
                use_listings_cache=False,
            )
            self.root = settings.url.removeprefix("s3://").rstrip("/")
            self.is_local = False
        else:
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(settings.url.removeprefix("file://")).resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.is_local = True

    def path(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}"

    def key_of(self, path: str) -> str:
        return path.removeprefix(self.root).lstrip("/")

    def write_atomic(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())  # durable before the offsets that depend on it are committed
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(target, data)

    def write_new(self, key: str, data: bytes) -> bool:
        """Create `key` unless it exists: True if created, False if identical bytes were there already.

        Raises ObjectConflict if it holds other bytes (nothing is overwritten).
        """
        target = self.path(key)
        try:
            if self.is_local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                tmp = f"{target}.{uuid.uuid4().hex}.tmp"
                try:
                    with open(tmp, "wb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                    os.link(tmp, target)  # atomic and exclusive: FileExistsError if the name is taken
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            else:
                self.fs.pipe_file(target, data, mode="create")  # PUT with If-None-Match: *
            return True
        except FileExistsError:
            pass
        except OSError as exc:
            if not _precondition_failed(exc):
                raise
        if self.read(key) == data:
            return False  # a retry of a write that succeeded (e.g. its answer was lost)
        raise ObjectConflict(key)

    def read(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self.path(key))
        return data

    def info(self, key: str) -> ObjectInfo | None:
        """Size and etag of one object (as `walk` gives them), or None if it is absent."""
        try:
            found: dict[str, Any] = self.fs.info(self.path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo.from_fsspec(key, found)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def delete(self, key: str) -> None:
        self.fs.rm_file(self.path(key))

    def listdir(self, prefix: str) -> list[str]:
        """Immediate children (files and 'directories') of a prefix, as keys; empty if absent."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(self.key_of(e) for e in entries)

    def walk(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under a prefix with its size and etag, in key order; skips in-flight temporaries."""
        try:
            found = self.fs.find(self.path(prefix), detail=True)
        except FileNotFoundError:
            return
        for path, info in sorted(found.items()):
            if path.endswith(".tmp") or info.get("type") == "directory":
                continue
            yield ObjectInfo.from_fsspec(self.key_of(path), info)
