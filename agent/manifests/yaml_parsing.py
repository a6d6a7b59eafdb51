"""Safe YAML parsing: a ``SafeLoader`` subclass with limits, and the line of every node.

YAML is read with a ``SafeLoader`` subclass that refuses duplicate keys, nesting deeper than
``MAX_DEPTH``, recursive aliases, and aliases that expand to more than ``MAX_ALIAS_EXPANSION`` extra
nodes (the "billion laughs") or to more than ``MAX_DOCUMENT_BYTES`` of text (one big anchor repeated
by many aliases), measured on the node graph before anything is built, so a bomb costs nothing.
Anchors and aliases (and ``<<`` merge keys) within that budget are allowed: people use them to share
an environment list between containers. Mapping keys are always strings (``on:`` stays ``"on"``) and
YAML-only types (timestamps, binary, sets) are refused, so a document is plain JSON data.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver

from agent.errors import Problem
from agent.manifests.documents import MAX_DEPTH, Document, child, whole_and_finite
from agent.manifests.limits import Budget
from agent.manifests.model import Source

MAX_ALIAS_EXPANSION = 10_000
# The text of one document once its aliases are expanded: keys and scalars, each counted in UTF-8 bytes
# plus a byte of punctuation. A file may hold at most MAX_FILE_BYTES; expanded, a document may not be
# bigger than that either.
MAX_DOCUMENT_BYTES = 1024 * 1024

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _ManifestRules:
    """What both loaders add to PyYAML's composer and constructor: a depth limit while composing, and
    mapping keys that are strings."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[attr-defined]
                raise _TooDeep(None, None, f"nesting is deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc,no-any-return]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, f"expected a mapping, found {node.id}", node.start_mark)
        self.flatten_mapping(node)  # type: ignore[attr-defined]
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(None, None, "a mapping key must be a string", key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)  # type: ignore[attr-defined]
        return mapping


class SafeManifestLoader(_ManifestRules, yaml.SafeLoader):
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


class _NotAlike(Exception):
    """libyaml's events for this text may differ from PyYAML's: read it again with the Python loader."""


def _libyaml_loader() -> Any:
    """A loader that takes its events from libyaml and builds nodes and data with the Python composer,
    constructor and resolver of ``SafeManifestLoader`` (so the depth limit, the string keys and the
    refused types apply alike), or None when PyYAML was built without libyaml."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML without its C extension
        return None

    # Composer comes before CParser, so check_node/get_node/compose_* are PyYAML's Python ones, calling
    # CParser's check_event/peek_event/get_event.
    class LibyamlManifestLoader(_ManifestRules, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc,valid-type]
        yaml_constructors = SafeManifestLoader.yaml_constructors
        yaml_multi_constructors = SafeManifestLoader.yaml_multi_constructors
        yaml_implicit_resolvers = SafeManifestLoader.yaml_implicit_resolvers
        yaml_path_resolvers = SafeManifestLoader.yaml_path_resolvers

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._depth = 0

        def compose_node(self, parent: Node | None, index: Any) -> Node:
            node: Node = super().compose_node(parent, index)
            # An empty plain scalar (``key:`` with no value, ``- `` with no item) can sit on another line
            # in libyaml's marks than in PyYAML's, at the end of a stream.
            if node.__class__ is ScalarNode and node.value == "" and node.style == "":
                raise _NotAlike
            return node

    return LibyamlManifestLoader


_LibyamlManifestLoader = _libyaml_loader()

# Texts libyaml may read differently from PyYAML: a NEL, LS or PS (line breaks to libyaml, not to these
# line numbers), a character PyYAML refuses, a byte-order mark, a tab (libyaml takes some that PyYAML
# refuses), a block scalar header followed by "#" with no space, and a "?" in a file that has a flow
# collection (libyaml reads "[a?b]" as one scalar).
_UNLIKE = re.compile("[\x85\u2028\u2029\ufeff\t]|[|>][-+0-9]*#|" + Reader.NON_PRINTABLE.pattern)


def _libyaml_reads_alike(text: str) -> bool:
    if _UNLIKE.search(text):
        return False
    return "?" not in text or ("[" not in text and "{" not in text)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _text_bytes(node: Node) -> int:
    """The bytes a node itself adds to the expanded document: its scalar text (UTF-8) and one byte of
    punctuation."""
    if isinstance(node, ScalarNode):
        value = str(node.value)
        return 1 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
    return 1


def _measure(root: Node) -> tuple[str, int] | None:
    """Refuse recursive aliases and alias bombs by looking at the node graph (shared nodes counted
    once per use, but computed once). Returns (message, line) or None. Iterative: alias chains may be
    deeper than Python's recursion limit."""
    memo: dict[int, tuple[int, int, int]] = {}  # id -> (expanded node count, depth, expanded bytes)
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
            text = _text_bytes(node) + sum(memo[id(k)][2] for k in kids)
            memo[nid] = (size, depth, text)
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
    size, depth, text = memo[id(root)]
    if size - unique > MAX_ALIAS_EXPANSION:
        return (
            f"aliases expand this document to {size} nodes from {unique}; at most "
            f"{MAX_ALIAS_EXPANSION} nodes may come from aliases (is this a 'billion laughs' bomb?)",
            root.start_mark.line + 1,
        )
    if text > MAX_DOCUMENT_BYTES:
        return (
            f"this document is {text} bytes once its aliases are expanded; the limit is "
            f"{MAX_DOCUMENT_BYTES} bytes (1 MiB)",
            root.start_mark.line + 1,
        )
    if depth > MAX_DEPTH:
        return f"nesting (through aliases) is deeper than {MAX_DEPTH} levels", root.start_mark.line + 1
    return None


def _measure_tree(root: Node) -> tuple[str, int] | None:
    """``_measure`` of a document without anchors: no node is shared, so nothing comes from an alias and
    the composer's depth limit already holds; only the text can be too big."""
    text = 0
    stack = [root]
    while stack:
        node = stack.pop()
        value = node.value
        if isinstance(node, ScalarNode):
            text += 1 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
        elif isinstance(node, SequenceNode):
            text += 1
            stack.extend(value)
        else:
            text += 1
            for pair in value:
                stack.extend(pair)
    if text > MAX_DOCUMENT_BYTES:
        return (
            f"this document is {text} bytes once its aliases are expanded; the limit is "
            f"{MAX_DOCUMENT_BYTES} bytes (1 MiB)",
            root.start_mark.line + 1,
        )
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


def parse_yaml(text: str, file: str, budget: Budget | None = None) -> tuple[list[Document], list[Problem]]:
    """Every document of a YAML stream; a problem in one document does not hide the next ones, but a
    syntax error ends the file (the parser cannot resynchronise). Each document, empty or not, is taken
    from ``budget`` (the commit's) before it is parsed; the one that overspends it ends the file.

    A text libyaml reads as PyYAML does (``_libyaml_reads_alike``) is parsed from libyaml's events; when
    that gives any problem, or the text is not such a text, PyYAML's own scanner and parser read it, so
    the documents, lines and messages are always the pure-Python loader's."""
    if _LibyamlManifestLoader is not None and _libyaml_reads_alike(text):
        before = (budget.documents, budget.spent) if budget is not None else None
        try:
            documents, problems = _parse(_LibyamlManifestLoader, text, file, budget)
            if not problems:
                return documents, problems
        except Exception:  # anything libyaml does differently is read again by PyYAML below
            pass
        if budget is not None and before is not None:
            budget.documents, budget.spent = before
    return _parse(SafeManifestLoader, text, file, budget)


def _parse(
    loader_class: Any, text: str, file: str, budget: Budget | None
) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    problems: list[Problem] = []
    try:
        loader = loader_class(text)  # the Python loader checks every character first: ReaderError
    except yaml.YAMLError as err:
        return [], [_yaml_problem(file, err, text)]
    index = 0
    anchors = "&" in text  # no "&", no anchor: every document is a tree
    try:
        while loader.check_node():
            if budget is not None:
                over = budget.take_document(file, loader.peek_event().start_mark.line + 1)
                if over is not None:
                    problems.append(over)
                    break
            node = loader.get_node()
            doc_index = index
            index += 1
            if node is None:
                continue
            bad = _measure(node) if anchors else _measure_tree(node)
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
            data, bad_strings = whole_and_finite(data, source)
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
