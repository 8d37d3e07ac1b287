"""The producer's watchlist file (a mounted ConfigMap or a file on one machine), re-read when it changes."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from stockpipe.contracts.watchlist import Watchlist

log = logging.getLogger("stockpipe.watchlist")


class WatchlistFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self._digest = ""
        self._lock = threading.Lock()  # the quote loop and the websocket thread both poll
        self.current = self._load()  # a bad file at start fails the start, with the reason
        self.reloads = 0

    def _stat(self) -> tuple[int, int, int]:
        # os.stat follows the ..data symlink that a ConfigMap volume swaps atomically on update.
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_ino, st.st_size

    def _load(self) -> Watchlist:
        self._signature = self._stat()
        raw = self.path.read_bytes()
        self._digest = hashlib.sha256(raw).hexdigest()
        return Watchlist.model_validate_json(raw)

    def poll(self) -> bool:
        """Re-read if the file changed; returns True when the watchlist is new. A bad edit keeps the old one."""
        with self._lock:
            return self._poll()

    def _poll(self) -> bool:
        try:
            if self._stat() == self._signature:
                return False
            raw = self.path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            self._signature = self._stat()
            if digest == self._digest:
                return False
            new = Watchlist.model_validate_json(raw)
        except FileNotFoundError:
            log.error("watchlist file %s disappeared; keeping %d symbols", self.path, len(self.current.symbols))
            return False
        except ValidationError as exc:
            log.error("watchlist file %s is invalid, keeping the previous one: %s", self.path, exc)
            self._digest = digest
            return False
        added = sorted(set(new.active_symbols) - set(self.current.active_symbols))
        removed = sorted(set(self.current.active_symbols) - set(new.active_symbols))
        self._digest, self.current = digest, new
        self.reloads += 1
        log.info("watchlist reloaded: %d symbols (+%s -%s)", len(new.active_symbols), added, removed)
        return True
