"""Read every candidate file of a manifest root safely and classify its documents.

Nothing here trusts the input. A file is refused (as a ``Problem``, never an exception) when it is
over ``MAX_FILE_BYTES``, binary, not UTF-8, or reached through a symlink that leaves the root. YAML is
read with a ``SafeLoader`` subclass that refuses duplicate keys, nesting deeper than ``MAX_DEPTH``,
recursive aliases and aliases that expand to more than ``MAX_ALIAS_EXPANSION`` extra nodes (the
"billion laughs"), measured on the node graph before anything is built, so a bomb costs nothing.
Anchors and aliases (and ``<<`` merge keys) within that budget are allowed: people use them to share
an environment list between containers. Mapping keys are always strings (``on:`` stays ``"on"``) and
YAML-only types (timestamps, binary, sets) are refused, so a document is plain JSON data.

JSON files are parsed by ``json`` (JSON is not quite YAML 1.1: tabs, ``\\/`` escapes); a small
position scanner then finds the line of every node and any duplicate key.

Symlinks: one that stays inside the root is not read under its own name (its target is read under the
target's name, and ``taskDefinition`` paths through it resolve to the target); one that leaves the
root is an error. ``..`` in a reference may not leave the root either (``resolve_reference``).
"""

from __future__ import annotations

import bisect
import json
import math
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from agent.errors import Problem
from agent.manifests.model import API_VERSION, KINDS, Source, TaskDefinitionFile
from agent.manifests.tree import Tree, is_candidate, normalize
from agent.plan.taskdefs import READ_ONLY_FIELDS

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 10_000

# Fields describe-task-definition prints that RegisterTaskDefinition does not take (one list, shared
# with the planner's normalisation).
READ_ONLY_TASK_DEFINITION_FIELDS = READ_ONLY_FIELDS

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """One parsed document (plain JSON data) and where it came from."""

    data: Any
    source: Source


@dataclass
class LoadedFile:
    path: str
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Classified:
    """Documents sorted by what they are."""

    manifests: list[Document] = field(default_factory=list)  # ecs-gitops documents, not yet validated
    task_definitions: list[TaskDefinitionFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def escape(token: str) -> str:
    """One JSON-pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def child(pointer: str, token: str | int) -> str:
    return f"{pointer}/{escape(str(token))}"


# --------------------------------------------------------------------------------------------- YAML


class _TooDeep(yaml.MarkedYAMLError):
    pass


class SafeManifestLoader(yaml.SafeLoader):
    """SafeLoader with string keys, a depth limit while composing, and no YAML-only types."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def forward(self, length: int = 1) -> None:
        """PyYAML's ``Reader.forward``, counting lines as editors do (``\n``, ``\r\n``, a lone ``\r``).
        YAML 1.1 also breaks lines at NEL, LS and PS, so a value holding U+0085 would move every later
        line number past what the user sees, even past the end of the file."""
        if self.pointer + length + 1 >= len(self.buffer):
            self.update(length + 1)
        while length:
            ch = self.buffer[self.pointer]
            self.pointer += 1
            self.index += 1
            if ch == "\n" or (ch == "\r" and self.buffer[self.pointer] != "\n"):
                self.line += 1
                self.column = 0
            elif ch != "\ufeff":
                self.column += 1
            length -= 1

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise _TooDeep(None, None, f"nesting is deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(None, None, "a mapping key must be a string", key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _number(construct: Any) -> Any:
    """PyYAML's int/float constructor, with its ValueErrors (``0x_``, ``0b_``: the resolver takes them for
    numbers, then int() gets an empty string) turned into a located YAML error."""

    def checked(loader: yaml.SafeLoader, node: Node) -> Any:
        try:
            return construct(loader, node)
        except ValueError:
            raise ConstructorError(
                None, None, f"{node.value!r} is not a number; quote it if it is a string", node.start_mark
            ) from None

    return checked


SafeManifestLoader.add_constructor("tag:yaml.org,2002:int", _number(yaml.SafeLoader.construct_yaml_int))
SafeManifestLoader.add_constructor("tag:yaml.org,2002:float", _number(yaml.SafeLoader.construct_yaml_float))


def _refuse_tag(loader: yaml.SafeLoader, node: Node) -> Any:
    raise ConstructorError(
        None, None, f"the YAML type {node.tag} is not allowed; write a string instead", node.start_mark
    )


SafeManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    SafeManifestLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _measure(root: Node) -> tuple[str, int] | None:
    """Refuse recursive aliases and alias bombs by looking at the node graph (shared nodes counted
    once per use, but computed once). Returns (message, line) or None. Iterative: alias chains may be
    deeper than Python's recursion limit."""
    memo: dict[int, tuple[int, int]] = {}  # id -> (expanded node count, depth)
    grey: set[int] = set()
    unique = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            kids = _children(node)
            size = 1 + sum(memo[id(k)][0] for k in kids)
            depth = 1 + max((memo[id(k)][1] for k in kids), default=0)
            memo[nid] = (size, depth)
            grey.discard(nid)
            continue
        if nid in memo:
            continue
        if nid in grey:
            return "an alias refers to a node that contains it (recursive alias)", node.start_mark.line + 1
        grey.add(nid)
        unique += 1
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))
    size, depth = memo[id(root)]
    if size - unique > MAX_ALIAS_EXPANSION:
        return (
            f"aliases expand this document to {size} nodes from {unique}; at most "
            f"{MAX_ALIAS_EXPANSION} nodes may come from aliases (is this a 'billion laughs' bomb?)",
            root.start_mark.line + 1,
        )
    if depth > MAX_DEPTH:
        return f"nesting (through aliases) is deeper than {MAX_DEPTH} levels", root.start_mark.line + 1
    return None


