"""The mirror's file side: atomic, change-only writes with the kubelet's file mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stockpipe.operator.configmap_mirror import FILE_MODE, write_atomically

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def test_writes_then_skips_identical_content(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "watchlist.json"
    assert write_atomically(target, '{"symbols": ["AAPL"]}\n') is True
    assert target.read_text(encoding="utf-8") == '{"symbols": ["AAPL"]}\n'
    inode = target.stat().st_ino
    assert write_atomically(target, '{"symbols": ["AAPL"]}\n') is False
    assert target.stat().st_ino == inode  # untouched: a watcher of the file sees no change
    assert write_atomically(target, '{"symbols": []}\n') is True
    assert target.stat().st_ino != inode  # replaced, not rewritten in place


def test_file_mode_and_no_temporary_files_left(tmp_path: Path) -> None:
    target = tmp_path / "watchlist.json"
    write_atomically(target, "{}\n")
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watchlist.json"]


def test_a_failed_replace_keeps_the_old_file_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "watchlist.json"
    write_atomically(target, "old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new\n")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watchlist.json"]
