"""What a Kubernetes API server does with a CRD's openAPIV3Schema, emulated for tests.

- validation: JSON Schema (draft 4 is the closest to OpenAPI v3.0) plus the Kubernetes extensions
  a plain validator ignores: `x-kubernetes-list-type: set` and `map` mean unique items / unique
  keys (a real server refuses `uniqueItems`), and an object with `properties` refuses unknown fields,
  as kubectl's default strict field validation makes the server do;
- defaulting: `default` values are filled in before validation;
- structural-schema rules: what the server checks when the CRD itself is created.
Used by the unit tests and by the API-server emulator of the integration tests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

REPO = Path(__file__).resolve().parents[3]
CRD_PATH = REPO / "charts" / "stockpipe" / "crds" / "tickerwatchlist.yaml"
EXAMPLES_DIR = REPO / "charts" / "stockpipe" / "examples"


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(crd, dict)
    return crd


def openapi_schema(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    for item in crd["spec"]["versions"]:
        if item["name"] == version:
            schema = item["schema"]["openAPIV3Schema"]
            assert isinstance(schema, dict)
            return schema
    raise KeyError(version)


def _list_type(validator: Any, list_type: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not validator.is_type(instance, "array"):
        return
    if list_type == "set":
        keys = [repr(item) for item in instance]
    elif list_type == "map":
        fields = schema.get("x-kubernetes-list-map-keys", [])
        keys = [repr(tuple(item.get(f) for f in fields)) for item in instance if isinstance(item, dict)]
    else:
        return
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        yield jsonschema.ValidationError(
            f"Duplicate value: {', '.join(duplicates)} (x-kubernetes-list-type: {list_type})"
        )


def _strict_fields(schema: Any) -> Any:
    """Copy of the schema where objects with `properties` refuse unknown fields."""
    if isinstance(schema, list):
        return [_strict_fields(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _strict_fields(v) if k in {"items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"} else v
        for k, v in schema.items()
    }
    if "properties" in schema:
        out["properties"] = {k: _strict_fields(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    return out


KubernetesValidator = validators.extend(jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type})


def apply_defaults(schema: dict[str, Any], instance: Any) -> Any:
    """Fill in `default`s of absent fields, recursively, as the API server does before validating."""
    if isinstance(instance, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in instance and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
            if name in instance:
                apply_defaults(sub, instance[name])
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            apply_defaults(schema["items"], item)
    return instance


def validation_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """The admission errors for an object (after defaulting), empty when it would be accepted."""
    instance = apply_defaults(schema, copy.deepcopy(instance))
    validator = KubernetesValidator(_strict_fields(schema))
    return sorted(
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(instance)
    )


def structural_problems(schema: Any, path: str = "openAPIV3Schema") -> list[str]:
    """Why a real API server would refuse this schema as non-structural (empty list: it is structural).

    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
    """
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: not a schema object"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    if "type" not in schema and not preserve:
        problems.append(f"{path}: no type")
    for word in ("$ref", "uniqueItems", "patternProperties", "dependencies", "definitions", "id", "$schema"):
        if word in schema:
            problems.append(f"{path}: {word} is not allowed")
    if schema.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is not allowed")
    if "additionalProperties" in schema and "properties" in schema:
        problems.append(f"{path}: additionalProperties and properties are mutually exclusive")
    if schema.get("nullable") and "default" in schema and schema["default"] is None:
        problems.append(f"{path}: default null")
    if schema.get("type") == "array" and "items" not in schema:
        problems.append(f"{path}: array without items")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type is not None:
        if schema.get("type") != "array":
            problems.append(f"{path}: x-kubernetes-list-type on a non-array")
        if list_type not in {"atomic", "set", "map"}:
            problems.append(f"{path}: unknown x-kubernetes-list-type {list_type}")
        items = schema.get("items") or {}
        if list_type == "set" and items.get("type") in {"object", "array"}:
            problems.append(f"{path}: x-kubernetes-list-type set needs scalar items")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            if items.get("type") != "object" or not keys:
                problems.append(f"{path}: x-kubernetes-list-type map needs object items and list-map-keys")
            for key in keys:
                if key not in (items.get("properties") or {}) or (
                    key not in (items.get("required") or []) and "default" not in items["properties"][key]
                ):
                    problems.append(f"{path}: list-map key {key} must be a required (or defaulted) property")
    elif "x-kubernetes-list-map-keys" in schema:
        problems.append(f"{path}: x-kubernetes-list-map-keys without x-kubernetes-list-type: map")
    if "default" in schema:
        errors = validation_errors(schema, schema["default"])
        if errors:
            problems.append(f"{path}: default does not validate: {errors}")
    for name, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.additionalProperties")
    for word in ("allOf", "anyOf", "oneOf", "not"):
        if word in schema:
            # Value validation inside these may not declare types of its own (no structure there).
            problems.append(f"{path}: {word} is not used by this CRD; check its structural rules before adding it")
    return problems


def metadata_problems(schema: dict[str, Any]) -> list[str]:
    """At the root, metadata may only restrict name and generateName; apiVersion/kind are plain strings."""
    problems = []
    metadata = (schema.get("properties") or {}).get("metadata", {})
    if set(metadata) - {"type", "properties", "description"}:
        problems.append(f"metadata: only type is allowed, got {sorted(metadata)}")
    if set(metadata.get("properties") or {}) - {"name", "generateName"}:
        problems.append("metadata: only name and generateName may be specified")
    return problems