def _walk_yaml(
    node: Node, pointer: str, lines: dict[str, int], problems: list[Problem], file: str, seen: set[int]
) -> None:
    """Record the line of every node by pointer and report duplicate keys (once per node)."""
    lines.setdefault(pointer, node.start_mark.line + 1)
    if isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _walk_yaml(item, child(pointer, i), lines, problems, file, seen)
    elif isinstance(node, MappingNode):
        report = id(node) not in seen
        seen.add(id(node))
        first_line: dict[str, int] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, ScalarNode):
                if report:
                    problems.append(
                        Problem(file, pointer, "a mapping key must be a string", key_node.start_mark.line + 1)
                    )
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            sub = child(pointer, key)
            if key in first_line:
                if report:
                    problems.append(
                        Problem(file, sub, f'duplicate key "{key}" (first at line {first_line[key]})', line)
                    )
                continue
            first_line[key] = line
            lines[sub] = line
            _walk_yaml(value_node, sub, lines, problems, file, seen)
        for m in merged:
            if isinstance(m, MappingNode):
                for key_node, value_node in m.value:
                    if isinstance(key_node, ScalarNode) and key_node.value not in first_line:
                        sub = child(pointer, key_node.value)
                        lines.setdefault(sub, key_node.start_mark.line + 1)
                        _walk_yaml(value_node, sub, lines, problems, file, seen)


