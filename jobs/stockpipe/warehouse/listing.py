"""Listing the lake for a load, at a cost that follows new data rather than history where the store allows.

On S3 (ListObjectsV2 returns size and ETag with the key, a thousand per request) a load lists each
dataset only from the `dt=` directory `lookback_days` before the newest one it has loaded (S3's
StartAfter): new objects land in the newest partitions, so the listing, and the ledger rows it is
compared with (those of the listed directories only), follow new data, not history. A dataset with
nothing loaded yet is listed whole, and so is every dataset when asked for a full listing
(`stockpipe load bronze --listing full`: what the history DAGs' runs do, since a backfill of an old
range writes under that range's last day; also a cheap safety net once a day).

On a local lake each `dt=` directory's modification time is compared with the one noted when that
directory was last fully loaded: writes to the lake are atomic renames into the directory, and a
rename changes the directory's mtime, so an unchanged directory holds no new or rewritten object
and is not listed. A directory modified within the last RACY_NS before it was looked at is never
noted (the clock behind file times is coarse; a write in the same tick would otherwise go unseen),
so it is listed again next time - the same rule git uses for "racily clean" files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from stockpipe.lake.layout import parse_dt_dir
from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.warehouse.datasets import Dataset, ObjectName, parse_object_key

log = logging.getLogger(__name__)

RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class LakeObject:
    info: ObjectInfo
    name: ObjectName

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def dir(self) -> str:
        return self.info.key.rsplit("/", 1)[0]


@dataclass
class Listing:
    objects: list[LakeObject] = field(default_factory=list)
    # Directories whose objects were listed; None: every directory of the datasets was listed.
    listed_dirs: list[str] | None = None
    # Directories to note as loaded (dir key -> mtime_ns) once every object listed in them is loaded.
    settled: dict[str, int] = field(default_factory=dict)
    skipped_dirs: int = 0
    ignored_keys: int = 0


def dir_of(key: str) -> str:
    return key.rsplit("/", 1)[0]


def _objects(infos: Iterable[ObjectInfo], listing: Listing) -> None:
    for info in infos:
        name = parse_object_key(info.key)
        if name is None:
            listing.ignored_keys += 1
            continue
        listing.objects.append(LakeObject(info, name))


def start_after(dataset: Dataset, newest_dir: str | None, lookback_days: int) -> str | None:
    """The key an S3 listing of the dataset starts after: the prefix of its recent partitions, or None (all)."""
    newest = parse_dt_dir(newest_dir) if newest_dir else None
    if newest is None:
        return None
    # Directory "…/dt=D" sorts right before its own keys ("…/dt=D/…"): they are all listed.
    return f"{dataset.prefix}/dt={(newest - timedelta(days=lookback_days)).isoformat()}"


def s3_objects(lake: Lake, prefix: str, after: str | None) -> Iterator[ObjectInfo]:
    """Keys under a prefix (after `after`, if given) with size and ETag: ListObjectsV2, 1,000 a request."""
    bucket, _, root = lake.root.partition("/")
    base = f"{root}/" if root else ""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{base}{prefix}/"}
    if after is not None:
        kwargs["StartAfter"] = f"{base}{after}"
    while True:
        page = lake.fs.call_s3("list_objects_v2", **kwargs)
        for item in page.get("Contents", []):
            key = str(item["Key"]).removeprefix(base)
            if not key.endswith(".tmp"):
                yield ObjectInfo(key=key, size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"'))
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def list_lake(
    lake: Lake,
    datasets: Iterable[Dataset],
    noted: Mapping[str, int],
    newest_dirs: Mapping[str, str] | None = None,
    lookback_days: int = 2,
) -> Listing:
    """Objects of the datasets that may be new or changed.

    `noted`: directories the target recorded as loaded (local lakes); `newest_dirs`: per dataset, the
    newest directory the target has loaded (S3; None lists everything).
    """
    listing = Listing() if not lake.is_local else _list_local(lake, datasets, noted)
    if not lake.is_local:
        for dataset in datasets:
            after = start_after(dataset, (newest_dirs or {}).get(dataset.name), lookback_days)
            _objects(s3_objects(lake, dataset.prefix, after), listing)
        # The ledger is read for the listed directories only: its recent part.
        listing.listed_dirs = sorted({o.dir for o in listing.objects})
    if listing.ignored_keys:
        log.warning("ignored %d lake keys that are no dataset's objects", listing.ignored_keys)
    return listing


def _list_local(lake: Lake, datasets: Iterable[Dataset], noted: Mapping[str, int]) -> Listing:
    listing = Listing(listed_dirs=[])
    assert listing.listed_dirs is not None
    for dataset in datasets:
        base = Path(lake.path(dataset.prefix))
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if not entry.is_dir() or parse_dt_dir(entry.name) is None:
                continue
            looked_at = time.time_ns()
            mtime_ns = entry.stat().st_mtime_ns  # before listing: a later write changes it
            dir_key = f"{dataset.prefix}/{entry.name}"
            if noted.get(dir_key) == mtime_ns:
                listing.skipped_dirs += 1
                continue
            _objects(lake.walk(dir_key), listing)
            listing.listed_dirs.append(dir_key)
            if mtime_ns < looked_at - RACY_NS:
                listing.settled[dir_key] = mtime_ns
    return listing
