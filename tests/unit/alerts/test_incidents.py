"""Incident bookkeeping: one message per incident, recoveries only for announced ones, a rate limit."""

from __future__ import annotations

from stockpipe.alerts.incidents import IncidentBook, RateLimit


def test_an_incident_is_due_once_until_announced() -> None:
    book = IncidentBook(RateLimit(10, 3600))
    due = book.open("producer", "heartbeat", "last beat 5 min ago", now=0)
    assert due is not None
    assert book.open("producer", "heartbeat", "last beat 6 min ago", now=60) is due  # not announced yet: still due
    book.announced([due], now=60)
    assert book.open("producer", "heartbeat", "last beat 7 min ago", now=120) is None
    assert book.resolve("producer") is due


def test_an_unannounced_incident_clears_silently() -> None:
    book = IncidentBook(RateLimit(10, 3600))
    book.open("AAPL", "stale", "no data", now=0)
    assert book.resolve("AAPL") is None
    assert book.open_keys() == []


def test_update_reconciles_one_kind_and_leaves_others_alone() -> None:
    book = IncidentBook(RateLimit(10, 3600))
    first = book.update("stale", {"AAPL": "a", "MSFT": "m"}, now=0)
    assert [i.key for i in first.opened] == ["AAPL", "MSFT"]
    book.announced(first.opened, now=0)
    book.open("consumer", "heartbeat", "lost", now=0)
    second = book.update("stale", {"MSFT": "m"}, now=300)
    assert second.opened == []
    assert [i.key for i in second.resolved] == ["AAPL"]
    assert book.open_keys() == ["MSFT", "consumer"]


def test_the_rate_limit_is_a_sliding_window() -> None:
    limit = RateLimit(2, 60)
    assert limit.allows(0)
    limit.record(0)
    limit.record(10)
    assert not limit.allows(59)
    assert limit.allows(60)  # the first message left the window


def test_the_book_round_trips_through_json_data() -> None:
    book = IncidentBook(RateLimit(3, 3600))
    due = book.open("dlq", "dlq", "+4", now=100)
    assert due is not None
    book.announced([due], now=100)
    again = IncidentBook.from_dict(book.to_dict(), 3, 3600)
    assert again.to_dict() == book.to_dict()
    assert again.open("dlq", "dlq", "+5", now=200) is None  # still announced after the round trip
    assert again.limit.sent == [100]
