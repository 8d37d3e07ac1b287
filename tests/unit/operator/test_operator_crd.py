"""The TickerWatchlist CRD: a structural schema a real API server accepts, in step with the producer's contract.

Admission is emulated with jsonschema (crd_schema.py): `x-kubernetes-list-type: set` becomes a
uniqueness check and unknown fields are refused, as the API server does under kubectl's default
strict field validation.
"""

from __future__ import annotations

import copy
import itertools
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stockpipe.contracts.watchlist import MAX_SYMBOLS, SYMBOL_PATTERN, Watchlist
from stockpipe.operator import reconcile
from tests.unit.operator.crd_schema import (
    CRD_PATH,
    EXAMPLES_DIR,
    REPO,
    apply_defaults,
    load_crd,
    metadata_problems,
    openapi_schema,
    structural_problems,
    validation_errors,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

KUBERNETES_VERSION = "1.33"
RBAC_RULES = REPO / "charts" / "stockpipe" / "operator-rbac-rules.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return load_crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    return openapi_schema(crd)


def spec_schema(schema: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = schema["properties"]["spec"]
    return spec


def watchlist(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stockpipe.io/v1alpha1",
        "kind": "TickerWatchlist",
        "metadata": {"name": "test"},
        "spec": {"symbols": ["AAPL", "MSFT"], **spec},
    }


def tickers(count: int) -> list[str]:
    return ["".join(t) for t in itertools.islice(itertools.product(string.ascii_uppercase, repeat=3), count)]


# --- in step with the code ----------------------------------------------------------------------


def test_identity_matches_the_operator(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{reconcile.PLURAL}.{reconcile.GROUP}"
    assert crd["spec"]["group"] == reconcile.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == reconcile.KIND
    assert crd["spec"]["names"]["plural"] == reconcile.PLURAL
    assert crd["spec"]["names"]["shortNames"] == ["tw"]
    [version] = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (reconcile.VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_symbol_rules_are_the_contracts(schema: dict[str, Any]) -> None:
    symbols = spec_schema(schema)["properties"]["symbols"]
    assert symbols["items"]["pattern"] == SYMBOL_PATTERN
    assert symbols["maxItems"] == MAX_SYMBOLS
    assert symbols["minItems"] == 1
    assert symbols["x-kubernetes-list-type"] == "set"


def test_bounds_and_enums_are_the_contracts(schema: dict[str, Any]) -> None:
    props = spec_schema(schema)["properties"]
    interval = Watchlist.model_fields["poll_interval_seconds"]
    bounds = {type(m).__name__: m for m in interval.metadata}
    assert (props["pollIntervalSeconds"]["minimum"], props["pollIntervalSeconds"]["maximum"]) == (
        bounds["Ge"].ge,
        bounds["Le"].le,
    )
    assert props["sources"]["items"]["enum"] == ["quotes", "trades"]


def test_schema_defaults_are_the_contracts_defaults(schema: dict[str, Any]) -> None:
    defaulted = apply_defaults(schema, {"spec": {"symbols": ["AAPL"]}})["spec"]
    assert Watchlist.model_validate(defaulted) == Watchlist(symbols=["AAPL"])
    assert defaulted == {"symbols": ["AAPL"], "pollIntervalSeconds": 15, "sources": ["quotes"], "enabled": True}


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    default_view = [name for name, c in columns.items() if not c.get("priority")]
    assert default_view == ["Symbols", "Ready", "Age"]
    assert columns["Symbols"]["jsonPath"] == ".status.symbolCount"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert (columns["Age"]["type"], columns["Age"]["jsonPath"]) == ("date", ".metadata.creationTimestamp")


def test_status_schema_accepts_what_the_operator_writes(schema: dict[str, Any]) -> None:
    verdict = reconcile.Verdict(False, reconcile.Reason.INVALID_SPEC, "symbols: bad", 2)
    status = reconcile.next_status(None, verdict, 3, datetime.now(UTC))
    assert validation_errors(schema, {**watchlist(), "status": status}) == []
    assert validation_errors(schema, {**watchlist(), "status": {"observedGeneration": "3"}}) != []


# --- a structural schema ------------------------------------------------------------------------


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    assert structural_problems(schema) == []
    assert metadata_problems(schema) == []


def test_no_unique_items_anywhere() -> None:
    def keys(node: Any) -> list[str]:
        if isinstance(node, dict):
            return list(node) + [k for v in node.values() for k in keys(v)]
        if isinstance(node, list):
            return [k for v in node for k in keys(v)]
        return []

    assert "uniqueItems" not in keys(load_crd())


@pytest.mark.parametrize(
    ("bad_schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"description": "untyped"}}}, "no type"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems is not allowed"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}, "false"),
        ({"type": "string", "x-kubernetes-list-type": "set"}, "non-array"),
        ({"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "set"}, "scalar items"),
        ({"type": "integer", "minimum": 5, "default": 1}, "default does not validate"),
    ],
)
def test_the_structural_check_catches_what_a_server_refuses(bad_schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(bad_schema)
    assert any(problem in p for p in problems), problems


def test_crd_and_rbac_rules_are_valid_kubernetes_objects() -> None:
    kubernetes_validate.validate(load_crd(), KUBERNETES_VERSION, strict=True)
    rules = yaml.safe_load(RBAC_RULES.read_text(encoding="utf-8"))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"}, "rules": rules}
    kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True)
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    # What the operator does, and nothing broader (no delete, no cluster-wide access, no wildcards).
    assert granted == {
        ("stockpipe.io", "tickerwatchlists", "list"),
        ("stockpipe.io", "tickerwatchlists", "watch"),
        ("stockpipe.io", "tickerwatchlists", "patch"),
        ("stockpipe.io", "tickerwatchlists/status", "patch"),
        ("", "configmaps", "create"),
        ("", "configmaps", "get"),
        ("", "configmaps", "patch"),
        ("", "events", "create"),
    }


# --- admission: examples accepted, bad input refused -------------------------------------------


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def test_there_are_examples() -> None:
    assert 2 <= len(example_files()) <= 5


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_examples_are_accepted(schema: dict[str, Any], path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert validation_errors(schema, document) == []
    # ... and the operator accepts them too: nothing in them needs the schema to be stricter.
    reconcile.parse_spec(apply_defaults(schema, copy.deepcopy(document))["spec"])


def test_a_minimal_watchlist_is_accepted(schema: dict[str, Any]) -> None:
    assert validation_errors(schema, watchlist()) == []
    assert validation_errors(schema, watchlist(symbols=tickers(MAX_SYMBOLS))) == []
    assert validation_errors(schema, watchlist(symbols=["BRK.B", "BF-B", "A"], pollIntervalSeconds=5)) == []
    assert validation_errors(schema, watchlist(pollIntervalSeconds=3600, sources=["trades", "quotes"])) == []


BAD = {
    "lowercase symbol": (watchlist(symbols=["aapl"]), "spec.symbols.0: 'aapl' does not match"),
    "symbol too long": (watchlist(symbols=["ABCDEF"]), "spec.symbols.0: 'ABCDEF' does not match"),
    "class suffix too long": (watchlist(symbols=["BRK.BBB"]), "does not match"),
    "digits in symbol": (watchlist(symbols=["A1"]), "does not match"),
    "space in symbol": (watchlist(symbols=["BRK B"]), "does not match"),
    "duplicate symbols": (watchlist(symbols=["AAPL", "MSFT", "AAPL"]), "spec.symbols: Duplicate value: 'AAPL'"),
    "empty symbols": (watchlist(symbols=[]), "spec.symbols: [] should be non-empty"),
    "501 symbols": (watchlist(symbols=tickers(MAX_SYMBOLS + 1)), "is too long"),
    "interval 4": (watchlist(pollIntervalSeconds=4), "4 is less than the minimum of 5"),
    "interval 3601": (watchlist(pollIntervalSeconds=3601), "3601 is greater than the maximum of 3600"),
    "fractional interval": (watchlist(pollIntervalSeconds=15.5), "15.5 is not of type 'integer'"),
    "interval as text": (watchlist(pollIntervalSeconds="15"), "'15' is not of type 'integer'"),
    "unknown source": (watchlist(sources=["news"]), "'news' is not one of"),
    "empty sources": (watchlist(sources=[]), "spec.sources: [] should be non-empty"),
    "duplicate sources": (watchlist(sources=["quotes", "quotes"]), "spec.sources: Duplicate value"),
    "symbols as text": (watchlist(symbols="AAPL"), "'AAPL' is not of type 'array'"),
    "enabled as text": (watchlist(enabled="yes"), "'yes' is not of type 'boolean'"),
    "unknown field": (watchlist(colour="red"), "'colour' was unexpected"),
    "no symbols": ({"apiVersion": "stockpipe.io/v1alpha1", "kind": "TickerWatchlist", "spec": {}}, "'symbols'"),
    "no spec": ({"apiVersion": "stockpipe.io/v1alpha1", "kind": "TickerWatchlist"}, "'spec' is a required"),
}


@pytest.mark.parametrize(("document", "fragment"), list(BAD.values()), ids=list(BAD))
def test_bad_watchlists_are_refused(schema: dict[str, Any], document: dict[str, Any], fragment: str) -> None:
    errors = validation_errors(schema, document)
    assert errors, "admission accepted a bad watchlist"
    assert any(fragment in e for e in errors), errors


def test_at_least_ten_kinds_of_bad_input() -> None:
    assert len(BAD) >= 10


def test_crd_file_is_where_the_chart_expects_it() -> None:
    assert CRD_PATH.relative_to(REPO).as_posix() == "charts/stockpipe/crds/tickerwatchlist.yaml"
