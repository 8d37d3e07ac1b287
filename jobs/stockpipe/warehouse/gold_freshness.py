"""What gold held after the continuous loader's last intraday build, kept in the lake for pipeline_watch.

`state/freshness/gold.json`: the newest `fetched_at` and event time among the intraday gold rows of the
newest session, and when the build that made them queryable finished. pipeline_watch's probe reads this
one small object (it reads the lake, never the warehouse, so it never contends for DuckDB's writer);
if the loader stops, the object stops moving and the alert fires on its age.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

import orjson

from stockpipe.contracts.messages import iso
from stockpipe.lake.store import Lake

GOLD_STATE_KEY = "state/freshness/gold.json"
GOLD_STATE_V1 = "gold_freshness.v1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldFreshness:
    session: date | None  # the New York date of the newest gold quote
    newest_fetched_at: datetime | None  # the newest gold row's fetched_at (of that session)
    newest_event_at: datetime | None  # its quote_ts
    built_at: datetime  # when the build that made it queryable finished

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema": GOLD_STATE_V1,
                "session": self.session.isoformat() if self.session else None,
                "newest_fetched_at": iso(self.newest_fetched_at) if self.newest_fetched_at else None,
                "newest_event_at": iso(self.newest_event_at) if self.newest_event_at else None,
                "built_at": iso(self.built_at),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> GoldFreshness | None:
        try:
            raw = orjson.loads(data)
            if not isinstance(raw, dict) or raw.get("schema") != GOLD_STATE_V1:
                return None

            def at(name: str) -> datetime | None:
                value = raw.get(name)
                return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None

            built = at("built_at")
            if built is None:
                return None
            session = raw.get("session")
            return cls(
                date.fromisoformat(session) if isinstance(session, str) else None,
                at("newest_fetched_at"),
                at("newest_event_at"),
                built,
            )
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            return None


def write_gold_freshness(lake: Lake, state: GoldFreshness) -> None:
    lake.write_atomic(GOLD_STATE_KEY, state.to_json())


def read_gold_freshness(lake: Lake) -> GoldFreshness | None:
    """The state, or None when no loader ever wrote one (or it is unreadable: logged)."""
    try:
        data = lake.read(GOLD_STATE_KEY)
    except FileNotFoundError:
        return None
    state = GoldFreshness.from_json(data)
    if state is None:
        log.warning("%s is not a %s document: ignored", GOLD_STATE_KEY, GOLD_STATE_V1)
    return state
