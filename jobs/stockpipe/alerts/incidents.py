"""Incident bookkeeping shared by every alert sender: one message per incident, a recovery when it clears.

An incident is open from the first time a problem is seen until it is seen gone. Its opening message
is sent once ("announced"); a message that could not be sent (rate limit, Slack down) stays due and
goes out on a later attempt while the incident is still open. A recovery is sent only for an
incident that was announced, so nobody reads "recovered" about a problem they never heard of. New
incidents are rate-limited (at most `max_messages` per `window_s`); recoveries are not, since there
can never be more of them than announced incidents.

The book is plain data (`to_dict`/`from_dict`), so a caller can keep it in memory (the streaming
services) or persist it between runs (pipeline_watch keeps it in an Airflow Variable).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Incident:
    key: str
    kind: str
    detail: str
    opened_at: float
    announced: bool = False


@dataclass
class Transitions:
    opened: list[Incident] = field(default_factory=list)  # newly open, or open and still unannounced
    resolved: list[Incident] = field(default_factory=list)  # cleared and announced: a recovery is due


class RateLimit:
    """At most max_messages in any window of window_s seconds (timestamps are the caller's clock)."""

    def __init__(self, max_messages: int, window_s: float, sent: Iterable[float] = ()) -> None:
        if max_messages < 1 or window_s <= 0:
            raise ValueError("max_messages must be >= 1 and window_s > 0")
        self.max_messages = max_messages
        self.window_s = window_s
        self.sent = sorted(sent)

    def _trim(self, now: float) -> None:
        self.sent = [t for t in self.sent if now - t < self.window_s]

    def allows(self, now: float) -> bool:
        self._trim(now)
        return len(self.sent) < self.max_messages

    def record(self, now: float) -> None:
        self._trim(now)
        self.sent.append(now)


class IncidentBook:
    def __init__(self, limit: RateLimit, incidents: dict[str, Incident] | None = None) -> None:
        self.limit = limit
        self.incidents: dict[str, Incident] = dict(incidents or {})

    def open(self, key: str, kind: str, detail: str, now: float) -> Incident | None:
        """Record a problem seen now; returns the incident if its opening message is due."""
        incident = self.incidents.get(key)
        if incident is None:
            incident = self.incidents[key] = Incident(key, kind, detail, now)
        else:
            incident.detail = detail
        return None if incident.announced else incident

    def resolve(self, key: str) -> Incident | None:
        """Record a problem seen gone; returns the incident if a recovery message is due."""
        incident = self.incidents.pop(key, None)
        return incident if incident is not None and incident.announced else None

    def update(self, kind: str, problems: dict[str, str], now: float) -> Transitions:
        """Reconcile all incidents of one kind with the problems seen now ({key: detail})."""
        transitions = Transitions()
        for key, detail in sorted(problems.items()):
            due = self.open(key, kind, detail, now)
            if due is not None:
                transitions.opened.append(due)
        for key in sorted(k for k, i in self.incidents.items() if i.kind == kind and k not in problems):
            recovered = self.resolve(key)
            if recovered is not None:
                transitions.resolved.append(recovered)
        return transitions

    def may_announce(self, now: float) -> bool:
        return self.limit.allows(now)

    def announced(self, incidents: Iterable[Incident], now: float) -> None:
        """The opening message for these incidents went out (one message, one rate-limit slot)."""
        for incident in incidents:
            incident.announced = True
        self.limit.record(now)

    def open_keys(self, kind: str | None = None) -> list[str]:
        return sorted(k for k, i in self.incidents.items() if kind is None or i.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {"incidents": {k: asdict(i) for k, i in sorted(self.incidents.items())}, "sent": list(self.limit.sent)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, max_messages: int, window_s: float) -> IncidentBook:
        data = data or {}
        incidents = {k: Incident(**v) for k, v in dict(data.get("incidents") or {}).items()}
        return cls(RateLimit(max_messages, window_s, [float(t) for t in data.get("sent") or []]), incidents)
