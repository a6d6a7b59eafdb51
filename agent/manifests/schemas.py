"""Validate documents against the JSON Schemas in ``schemas/`` and say what is wrong in plain words.

This module is the one entry point to the schemas: ``validate(kind, instance)`` returns every
problem as ``(json_pointer, message)``, sorted by pointer. jsonschema's own messages repeat the whole
instance and speak in schema terms ("Additional properties are not allowed"); a user editing a YAML
file wants ``/spec/desiredcount: unknown field "desiredcount" (did you mean "desiredCount"?)``.

Where the schemas are: the JSON files stay at the repository's top-level ``schemas/`` folder, because
editors reach them from manifests through ``# yaml-language-server: $schema=../schemas/...``. A source
checkout or an editable install finds them next to the package (``Path(__file__).parents[2]``). A
wheel installs them as data files under ``<prefix>/share/ecs-gitops/schemas`` (pyproject.toml:
``[tool.setuptools.data-files] "share/ecs-gitops/schemas" = ["schemas/*.json"]``), looked for under
``sys.prefix`` and then the user base (``pip install --user``).

A document validated before gives its answer again without being validated: the answers of the last
``VALIDATED_KEPT`` documents are kept by a digest of (kind, the document as JSON), so a commit that
changes one file of a large repository validates that file's documents only.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import site
import sys
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

KIND_FILES = {
    "Service": "service.schema.json",
    "DeploymentStrategy": "deploymentstrategy.schema.json",
    "Window": "window.schema.json",
    "CapacityProvider": "capacityprovider.schema.json",
    "Cluster": "cluster.schema.json",
    "TaskDefinition": "taskdefinition.schema.json",
    "AgentConfig": "agent-config.schema.json",
}
SCHEMA_BASE = "https://ecs-gitops.dev/schemas/"
MAX_SHOWN = 80

_CANDIDATE_DIRS = (
    Path(__file__).resolve().parents[2] / "schemas",
    Path(sys.prefix) / "share" / "ecs-gitops" / "schemas",
    Path(site.getuserbase()) / "share" / "ecs-gitops" / "schemas",  # pip install --user
)

_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def schemas_dir() -> Path:
    """The folder holding the schema files (source checkout first, then the installed data files)."""
    for candidate in _CANDIDATE_DIRS:
        if (candidate / KIND_FILES["Service"]).is_file():
            return candidate
    raise FileNotFoundError(f"JSON Schemas not found in any of {[str(c) for c in _CANDIDATE_DIRS]}")


@cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for path in sorted(schemas_dir().glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    return registry.crawl()


@cache
def _validator(kind: str) -> Draft202012Validator:
    if kind not in KIND_FILES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KIND_FILES)}")
    schema = _registry().contents(SCHEMA_BASE + KIND_FILES[kind])
    return Draft202012Validator(schema, registry=_registry())


def schema(kind: str) -> dict[str, Any]:
    """The parsed JSON Schema for ``kind`` (one of ``KIND_FILES``)."""
    return _validator(kind).schema


VALIDATED_KEPT = 8192
_validated: OrderedDict[bytes, tuple[tuple[str, str], ...]] = OrderedDict()
_validated_lock = threading.Lock()  # the tick and the pull-request plans load on threads of their own


def _digest(kind: str, instance: Any) -> bytes | None:
    """The key of a document's answer: equal JSON, equal answer (documents are plain JSON data)."""
    try:
        text = json.dumps([kind, instance], separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON data: validated every time
        return None
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def validate(kind: str, instance: Any) -> list[tuple[str, str]]:
    """Every problem with ``instance`` as a ``kind``, as (JSON pointer, plain-words message), by pointer.

    >>> validate("Window", {"apiVersion": "ecs-gitops/v1", "kind": "Window", "metadata": {"name": "w"},
    ...                     "spec": {"type": "freeze", "schedule": "0 0 * * *", "duration": "2 hours"}})
    [('/spec/duration', 'must be a duration such as 90s, 5m, 1h30m or 2h (got "2 hours")')]
    """
    key = _digest(kind, instance)
    if key is not None:
        with _validated_lock:
            known = _validated.get(key)
            if known is not None:
                _validated.move_to_end(key)
                return list(known)
    found: set[tuple[str, str]] = set()
    for error in _validator(kind).iter_errors(instance):
        for path, message in _explain(error):
            found.add((pointer(path), message))
    answer = sorted(found, key=lambda item: (_pointer_key(item[0]), item[1]))
    if key is not None:
        with _validated_lock:
            _validated[key] = tuple(answer)
            while len(_validated) > VALIDATED_KEPT:
                _validated.popitem(last=False)
    return answer


def pointer(path: Any) -> str:
    """The JSON pointer (RFC 6901) for a sequence of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _pointer_key(text: str) -> list[tuple[int, int | str]]:
    # Numeric segments sort as numbers, so /items/10 comes after /items/9 (ASCII digits only: "²" is a
    # digit to str.isdigit but not to int()).
    return [(0, int(p)) if p.isascii() and p.isdigit() else (1, p) for p in text.split("/")]


def show(value: Any) -> str:
    """A short JSON rendering of ``value`` for a message, cut to about 80 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):  # pragma: no cover - yaml gives JSON-like values
        text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _quoted(names: Any) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _explain(error: ValidationError) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Plain-words (path, message) pairs for one jsonschema error (several for some keywords)."""
    path = tuple(error.absolute_path)
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    got = f"(got {show(instance)})"

    if keyword in ("oneOf", "anyOf"):
        yield from _explain_alternatives(error)
        return
    if keyword == "additionalProperties" and isinstance(instance, dict):
        yield from _unknown_fields(error)
        return
    if keyword == "required" and isinstance(instance, dict):
        for name in value:
            if name not in instance:
                yield (*path, name), "required field is missing" + _then_note(error)
        return
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema reports key-name errors at the mapping, with the key as the instance.
        yield (*path, instance), f"key {_simple_message(error)}"
        return
    if keyword == "not":
        reason = value.get("description") if isinstance(value, dict) else None
        yield path, reason or f"is not allowed here {got}"
        return
    yield path, _simple_message(error) + _then_note(error)


def _simple_message(error: ValidationError) -> str:
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    got = f"(got {show(instance)})"
    if keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        return f"must be {' or '.join(_TYPE_WORDS.get(t, t) for t in types)} {got}"
    if keyword == "enum":
        hint = ""
        if isinstance(instance, str):
            same = [v for v in value if isinstance(v, str) and v.lower() == instance.lower()]
            hint = f'; did you mean "{same[0]}"?' if same else ""
        return f"must be one of {', '.join(str(v) for v in value)} (got {show(instance)}{hint})"
    if keyword == "const":
        return f"must be {show(value)} {got}"
    if keyword == "pattern":
        return f"{error.schema.get('patternErrorMessage') or f'must match the pattern {value}'} {got}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[keyword]
        return f"must be {words} {value} {got}"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters long {got}"
    if keyword == "maxLength":
        return f"must be at most {value} characters long {got}"
    if keyword == "minItems":
        return "must not be empty" if value == 1 else f"must have at least {value} items"
    if keyword == "maxItems":
        return f"must have at most {value} items (got {len(instance)})"
    if keyword == "minProperties":
        return f"must have at least {value} entries"
    if keyword == "maxProperties":
        return f"must have at most {value} entries (got {len(instance)})"
    if keyword == "uniqueItems":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                return f"must not contain duplicates ({show(item)} appears more than once)"
            seen.append(item)
        return "must not contain duplicates"
    if keyword is None or error.schema is False:
        return "is not allowed here"
    return re.sub(r"\s+", " ", error.message)[: MAX_SHOWN * 2]


def _then_note(error: ValidationError) -> str:
    """Why a conditional requirement applies, from the ``description`` of the ``then`` that failed."""
    schema_path = list(error.absolute_schema_path)
    if (
        "then" not in schema_path
        or "$ref" in schema_path[len(schema_path) - schema_path[::-1].index("then") :]
    ):
        return ""
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f" ({description})" if description else ""


def _unknown_fields(error: ValidationError) -> Iterator[tuple[tuple[Any, ...], str]]:
    path = tuple(error.absolute_path)
    known = list(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    for name in error.instance:
        if name in known or any(p.search(name) for p in patterns):
            continue
        message = f'unknown field "{name}"'
        suggestion = _suggest(str(name), known)
        if suggestion:
            message += f' (did you mean "{suggestion}"?)'
        elif known:
            message += f" (expected one of {_quoted(known)})" if len(known) <= 8 else ""
        yield (*path, name), message


def _suggest(name: str, known: list[str]) -> str | None:
    for candidate in known:
        if candidate.lower() == name.lower():
            return candidate
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _explain_alternatives(error: ValidationError) -> Iterator[tuple[tuple[Any, ...], str]]:
    """oneOf/anyOf: say which alternative was meant and what is wrong with it, not all of them."""
    path = tuple(error.absolute_path)
    instance = error.instance
    alternatives = error.validator_value

    # "Exactly one of these fields": oneOf [{required: [a]}, {required: [b]}].
    if all(isinstance(a, dict) and set(a) <= {"required", "description"} for a in alternatives):
        names = [name for a in alternatives for name in a["required"]]
        present = [n for n in names if isinstance(instance, dict) and n in instance]
        if error.validator == "oneOf" and len(present) > 1:
            yield path, f"set only one of {_quoted(present)}, not several"
        else:
            yield path, f"set one of {' or '.join(_quoted([n]) for n in names)}"
        return

    branches: dict[int, list[ValidationError]] = defaultdict(list)
    for sub in error.context or ():
        branches[sub.relative_schema_path[0]].append(sub)
    if not branches:  # oneOf where several alternatives matched
        yield path, f"matches more than one of the allowed forms {show(instance)}"
        return

    # An alternative whose type does not fit the instance was not what the user meant.
    def wrong_type(errors: list[ValidationError]) -> bool:
        return any(e.validator == "type" and not e.relative_path for e in errors)

    viable = {i: errs for i, errs in branches.items() if not wrong_type(errs)}
    if not viable:
        types: list[str] = []
        for errs in branches.values():
            for e in errs:
                if e.validator == "type" and not e.relative_path:
                    for t in [e.validator_value] if isinstance(e.validator_value, str) else e.validator_value:
                        if _TYPE_WORDS.get(t, t) not in types:
                            types.append(_TYPE_WORDS.get(t, t))
        yield path, f"must be {' or '.join(types)} (got {show(instance)})"
        return
    if len(viable) == 1:
        for sub in next(iter(viable.values())):
            yield from _explain(sub)
        return
    best = best_match([e for errs in viable.values() for e in errs])
    if best is not None:
        yield from _explain(best)
