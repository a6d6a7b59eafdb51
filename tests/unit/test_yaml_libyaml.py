"""YAML read from libyaml's events gives exactly what PyYAML's own scanner and parser give."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.manifests import yaml_parsing
from agent.manifests.limits import Budget
from agent.manifests.yaml_parsing import (
    MAX_DOCUMENT_BYTES,
    SafeManifestLoader,
    _libyaml_reads_alike,
    _LibyamlManifestLoader,
    _measure,
    _measure_tree,
    _parse,
    parse_yaml,
)
from agent.sandbox.harness import CORPUS

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_YAML = sorted((REPO_ROOT / "manifests-example").glob("**/*.y*ml"))
CORPUS_FILES = sorted(CORPUS.glob("**/*.json"))

pytestmark = pytest.mark.skipif(_LibyamlManifestLoader is None, reason="PyYAML without libyaml")


def _python(text: str, budget: Budget | None = None) -> tuple[list, list]:
    return _parse(SafeManifestLoader, text, "f.yaml", budget)


def _libyaml(text: str) -> tuple[list, list]:
    return _parse(_LibyamlManifestLoader, text, "f.yaml", None)


def _outcome(result: tuple[list, list]) -> tuple[list, list]:
    """The documents with their line maps (which ``Source`` leaves out of ``==``), and the problems."""
    documents, problems = result
    return [(d.data, d.source, d.source.lines) for d in documents], problems


@pytest.mark.parametrize("path", EXAMPLE_YAML, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_example_manifests_read_alike(path: Path) -> None:
    """Every example manifest takes the libyaml path and gives the same documents and line maps."""
    text = path.read_text(encoding="utf-8")
    assert _libyaml_reads_alike(text)
    fast, slow = _outcome(_libyaml(text)), _outcome(_python(text))
    assert fast == slow
    assert slow[0] and slow[1] == []


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name[:60])
def test_corpus_read_as_yaml_alike(path: Path) -> None:
    """A real task definition read as YAML gives the same document and line map either way."""
    text = path.read_text(encoding="utf-8")
    slow = _outcome(_python(text))
    assert _outcome(parse_yaml(text, "f.yaml")) == slow
    if _libyaml_reads_alike(text):
        assert _outcome(_libyaml(text)) == slow


@pytest.mark.parametrize(
    ("text", "pointer", "line"),
    [
        ('a: "x\x85y"\nb: 1\n', "/b", 2),
        ("# a comment\u2028\nb: 1\n", "/b", 2),
        ("a: 'x\u2029y'\nb: 1\n", "/b", 2),
    ],
    ids=["NEL", "LS", "PS"],
)
def test_editor_line_breaks_take_the_python_path(text: str, pointer: str, line: int) -> None:
    """NEL, LS and PS are line breaks to libyaml but not to an editor: such a text is read by PyYAML."""
    assert not _libyaml_reads_alike(text)
    (document,), problems = parse_yaml(text, "f.yaml")
    assert problems == []
    assert document.source.lines[pointer] == line
    (shifted,), _ = _libyaml(text)
    assert shifted.source.lines[pointer] == line + 1  # what reading it with libyaml would have said


@pytest.mark.parametrize(
    "text",
    [
        "a: b: c\n",  # libyaml words this error differently
        "*a\n",
        "- a\n-b\n",
        "x: |\n  a\n b\n",
        "[a?b]\n",  # libyaml reads one scalar where PyYAML refuses
        "a: b\tc\n",
        "a:\t1\n",
        "a: |#\n  x\n",
        "%YAML 1.3\n---\na: 1\n",  # libyaml refuses what PyYAML reads
        "? \n",  # an empty scalar that libyaml marks on another line
        "! #",
        "a: 1\n---\nb: [1, 2\n",
        "a: !!binary aGk=\n---\nb: 1\n",
        "a: 0x_\n",
        "a: &x [*x]\n",
        "a: 1\na: 2\n",
    ],
)
def test_problems_and_differences_read_as_pyyaml_does(text: str) -> None:
    """A text with a problem, or one libyaml reads differently, gives PyYAML's documents and messages."""
    assert _outcome(parse_yaml(text, "f.yaml")) == _outcome(_python(text))


def test_budget_spent_once_after_reading_again() -> None:
    """A file read again by PyYAML takes its documents from the commit's budget once."""
    text = "a: 1\n---\nb: 2\n---\nc: 3\n"
    fast_budget, slow_budget = Budget(max_documents=2), Budget(max_documents=2)
    assert _outcome(parse_yaml(text, "f.yaml", fast_budget)) == _outcome(_python(text, slow_budget))
    assert (
        (fast_budget.documents, fast_budget.spent) == (slow_budget.documents, slow_budget.spent) == (3, True)
    )
    fast_budget, slow_budget = Budget(), Budget()
    assert _outcome(parse_yaml(text, "f.yaml", fast_budget)) == _outcome(_python(text, slow_budget))
    assert fast_budget == slow_budget


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "x" * MAX_DOCUMENT_BYTES + "\n",
        "a: " + "é" * (MAX_DOCUMENT_BYTES // 2) + "\n",
        'a: "' + "\\L" * (MAX_DOCUMENT_BYTES // 3 + 1) + '"\n',
        "a: [x, {b: c}]\nd: \U0001f600\n",
    ],
    ids=["ascii", "two-byte", "escapes", "small"],
)
def test_measure_of_a_tree_is_measure(text: str) -> None:
    """Without anchors, the tree measure says what the general measure says."""
    loader = SafeManifestLoader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    assert _measure_tree(node) == _measure(node)


_ATOMS = [
    *("a", "b", "1", ": ", ":", "- ", "-", "?", "? ", "[", "]", "{", "}", ", ", "#", " #c"),
    *("&x ", "*x", "!t ", "!!str ", "! ", "|", ">", "|-", "'", '"', "\n", "\n  ", "\n ", "  "),
    *("\r", "\r\n", "---", "...", "%YAML 1.1\n", "%TAG !e! tag:e,2000:\n", "!e!t ", "\\", "`", "é"),
    *('"\\u00e9"', '"\\ud83d\\ude00"', '"\\ud83d"', '"\\L\\N\\_"', "~", "null", "0x_", ".nan", "<<: "),
    *("\t", "\x85", "2024-01-01", "'it''s'", "k" * 1030 + ": v"),
]


def test_random_texts_read_alike() -> None:
    """Texts made of YAML's punctuation give the same documents, lines and problems on both paths."""
    rnd = random.Random(20)
    for _ in range(1500):
        text = "".join(rnd.choice(_ATOMS) for _ in range(rnd.randint(1, 14)))
        assert _outcome(parse_yaml(text, "f.yaml")) == _outcome(_python(text)), text


def test_without_libyaml_the_python_loader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML built without libyaml reads every text with its own parser."""
    monkeypatch.setattr(yaml_parsing, "_LibyamlManifestLoader", None)
    text = "a: 1\nb: [x]\n"
    assert _outcome(parse_yaml(text, "f.yaml")) == _outcome(_python(text))


def test_a_libyaml_error_is_worded_by_pyyaml() -> None:
    """A syntax error libyaml finds is reported in PyYAML's words and at PyYAML's line."""
    text = "a: 1\nb: c: d\n"
    assert _libyaml_reads_alike(text)
    (libyaml_problem,) = _libyaml(text)[1]
    assert "in this context" in libyaml_problem.message
    documents, problems = parse_yaml(text, "f.yaml")
    assert documents == []
    assert [(p.message, p.line) for p in problems] == [
        ("not valid YAML: mapping values are not allowed here", 2)
    ]
