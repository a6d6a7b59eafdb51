"""Hostile input for the fuzzers: strategies that build manifest roots and agent configs, and the one
invariant every result must hold.

The invariant (``assert_well_formed``): loading either succeeds or raises ``InvalidInput``, never anything
else; every problem names a file the user can open (a path of the tree, or the tree itself), a JSON
pointer ("" or starting with "/"), a one-line message and a line that exists; and no problem is an
internal error caught by a last line of defence (those are bugs, reported as problems so users never see
a traceback, and the fuzzers treat them as failures).

Inputs start from ``manifests-example`` (documents mutated, values crossed over between documents by
key, documents generated from the JSON Schemas) and from raw text and bytes (YAML fragments chosen to
hit the parser's corners, encodings, NULs, byte-order marks).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.loading import parse_json, parse_yaml
from agent.manifests.model import Desired
from agent.manifests.tree import Tree, is_candidate

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "manifests-example"
UNKNOWN_KEY = "x-fuzz-unknown"
# Problems a last line of defence makes of an unexpected exception: each one is a bug to fix.
_INTERNAL = re.compile(r"internal error|cannot be read: [A-Z]\w*(Error|Exception)\b|Traceback")


# ------------------------------------------------------------------------------------------ the example


def example_files() -> dict[str, bytes]:
    """Every file of manifests-example, root-relative path -> bytes."""
    return {
        p.relative_to(EXAMPLE).as_posix(): p.read_bytes() for p in sorted(EXAMPLE.rglob("*")) if p.is_file()
    }


def example_documents() -> dict[str, list[Any]]:
    """The parsed documents of every manifest file of manifests-example, by path (plain JSON data)."""
    out: dict[str, list[Any]] = {}
    for rel, raw in example_files().items():
        if not is_candidate(rel):
            continue
        parse = parse_json if rel.endswith(".json") else parse_yaml
        docs, problems = parse(raw.decode(), rel)
        assert not problems, problems
        out[rel] = [d.data for d in docs]
    return out


def collect_pool(value: Any, pool: dict[str, list[Any]], key: str | None = None) -> None:
    if key is not None:
        seen = pool.setdefault(key, [])
        if value not in seen:
            seen.append(copy.deepcopy(value))
    if isinstance(value, dict):
        for k, v in value.items():
            collect_pool(v, pool, k)
    elif isinstance(value, list):
        for v in value:
            collect_pool(v, pool, key)


def value_pool() -> dict[str, list[Any]]:
    """Every value found under each key anywhere in the example: the material for crossover mutations
    (a strategy's ``canary`` block moved into a rolling strategy, one service's ``cluster`` into another)."""
    pool: dict[str, list[Any]] = {}
    for docs in example_documents().values():
        for doc in docs:
            collect_pool(doc, pool)
    return pool


def write_root(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def dump(rel: str, documents: list[Any]) -> bytes:
    """Documents written back the way their file name says: JSON (one document) or a YAML stream."""
    if rel.endswith(".json"):
        return json.dumps(documents[0] if len(documents) == 1 else documents, ensure_ascii=False).encode()
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True).encode()


# ------------------------------------------------------------------------------------------ the invariant


def assert_problem_well_formed(
    problem: Problem, files: set[str], lines: dict[str, int] | None = None
) -> None:
    assert isinstance(problem, Problem), problem
    assert problem.severity in ("error", "warning"), problem
    assert problem.file and problem.file in files, f"{problem.file!r} is not a file of the root: {problem}"
    assert problem.pointer == "" or problem.pointer.startswith("/"), problem
    assert problem.message.strip() and "\n" not in problem.message, repr(problem.message)
    assert "\n" not in problem.pointer, repr(problem.pointer)
    assert not _INTERNAL.search(problem.message), f"a bug reached the last line of defence: {problem}"
    if problem.line is not None:
        assert problem.line >= 1, problem
        if lines and problem.file in lines:
            assert problem.line <= lines[problem.file] + 1, f"line past the end of the file: {problem}"


def load(tree: Tree, config: Any = None) -> tuple[Desired | None, list[Problem]]:
    """``load_desired`` where anything but ``InvalidInput`` fails the test (the exception propagates)."""
    try:
        desired = load_desired(tree, config)
    except InvalidInput as err:
        assert any(p.severity == "error" for p in err.problems), err.problems
        return None, err.problems
    return desired, desired.warnings


def assert_well_formed(
    tree: Tree,
    config: Any = None,
    extra_files: set[str] = frozenset(),
    line_counts: dict[str, int] | None = None,
) -> tuple[Desired | None, list[Problem]]:
    """Load ``tree`` and check the invariant on every problem; return what loading gave."""
    desired, problems = load(tree, config)
    # Problem escapes control characters in file names: compare with the names as a Problem shows them.
    files = {Problem(f, "", "-").file for f in (*tree.walk(), tree.describe(), *extra_files)}
    for problem in problems:
        assert_problem_well_formed(problem, files, line_counts)
    return desired, problems


def line_counts(files: dict[str, bytes]) -> dict[str, int]:
    """Lines as an editor counts them: ``\n``, ``\r\n`` and a lone ``\r`` end a line."""
    return {rel: len(re.findall(rb"\r\n|\r|\n", data)) + 1 for rel, data in files.items()}


# ------------------------------------------------------------------------------------------ strategies

_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)  # any encodable character, control characters included
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12,
)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return doc


MUTATIONS = ("delete", "replace", "crossover", "unknown-key", "wrap", "retype", "rename", "deepen", "bigger")


@st.composite
def mutated(draw: st.DrawFn, doc: Any, pool: dict[str, list[Any]]) -> Any:
    """``doc`` after one to four mutations at random places (each keeps the rest of the document)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        nodes = list(_nodes(doc))
        path, value = draw(st.sampled_from(nodes))
        how = draw(st.sampled_from(MUTATIONS))
        key = next((p for p in reversed(path) if isinstance(p, str)), None)
        if how == "delete" and path:
            doc = _delete(doc, path)
        elif how == "replace":
            doc = _set(doc, path, draw(json_values))
        elif how == "crossover" and key in pool:
            doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(pool[key]))))
        elif how == "unknown-key" and isinstance(value, dict):
            value[draw(st.sampled_from([UNKNOWN_KEY, "", "~/", "a/b", "<<", "ünïcode", " "]))] = draw(
                json_values
            )
        elif how == "wrap":
            doc = _set(doc, path, draw(st.sampled_from([[value], {"value": value}])))
        elif how == "retype":
            doc = _set(doc, path, draw(st.sampled_from([str(value), 0, -1, 2**63, 1.5, True, None, [], {}])))
        elif how == "rename" and path and isinstance(path[-1], str):
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            new_key = draw(
                st.sampled_from([path[-1].upper(), path[-1].lower(), path[-1] + " ", "_" + path[-1]])
            )
            parent[new_key] = parent.pop(path[-1])
        elif how == "deepen":
            deep: Any = draw(json_scalars)
            for _ in range(draw(st.integers(1, 100))):
                deep = [deep] if draw(st.booleans()) else {"k": deep}
            doc = _set(doc, path, deep)
        elif how == "bigger" and isinstance(value, str):
            doc = _set(doc, path, value * draw(st.integers(2, 5000)))
    return doc