def _yaml_problem(file: str, err: yaml.YAMLError, text: str = "") -> Problem:
    if isinstance(err, ReaderError):
        # A character YAML does not allow anywhere (control characters, U+FFFE...), found before parsing.
        position = int(err.position)
        character = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
        return Problem(
            file,
            "",
            f"not valid YAML: character U+{character:04X} at offset {position} is not allowed "
            "(a control character or a non-character); write it escaped in a double-quoted string",
            text.count("\n", 0, position) + 1,
        )
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        text = err.problem or "invalid YAML"
        if err.context:
            text = f"{err.context}: {text}"
        syntax = not isinstance(err, ConstructorError | ComposerError | _TooDeep)
        prefix = "not valid YAML: " if syntax else ""
        return Problem(file, "", prefix + text, mark.line + 1 if mark else None)
    return Problem(file, "", f"not valid YAML: {err}")


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every document of a YAML stream; a problem in one document does not hide the next ones, but a
    syntax error ends the file (the parser cannot resynchronise)."""
    documents: list[Document] = []
    problems: list[Problem] = []
    try:
        loader = SafeManifestLoader(text)  # checks every character first: ReaderError
    except yaml.YAMLError as err:
        return [], [_yaml_problem(file, err, text)]
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            doc_index = index
            index += 1
            if node is None:
                continue
            bad = _measure(node)
            if bad:
                problems.append(Problem(file, "", bad[0], bad[1]))
                continue
            lines: dict[str, int] = {}
            doc_problems: list[Problem] = []
            _walk_yaml(node, "", lines, doc_problems, file, set())
            if doc_problems:
                problems.extend(doc_problems)
                continue
            try:
                data = loader.construct_document(node)
            except yaml.YAMLError as err:
                problems.append(_yaml_problem(file, err))
                loader.constructed_objects = {}
                loader.recursive_objects = {}
                loader.state_generators = []
                continue
            if data is None:
                continue  # an empty document (a trailing ---, a file of comments)
            source = Source(file, doc_index, node.start_mark.line + 1, lines)
            data, bad_strings = _whole_and_finite(data, source)
            if bad_strings:
                problems.extend(bad_strings)
                continue
            documents.append(Document(data, source))
    except yaml.YAMLError as err:
        problems.append(_yaml_problem(file, err, text))
    except RecursionError:
        problems.append(Problem(file, "", f"nesting is deeper than {MAX_DEPTH} levels"))
    finally:
        loader.dispose()
    return documents, problems


# --------------------------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    """Depth of a JSON value, iteratively."""
    best = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        best = max(best, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return best


_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null")


class _JsonPositions:
    """Line of every node by pointer, and duplicate keys, for text that ``json`` already accepted."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def ws(self, pos: int) -> int:
        m = _WS.match(self.text, pos)
        return m.end() if m else pos

    def value(self, pos: int, pointer: str) -> int:
        text = self.text
        pos = self.ws(pos)
        self.lines.setdefault(pointer, self.line(pos))
        c = text[pos]
        if c == "{":
            pos = self.ws(pos + 1)
            if text[pos] == "}":
                return pos + 1
            seen: dict[str, int] = {}
            while True:
                pos = self.ws(pos)
                key, end = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                line = self.line(pos)
                sub = child(pointer, key)
                if key in seen:
                    self.problems.append(
                        Problem(self.file, sub, f'duplicate key "{key}" (first at line {seen[key]})', line)
                    )
                    sub = f"{sub}#duplicate"  # keep the first one's lines
                else:
                    seen[key] = line
                    self.lines[sub] = line
                pos = self.ws(end) + 1  # the colon
                pos = self.ws(self.value(pos, sub))
                if text[pos] == ",":
                    pos += 1
                    continue
                return pos + 1  # the closing brace
        if c == "[":
            pos = self.ws(pos + 1)
            if text[pos] == "]":
                return pos + 1
            i = 0
            while True:
                pos = self.ws(self.value(pos, child(pointer, i)))
                i += 1
                if text[pos] == ",":
                    pos += 1
                    continue
                return pos + 1
        if c == '"':
            return int(json.decoder.scanstring(text, pos + 1)[1])  # type: ignore[attr-defined]
        m = _SCALAR.match(text, pos)
        return m.end() if m else pos + 1