# YAML corners: each fragment is valid on its own line or breaks the parser in a known way.
YAML_FRAGMENTS = (
    "apiVersion: ecs-gitops/v1\n",
    "kind: Service\n",
    "kind: Window\n",
    "kind: DeploymentStrategy\n",
    "metadata: {name: web}\n",
    "spec:\n",
    "  cluster: prod\n",
    "  taskDefinition: ../taskdefs/web.json\n",
    "  strategy: canary-10\n",
    "  launchType: FARGATE\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG !e! tag:example.com,2000:\n",
    "a: &anchor [x, y]\n",
    "b: *anchor\n",
    "c: *undefined\n",
    "<<: *anchor\n",
    "<<: {x: 1}\n",
    "d: !!binary aGVsbG8=\n",
    "e: !!python/object:os.system {}\n",
    "f: !!python/name:os.system\n",
    "g: !!timestamp 2001-12-14\n",
    "h: 2001-12-14t21:59:43.10-05:00\n",
    "i: !!set {a, b}\n",
    "j: !!omap [a: 1]\n",
    "k: !custom thing\n",
    "l: !!str\n",
    "? [complex, key]\n: value\n",
    "? {complex: key}\n: value\n",
    "m: {a: 1, a: 2}\n",
    "n: 0o777\n",
    "o: .nan\n",
    "p: -.inf\n",
    "q: 1e400\n",
    "r: 0x_ff\n",
    "on: yes\n",
    "s: |\n  block\n  text\n",
    "t: >-\n  folded\n",
    "\tu: tab\n",
    "  v: indented\n",
    "w: [unclosed\n",
    "x: 'unterminated\n",
    '"y": "\\ud800"\n',
    'z: "\\x00"\n',
    "- list item\n",
    "-\n",
    "[[[[[[[[[[\n",
    "{\n",
    "\ufeff",
    "# comment\n",
    ": no key\n",
    "&a a: &b b\n",
    "*a : x\n",
)
yaml_text = st.lists(
    st.one_of(st.sampled_from(YAML_FRAGMENTS), _text.map(lambda t: t + "\n")), min_size=1, max_size=25
).map("".join)

ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252")


@st.composite
def encoded(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes the way a hostile or careless editor may have saved it."""
    how = draw(st.sampled_from(("utf-8", "encoding", "nul", "invalid", "truncated")))
    raw = text.encode("utf-8")
    if how == "encoding":
        raw = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    elif how == "nul" and raw:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\x00" + raw[at:]
    elif how == "invalid":
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9", b"\x80\x80"]))
            + raw[at:]
        )
    elif how == "truncated" and raw:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


# ------------------------------------------------------------------------------------------ from schemas


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(out.get("properties"), dict):
            out["properties"] = {**out["properties"], **value}
        elif key == "required" and isinstance(out.get("required"), list):
            out["required"] = sorted({*out["required"], *value})
        else:
            out[key] = value
    return out


class SchemaStrategies:
    """Hypothesis strategies for documents that follow one of our JSON Schemas (most of the time).

    A small generator instead of a library: it follows ``$ref`` across our schema files, picks one
    branch of ``oneOf``/``anyOf``, and mixes in values the example uses under the same key, so that
    references (cluster, strategy, window names) resolve often enough to reach the semantic checks.
    ``if``/``then`` and ``not`` are not followed: those documents come out schema-invalid, which is
    hostile input too.
    """

    def __init__(self, pool: dict[str, list[Any]]) -> None:
        from agent.manifests.schemas import SCHEMA_BASE, _registry

        self.registry = _registry()
        self.base = SCHEMA_BASE
        self.pool = pool

    def for_kind(self, file: str) -> st.SearchStrategy[Any]:
        resource = self.registry.resolver(base_uri=self.base + file).lookup(self.base + file)
        return self._gen(resource.contents, resource.resolver, 0, None)

    def _gen(self, node: Any, resolver: Any, depth: int, key: str | None) -> st.SearchStrategy[Any]:
        strategy = self._from(node, resolver, depth)
        if key is not None and key in self.pool and key not in ("spec", "metadata"):
            return st.one_of(strategy, st.sampled_from(self.pool[key]).map(copy.deepcopy))
        return strategy

    def _from(self, node: Any, resolver: Any, depth: int) -> st.SearchStrategy[Any]:
        if node is True or node == {}:
            return json_values
        if node is False or depth > 12:
            return st.nothing() if node is False else json_scalars
        if "$ref" in node:
            found = resolver.lookup(node["$ref"])
            rest = {k: v for k, v in node.items() if k not in ("$ref", "description", "default")}
            target = found.contents if isinstance(found.contents, dict) else {}
            return self._from(_merge(target, rest), found.resolver, depth + 1)
        if "allOf" in node:
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                if isinstance(part, dict) and "if" not in part:
                    merged = _merge(merged, part)
            return self._from(merged, resolver, depth)
        for word in ("oneOf", "anyOf"):
            if word in node:
                rest = {k: v for k, v in node.items() if k != word}
                return st.one_of(
                    [self._from(_merge(rest, branch), resolver, depth + 1) for branch in node[word]]
                )
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        types = node.get("type")
        if types is None:
            types = "object" if "properties" in node else ("array" if "items" in node else None)
        if types is None:
            return json_values
        types = [types] if isinstance(types, str) else types
        return st.one_of([self._typed(t, node, resolver, depth) for t in types])

    def _typed(self, kind: str, node: dict[str, Any], resolver: Any, depth: int) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind in ("integer", "number"):
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            ints = st.integers(
                min_value=None if low is None else int(low) + (1 if "exclusiveMinimum" in node else 0),
                max_value=None if high is None else int(high) - (1 if "exclusiveMaximum" in node else 0),
            )
            return ints if kind == "integer" else st.one_of(ints, st.floats(low, high, allow_nan=False))
        if kind == "string":
            if "pattern" in node:
                try:
                    return st.from_regex(node["pattern"], fullmatch=True).filter(
                        lambda s: len(s) <= node.get("maxLength", 300)
                    )
                except Exception:  # a pattern hypothesis cannot invert: any text
                    return _text
            return st.text(min_size=node.get("minLength", 0), max_size=min(node.get("maxLength", 30), 30))
        if kind == "array":
            items = node.get("items", True)
            low = node.get("minItems", 0)
            return st.lists(
                self._gen(items, resolver, depth + 1, None),
                min_size=low,
                max_size=min(node.get("maxItems", low + 3), low + 3),
                unique_by=(lambda v: json.dumps(v, sort_keys=True)) if node.get("uniqueItems") else None,
            )
        if kind == "object":
            props = node.get("properties", {})
            required = set(node.get("required", []))
            fixed = {k: self._gen(v, resolver, depth + 1, k) for k, v in props.items() if k in required}
            optional = {
                k: self._gen(v, resolver, depth + 1, k) for k, v in props.items() if k not in required
            }
            for name in required - set(props):
                fixed[name] = json_values
            base = st.fixed_dictionaries(fixed, optional=optional)
            extra = node.get("additionalProperties", True)
            if extra is False or props:
                return base
            values = self._gen(extra, resolver, depth + 1, None)
            return st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=4)
        return json_values