def parse_json(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        return [], [Problem(file, "", f"not valid JSON: {err.msg} (column {err.colno})", err.lineno)]
    except ValueError as err:
        return [], [Problem(file, "", f"not valid JSON: {err}")]
    except RecursionError:
        return [], [Problem(file, "", f"nesting is deeper than {MAX_DEPTH} levels")]
    if _depth(data) > MAX_DEPTH:
        return [], [Problem(file, "", f"nesting is deeper than {MAX_DEPTH} levels")]
    positions = _JsonPositions(text, file)
    try:
        positions.value(0, "")
    except (IndexError, ValueError):  # cannot happen for text json accepted; lines are best-effort
        positions.lines = {}
    if positions.problems:
        return [], positions.problems
    lines = {k: v for k, v in positions.lines.items() if "#duplicate" not in k}
    source = Source(file, 0, lines.get("", 1), lines)
    data, bad_strings = _whole_and_finite(data, source)
    if bad_strings:
        return [], bad_strings
    return [Document(data, source)], []


# ------------------------------------------------------------------------------------- surrogates

_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_string(text: str) -> str | None:
    """``text`` with UTF-16 surrogate pairs (``"\\ud83d\\ude00"`` escapes, which YAML reads as two
    halves) joined into the one character they stand for; None if a lone half remains, which no file,
    log line or AWS API can carry."""
    if not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def _whole_and_finite(data: Any, source: Source) -> tuple[Any, list[Problem]]:
    """``data`` with every string (keys too) made of whole characters and every number finite, or the
    problems where it can't be (YAML's ``.nan`` and ``.inf``, JSON's ``1e400``: no AWS API takes them,
    and NaN slips through every ``minimum``/``maximum`` check since it compares false with everything)."""
    problems: list[Problem] = []

    def fix(value: Any, pointer: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(
                Problem(
                    source.file,
                    pointer,
                    f"must be a finite number (got {value}; .nan, .inf and numbers past 1.8e308 are not)",
                    source.line_of(pointer),
                )
            )
            return value
        if isinstance(value, str):
            whole = _whole_string(value)
            if whole is None:
                problems.append(
                    Problem(
                        source.file,
                        pointer,
                        "holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); "
                        "write the character itself or \\U0001XXXX",
                        source.line_of(pointer),
                    )
                )
                return value
            return whole
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = fix(k, child(pointer, k))
                out[key] = fix(v, child(pointer, k))
            return out
        if isinstance(value, list):
            return [fix(v, child(pointer, i)) for i, v in enumerate(value)]
        return value

    return fix(data, ""), problems


# -------------------------------------------------------------------------------------------- files


def _decode(raw: bytes, file: str) -> tuple[str | None, Problem | None]:
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        return None, Problem(file, "", f"binary file (NUL byte at offset {nul}); manifests are text", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return None, Problem(
            file,
            "",
            f"not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} cannot be decoded",
            line,
        )
    return text.removeprefix("\ufeff"), None


def parse_bytes(raw: bytes, path: str) -> tuple[list[Document], list[Problem]]:
    """The documents of a file's bytes (JSON for ``*.json``, else a YAML stream), or why there are none:
    over ``MAX_FILE_BYTES``, binary, not UTF-8, or not parseable. Also reads the agent config file."""
    if len(raw) > MAX_FILE_BYTES:
        limit = f"the limit is {MAX_FILE_BYTES} bytes (1 MiB)"
        return [], [Problem(path, "", f"file is {len(raw)} bytes; {limit}")]
    text, problem = _decode(raw, path)
    if problem or text is None:
        return [], [problem or Problem(path, "", "cannot be read")]
    parse = parse_json if path.lower().endswith(".json") else parse_yaml
    return parse(text, path)


def load_file(tree: Tree, path: str) -> LoadedFile:
    """Read and parse one candidate path. Every failure becomes a Problem on the result."""
    result = LoadedFile(path)
    try:
        if tree.is_symlink(path):
            real = tree.resolve(path)
            if real is None:
                result.problems.append(
                    Problem(path, "", "is a symlink that leads outside the manifest root; refused")
                )
                return result
            if not tree.is_file(path) or is_candidate(real):
                return result  # a folder (walked under its own name) or a file read under its own name
        elif tree.resolve(path) is None:
            result.problems.append(
                Problem(path, "", "is reached through a symlink outside the manifest root")
            )
            return result
        if not is_candidate(path):
            return result
        size = tree.size(path)
        if size > MAX_FILE_BYTES:
            result.problems.append(
                Problem(path, "", f"file is {size} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)")
            )
            return result
        result.documents, result.problems = parse_bytes(tree.read(path), path)
    except (OSError, ValueError) as err:
        result.problems.append(Problem(path, "", f"cannot be read: {err}"))
    return result


def resolve_reference(tree: Tree, from_file: str, ref: str) -> tuple[str | None, str | None]:
    """A path written in ``from_file`` (relative to its folder): (root-relative real path, None) or
    (None, message why it cannot be used)."""
    if not isinstance(ref, str) or not ref:
        return None, "must be a path to a task-definition file"
    if _CONTROL_CHARACTER.search(ref):
        return None, f"{json.dumps(ref)} holds a control character; it cannot be a file name here"
    lexical = normalize(posixpath.dirname(from_file), ref)
    if lexical is None:
        return None, f'"{ref}" leaves the manifest root; task-definition files must be inside it'
    real = tree.resolve(lexical)
    if real is None:
        return None, f'"{ref}" leads outside the manifest root (through a symlink); refused'
    if not tree.is_file(lexical):
        return (
            None,
            f'no file "{lexical}" (the path is relative to {posixpath.dirname(from_file) or "the root"})',
        )
    return real, None


# ----------------------------------------------------------------------------------- classification


def _is_manifest(data: dict[str, Any]) -> bool:
    api = data.get("apiVersion")
    if isinstance(api, str) and api.startswith("ecs-gitops"):
        return True
    if data.get("kind") in KINDS:
        return True
    return api is None and {"kind", "metadata", "spec"} <= data.keys()


def task_definition_body(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The RegisterTaskDefinition body in a document and its pointer, or None if it holds none."""
    if "containerDefinitions" in data:
        body, pointer = data, ""
    elif isinstance(data.get("taskDefinition"), dict) and "containerDefinitions" in data["taskDefinition"]:
        body, pointer = data["taskDefinition"], "/taskDefinition"
        tags = data.get("tags")
        if isinstance(tags, list) and tags and "tags" not in body:
            body = {**body, "tags": tags}
    else:
        return None
    dropped = (*READ_ONLY_TASK_DEFINITION_FIELDS, "$schema")  # "$schema": the editor's hint, not ECS's
    return {k: v for k, v in body.items() if k not in dropped}, pointer


# Our own files that may sit in a manifest root but are not manifests.
NOT_MANIFESTS = ("AgentConfig", "SandboxSeed")


def classify(documents: list[Document]) -> Classified:
    """ecs-gitops manifests, native task definitions, and warnings for everything else."""
    out = Classified()
    for doc in documents:
        data, src = doc.data, doc.source
        # An IAM policy file (JSON, the only form IAM takes), e.g. the agent's own beside its service.
        policy_shaped = isinstance(data, dict) and {"Version", "Statement"} <= set(data)
        iam_policy = policy_shaped and src.file.endswith(".json")
        if iam_policy or (isinstance(data, dict) and data.get("kind") in NOT_MANIFESTS):
            continue  # the agent's settings, the sandbox seed, IAM policies may live beside the manifests
        if isinstance(data, dict) and _is_manifest(data):
            out.manifests.append(doc)
            continue
        found = task_definition_body(data) if isinstance(data, dict) else None
        if found:
            body, pointer = found
            out.task_definitions.append(TaskDefinitionFile(body, src, pointer))
            continue
        what = "a mapping without apiVersion or containerDefinitions"
        if not isinstance(data, dict):
            what = {list: "a list", str: "a string"}.get(type(data), "a single value")
        elif "apiVersion" in data:
            what = f"apiVersion {data['apiVersion']!r}, not {API_VERSION}"
        out.problems.append(
            Problem(
                src.file,
                "",
                f"ignored: not an ecs-gitops manifest or a task definition ({what})",
                src.line,
                severity="warning",
            )
        )
    return out
