"""Property-based fuzzing of manifest roots: whatever a repository holds, loading ends in a Desired or in
InvalidInput whose problems name a file, a JSON pointer and a line, and never in a traceback.

Each target states what it feeds the loader and, where the answer is known in advance, what the answer
must be (an alias bomb is refused, a file over 1 MiB is refused, a cluster outside the allow-list is
refused at ``/spec/cluster``). Budgets: tests/fuzz/conftest.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import git
import pytest
from hostile import (
    UNKNOWN_KEY,
    SchemaStrategies,
    assert_well_formed,
    dump,
    encoded,
    example_documents,
    example_files,
    json_values,
    line_counts,
    mutated,
    value_pool,
    write_root,
    yaml_text,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from agent.config import AgentConfig, ClustersConfig
from agent.manifests.loading import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    Document,
    classify,
    parse_json,
    parse_yaml,
)
from agent.manifests.model import KINDS, Source
from agent.manifests.tree import DirTree, GitTree, normalize

FILES = example_files()
# The root text and byte targets add their file to: one valid Service and its task definition (loading
# the whole example for each of 10,000 examples would spend the budget on files that do not change).
SMALL = {
    "services/web.yaml": b"apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
    b"  cluster: prod\n  launchType: EC2\n  desiredCount: 1\n  taskDefinition: ../taskdefs/web.json\n",
    "taskdefs/web.json": b'{"family": "web", "containerDefinitions": '
    b'[{"name": "app", "image": "nginx:1", "memory": 256}]}',
}
DOCUMENTS = example_documents()
POOL = value_pool()
SCHEMAS = SchemaStrategies(POOL)
KIND_SCHEMAS = {
    "Service": "service.schema.json",
    "DeploymentStrategy": "deploymentstrategy.schema.json",
    "Window": "window.schema.json",
    "CapacityProvider": "capacityprovider.schema.json",
    "Cluster": "cluster.schema.json",
    "TaskDefinition": "taskdefinition.schema.json",
}
CLI = Path(sys.executable).with_name("ecs-gitops")
PROBLEM_LINE = __import__("re").compile(r"^(warning: )?[^\s:][^:]*(:\d+)?: /\S*: \S.*$")


@contextlib.contextmanager
def root_with(files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """A fresh folder holding ``files`` (hypothesis examples cannot share pytest's tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="ecs-gitops-fuzz-") as tmp:
        yield write_root(Path(tmp) / "root", files), Path(tmp)


def _finite(desired: Any) -> None:
    """What loading accepts is plain, finite JSON: it is hashed, diffed, sent to AWS and printed."""
    if desired is None:
        return
    specs = [m.spec for kind in KINDS for m in desired.by_kind(kind).values()]
    bodies = [td.body for td in desired.task_definitions.values()]
    json.dumps([specs, bodies], allow_nan=False)


# ------------------------------------------------------------------------------ documents, mutated


@given(
    rel=st.sampled_from(sorted(DOCUMENTS)),
    data=st.data(),
    unknown=st.booleans(),
)
def test_mutated_example_documents(rel: str, data: st.DataObject, unknown: bool) -> None:
    """manifests-example with one file's documents mutated (deleted, retyped, crossed over, deepened,
    renamed keys, unknown keys): well-formed problems only; an unknown top-level field on a document that
    is still a manifest or a task definition is reported at exactly ``/x-fuzz-unknown``."""
    docs = [data.draw(mutated(doc, POOL), label=f"{rel}#{i}") for i, doc in enumerate(DOCUMENTS[rel])]
    marked = None
    if unknown:
        index = data.draw(st.integers(0, len(docs) - 1), label="document")
        if isinstance(docs[index], dict):
            docs[index][UNKNOWN_KEY] = 1
            marked = docs[index]
    files = {**FILES, rel: dump(rel, docs)}
    with root_with(files) as (root, _):
        desired, problems = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    _finite(desired)
    event(f"mutated: {'valid' if desired is not None else 'invalid'}")
    parsed = (parse_json if rel.endswith(".json") else parse_yaml)(files[rel].decode(), rel)
    if marked is not None and not parsed[1]:  # the file parses: its documents are each validated
        found = classify([Document(marked, Source(rel))])
        if (marked.get("kind") in KINDS and found.manifests) or found.task_definitions:
            assert desired is None
            assert any(p.file == rel and p.pointer == f"/{UNKNOWN_KEY}" for p in problems), problems


@given(
    docs=st.lists(
        st.sampled_from(sorted(KIND_SCHEMAS)).flatmap(lambda k: SCHEMAS.for_kind(KIND_SCHEMAS[k])),
        min_size=1,
        max_size=4,
    ),
    as_json=st.booleans(),
)
def test_documents_generated_from_the_schemas(docs: list[Any], as_json: bool) -> None:
    """Documents of every kind built from the JSON Schemas (crossing in example values, so references
    resolve), added to manifests-example: the semantic checks never crash on what the schemas let
    through, and anything accepted is finite JSON."""
    rel = "generated/fuzz.json" if as_json and len(docs) == 1 else "generated/fuzz.yaml"
    files = {**FILES, rel: dump(rel, docs)}
    with root_with(files) as (root, _):
        desired, _ = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    _finite(desired)
    event(f"generated: {'valid' if desired is not None else 'invalid'}")


# ------------------------------------------------------------------------------ text and bytes


@given(text=yaml_text, data=st.data(), name=st.sampled_from(["services/fuzz.yaml", "fuzz.yml", "a/b/c.yaml"]))
def test_yaml_text_and_bytes(text: str, data: st.DataObject, name: str) -> None:
    """YAML streams from fragments that hit the parser's corners (tags, anchors, merge keys, directives,
    tabs, complex keys, bad escapes), saved in any encoding or with NULs: never a traceback."""
    raw = data.draw(encoded(text), label="bytes")
    files = {**SMALL, name: raw}
    with root_with(files) as (root, _):
        desired, _ = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    _finite(desired)


@given(value=json_values, data=st.data())
def test_json_text_and_bytes(value: Any, data: st.DataObject) -> None:
    """JSON files of any value, truncated, with duplicate keys, NaN, huge exponents or bad bytes."""
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    text += data.draw(st.sampled_from(["", "NaN", "1e400", '{"a": 1, "a": 2}', "}", "\n\n", "// c"]))
    raw = data.draw(encoded(text), label="bytes")
    files = {**SMALL, "taskdefs/fuzz.json": raw}
    with root_with(files) as (root, _):
        desired, _ = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    _finite(desired)


@given(width=st.integers(2, 12), levels=st.integers(1, 12), inside=st.booleans())
def test_alias_bombs_are_refused_and_small_aliases_pass(width: int, levels: int, inside: bool) -> None:
    """A document whose aliases expand past the budget is refused as a bomb (at once: the expansion is
    measured on the node graph), one well inside it is read; the bomb can sit in a manifest's tags."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    body = "\n".join(lines) + "\n"
    if inside:  # the bomb as a Service's tags value
        body = (
            "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: bomb}\nspec:\n  cluster: prod\n  x:\n"
            + "".join("    " + line + "\n" for line in lines)
        )
    expanded = sum(width**i for i in range(1, levels + 2))  # alias copies, roughly
    files = {**SMALL, "services/bomb.yaml": body.encode()}
    with root_with(files) as (root, _):
        desired, problems = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    bomb = [p for p in problems if p.file == "services/bomb.yaml" and "billion laughs" in p.message]
    if expanded > 4 * MAX_ALIAS_EXPANSION:
        assert bomb and desired is None, problems
    if expanded < MAX_ALIAS_EXPANSION // 4:
        assert not bomb, problems


@given(depth=st.integers(1, 400), style=st.sampled_from(["flow-list", "flow-map", "block", "json"]))
def test_deep_nesting_is_refused_without_recursion_errors(depth: int, style: str) -> None:
    """Nesting past the limit is refused with a located problem, in YAML (flow or block) and JSON; up to
    the limit it is read; never a RecursionError."""
    if style == "flow-list":
        text, rel = "a: " + "[" * depth + "1" + "]" * depth + "\n", "services/deep.yaml"
    elif style == "flow-map":
        text, rel = "a: " + "{k: " * depth + "1" + "}" * depth + "\n", "services/deep.yaml"
    elif style == "block":
        text = "".join("  " * i + "k:\n" for i in range(depth)) + "  " * depth + "k: 1\n"
        rel = "services/deep.yaml"
    else:
        text, rel = '{"a": ' + "[" * depth + "1" + "]" * depth + "}", "taskdefs/deep.json"
    files = {**SMALL, rel: text.encode()}
    with root_with(files) as (root, _):
        desired, problems = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    deep = [p for p in problems if p.file == rel and "deeper than" in p.message]
    if depth > MAX_DEPTH + 2:
        assert deep and desired is None, problems
    if depth < MAX_DEPTH - 2:
        assert not deep, problems


@settings(max_examples=max(5, settings().max_examples // 20))
@given(delta=st.integers(-64, 64), ext=st.sampled_from(["json", "yaml"]))
def test_files_around_the_size_limit(delta: int, ext: str) -> None:
    """A file over 1 MiB is refused unread with its size in the message; one at or under it is read."""
    size = MAX_FILE_BYTES + delta
    head = '{"family": "big", "containerDefinitions": [], "x": "' if ext == "json" else "x: "
    tail = '"}' if ext == "json" else "\n"
    raw = (head + "y" * (size - len(head) - len(tail)) + tail).encode()
    assert len(raw) == size
    rel = f"taskdefs/big.{ext}"
    files = {**SMALL, rel: raw}
    with root_with(files) as (root, _):
        _, problems = assert_well_formed(DirTree(root))
    too_big = [p for p in problems if p.file == rel and "limit is" in p.message]
    assert bool(too_big) == (size > MAX_FILE_BYTES), problems


# ------------------------------------------------------------------------------ paths and symlinks

MINIMAL = {
    "services/web.yaml": b"apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
    b"  cluster: prod\n  launchType: EC2\n  desiredCount: 1\n  taskDefinition: REF\n",
    "taskdefs/web.json": b'{"family": "web", "containerDefinitions": '
    b'[{"name": "app", "image": "nginx:1", "memory": 256}]}',
}
OUTSIDE_TD = (
    b'{"family": "outside-secret", "containerDefinitions": [{"name": "x", "image": "x", "memory": 8}]}'
)
path_parts = st.sampled_from(
    [
        "..",
        ".",
        "",
        "taskdefs",
        "web.json",
        "services",
        "..%2f",
        "%2e%2e",
        "~",
        "C:",
        "\\",
        "/",
        "//",
        "\x00",
        "web.json/",
        "outside",
        "link",
        "é",
        " ",
        "web.JSON",
        "*",
        "?",
        "$HOME",
        "\n",
    ]
)
hostile_paths = st.one_of(
    st.lists(path_parts, min_size=1, max_size=8).map("/".join),
    st.lists(path_parts, min_size=1, max_size=8).map("".join),
    st.text(max_size=60),
)


def _service_with(ref: str) -> bytes:
    return MINIMAL["services/web.yaml"].replace(b"REF", json.dumps(ref).encode())


@given(ref=hostile_paths)
def test_hostile_task_definition_paths(ref: str) -> None:
    """``taskDefinition`` paths with ``..``, absolute and drive paths, backslashes, NULs and escapes:
    either they name the one task-definition file inside the root, or the problem is at
    ``/spec/taskDefinition``; a file outside the root is never read."""
    files = {**MINIMAL, "services/web.yaml": _service_with(ref)}
    with root_with(files) as (root, tmp):
        (tmp / "outside").mkdir()
        (tmp / "outside" / "web.json").write_bytes(OUTSIDE_TD)
        (tmp / "web.json").write_bytes(OUTSIDE_TD)
        desired, problems = assert_well_formed(DirTree(root))
    lexical = normalize("services", ref)
    if desired is not None:
        assert lexical == "taskdefs/web.json" and desired.service_task_family == {"web": "web"}
        assert "outside-secret" not in desired.task_definitions
    else:
        assert any(p.file == "services/web.yaml" for p in problems), problems
        assert all("outside-secret" not in p.message for p in problems)


LINK_TARGETS = st.sampled_from(
    [
        "../taskdefs/web.json",
        "web.json",
        "../../outside/web.json",
        "../../outside",
        "/etc/passwd",
        "/",
        "..",
        ".",
        "loop",
        "../services",
        "missing.json",
        "../taskdefs",
        "../../web.json",
        "a/../../..",
        "../taskdefs/../../outside/web.json",
        "link1",
        "link2",
    ]
)
links = st.dictionaries(
    st.sampled_from(
        [
            "taskdefs/link1.json",
            "taskdefs/link2",
            "services/loop",
            "link1",
            "link2",
            "shared",
            "taskdefs/web.json",
            "services/also.yaml",
            "deep/a/b/link.yaml",
        ]
    ),
    LINK_TARGETS,
    min_size=1,
    max_size=5,
)


def _make_links(root: Path, chosen: dict[str, str]) -> None:
    for rel, target in chosen.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        os.symlink(target, path)


def _refs(desired: Any) -> None:
    if desired is not None:
        assert "outside-secret" not in desired.task_definitions


@given(
    chosen=links,
    ref=st.sampled_from(
        [
            "../taskdefs/web.json",
            "../taskdefs/link1.json",
            "../link1",
            "../shared/web.json",
            "../taskdefs/link2/web.json",
        ]
    ),
)
def test_symlinks_in_a_folder(chosen: dict[str, str], ref: str) -> None:
    """Any mix of symlinks (inside, outside, absolute, dangling, loops, to folders) in a folder root:
    nothing outside the root is read, and every refusal names the link."""
    files = {**MINIMAL, "services/web.yaml": _service_with(ref)}
    with root_with(files) as (root, tmp):
        (tmp / "outside").mkdir()
        (tmp / "outside" / "web.json").write_bytes(OUTSIDE_TD)
        (tmp / "web.json").write_bytes(OUTSIDE_TD)
        _make_links(root, chosen)
        desired, problems = assert_well_formed(DirTree(root), extra_files=set(chosen))
    _refs(desired)
    assert all("outside-secret" not in p.message for p in problems)


@settings(max_examples=max(5, settings().max_examples // 5))
@given(
    chosen=links,
    ref=st.sampled_from(["../taskdefs/web.json", "../taskdefs/link1.json", "../link1", "../shared/web.json"]),
)
def test_symlinks_in_a_git_commit(chosen: dict[str, str], ref: str) -> None:
    """The same symlinks committed to git and read from blobs, the manifest root being a subfolder of the
    repository beside an ``outside`` folder: links that leave the manifest root are refused, never
    followed, even when their target exists in the same commit."""
    files = {**MINIMAL, "services/web.yaml": _service_with(ref)}
    with root_with(files) as (root, tmp):
        repo_dir = tmp / "repo"
        repo_dir.mkdir()
        root.rename(repo_dir / "deploy")
        (repo_dir / "outside").mkdir()
        (repo_dir / "outside" / "web.json").write_bytes(OUTSIDE_TD)
        (repo_dir / "web.json").write_bytes(OUTSIDE_TD)
        _make_links(repo_dir / "deploy", chosen)
        repo = git.Repo.init(repo_dir)
        repo.git.add(A=True)
        who = {
            "GIT_AUTHOR_NAME": "f",
            "GIT_AUTHOR_EMAIL": "f@x",
            "GIT_COMMITTER_NAME": "f",
            "GIT_COMMITTER_EMAIL": "f@x",
        }
        repo.git.commit("-qm", "fuzz", env=who)
        try:
            desired, problems = assert_well_formed(
                GitTree(repo_dir, "HEAD", "deploy"), extra_files=set(chosen)
            )
        finally:
            repo.close()
    _refs(desired)
    assert all("outside-secret" not in p.message for p in problems)


# ------------------------------------------------------------------------------ the allow-list

CLUSTER_NAMES = st.one_of(
    st.sampled_from(["prod", "ops", "staging", "Prod", "prod ", "prod-2"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
)


def _cluster_refs() -> list[tuple[str, int, str, str]]:
    """(file, document, pointer, cluster name) for every place the example names a cluster."""
    out = []
    for rel, docs in DOCUMENTS.items():
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or doc.get("apiVersion") != "ecs-gitops/v1":
                continue
            spec = doc.get("spec") or {}
            if doc.get("kind") == "Cluster":
                pointer = "/spec/clusterName" if "clusterName" in spec else "/metadata/name"
                out.append((rel, i, pointer, spec.get("clusterName") or doc["metadata"]["name"]))
            elif doc.get("kind") in ("Service", "CapacityProvider") and "cluster" in spec:
                out.append((rel, i, "/spec/cluster", spec["cluster"]))
    return out


CLUSTER_REFS = _cluster_refs()


@given(
    allow=st.lists(CLUSTER_NAMES, unique=True, max_size=4),
    moved=st.dictionaries(
        st.sampled_from([r for r in CLUSTER_REFS if r[2] == "/spec/cluster"]), CLUSTER_NAMES, max_size=3
    ),
)
def test_clusters_outside_the_allow_list_are_refused(allow: list[str], moved: dict) -> None:
    """With ``clusters.allow`` set, exactly the services, capacity providers and clusters that name a
    cluster outside it are refused, each at its own file and pointer; the others load."""
    docs = {rel: [dict(d) if isinstance(d, dict) else d for d in ds] for rel, ds in DOCUMENTS.items()}
    expected = set()
    for ref in CLUSTER_REFS:
        rel, index, pointer, name = ref
        if ref in moved:
            name = moved[ref]
            doc = docs[rel][index] = json.loads(json.dumps(docs[rel][index]))
            doc["spec"]["cluster"] = name
        if name not in allow:
            expected.add((rel, pointer))
    files = {**FILES, **{rel: dump(rel, ds) for rel, ds in docs.items() if rel in {r[0] for r in moved}}}
    config = AgentConfig(clusters=ClustersConfig(allow=tuple(allow)))
    with root_with(files) as (root, _):
        desired, problems = assert_well_formed(DirTree(root), config)
    refused = {(p.file, p.pointer) for p in problems if "allow-list" in p.message}
    # The pointer may sit in another document of the same file: compare by (file, pointer) sets. Moving
    # a service may break something else (its capacity provider is not on the new cluster): not counted.
    assert refused == expected, problems
    if not expected and not moved:
        assert desired is not None, problems


# ------------------------------------------------------------------------------ the CLI

CONFIG = b"apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@given(text=yaml_text, data=st.data())
def test_cli_validate_in_process_on_hostile_files(text: str, data: st.DataObject) -> None:
    """``ecs-gitops validate`` on a root with a hostile file: exit 1 when anything is wrong (0 when
    valid), every line of the report is ``FILE[:LINE]: /pointer: message``, no traceback."""
    raw = data.draw(encoded(text), label="bytes")
    files = {**MINIMAL, "services/web.yaml": _service_with("../taskdefs/web.json"), "services/fuzz.yaml": raw}
    with root_with(files) as (root, tmp):
        (tmp / "config.yaml").write_bytes(CONFIG)
        desired, _ = assert_well_formed(DirTree(root))
        code, out, err = _cli(["--config", str(tmp / "config.yaml"), "validate", str(root)])
    assert "Traceback" not in out + err
    assert code == (0 if desired is not None else 1), out + err
    for line in err.splitlines():
        if not line.startswith("invalid:"):
            assert PROBLEM_LINE.match(line), line


@pytest.mark.slow
@pytest.mark.skipif(not CLI.exists(), reason="the ecs-gitops console script is not installed")
@settings(max_examples=max(3, settings().max_examples // 50))
@given(text=yaml_text, data=st.data())
def test_cli_validate_subprocess_on_hostile_files(text: str, data: st.DataObject) -> None:
    """The installed command as a user runs it, on hostile files: exit 1 and no traceback on stderr."""
    raw = data.draw(encoded(text), label="bytes")
    files = {**MINIMAL, "services/web.yaml": _service_with("../nowhere.json"), "services/fuzz.yaml": raw}
    with root_with(files) as (root, tmp):
        (tmp / "config.yaml").write_bytes(CONFIG)
        result = subprocess.run(
            [str(CLI), "--config", str(tmp / "config.yaml"), "validate", str(root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "services/web.yaml:8: /spec/taskDefinition: " in result.stderr


# ------------------------------------------------------------------------------ what the fuzzers found

FOUND = {
    # name: (file, bytes, file the problem is in, pointer, message fragment)
    "control character in YAML": ("services/x.yaml", b"a: 1\nb: \x1f\n", "services/x.yaml", "", "U+001F"),
    "lone surrogate escape in YAML": (
        "services/x.yaml",
        b'a: "\\ud800"\n',
        "services/x.yaml",
        "/a",
        "surrogate",
    ),
    "lone surrogate escape in JSON": (
        "taskdefs/x.json",
        b'{"a": ["\\udc00"]}',
        "taskdefs/x.json",
        "/a/0",
        "surrogate",
    ),
    "NaN in YAML": ("services/x.yaml", b"a: .nan\n", "services/x.yaml", "/a", "finite number"),
    "NEL inside a value, then a problem on line 2": (
        "services/x.yaml",
        "a: 'x\u0085y\u0085z\u2028'\nb: .nan\n".encode(),
        "services/x.yaml",
        "/b",
        "finite number",
    ),
    "0x_ in YAML": ("services/x.yaml", b"a: 1\nr: 0x_\n", "services/x.yaml", "", "'0x_' is not a number"),
    "0b_ in YAML": ("services/x.yaml", b"r: [0b_]\n", "services/x.yaml", "", "'0b_' is not a number"),
    "1e400 in JSON": ("taskdefs/x.json", b'{"a": 1e400}', "taskdefs/x.json", "/a", "finite number"),
    "NUL in a taskDefinition path": (
        "services/web.yaml",
        _service_with("\x00"),
        "services/web.yaml",
        "/spec/taskDefinition",
        "control character",
    ),
    "a taskDefinition path longer than NAME_MAX": (
        "services/web.yaml",
        _service_with("../taskdefs/" + "web.json" * 40),
        "services/web.yaml",
        "/spec/taskDefinition",
        "no file",
    ),
    "newline in a taskDefinition path": (
        "services/web.yaml",
        _service_with("\n"),
        "services/web.yaml",
        "/spec/taskDefinition",
        "control character",
    ),
    "a bake of 10^25 seconds": (
        "strategies/huge.yaml",
        b"apiVersion: ecs-gitops/v1\nkind: DeploymentStrategy\nmetadata: {name: huge}\n"
        b"spec: {type: rolling, bake: 10000000000000000000000000s}\n",
        "strategies/huge.yaml",
        "/spec/bake",
        "longer than a year",
    ),
    "a Fargate cpu of 4,304 digits": (
        "taskdefs/big.json",
        b'{"family": "big", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "'
        + b"1024" * 1076
        + b'", "memory": "2048", "containerDefinitions": [{"name": "app", "image": "nginx:1"}]}',
        "taskdefs/big.json",
        "/cpu",
        "(4304 characters) is not a size ECS reads",
    ),
    "a Fargate memory of 400 nines in GB": (
        "taskdefs/big.json",
        b'{"family": "big", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", '
        b'"memory": "' + b"9" * 400 + b' GB", "containerDefinitions": [{"name": "app", "image": "nginx:1"}]}',
        "taskdefs/big.json",
        "/memory",
        "is not a size ECS reads: MiB (1024) or GB (2 GB)",
    ),
    "a duration in Devanagari digits": (
        "strategies/odd.yaml",
        "apiVersion: ecs-gitops/v1\nkind: DeploymentStrategy\nmetadata: {name: odd}\n"
        "spec: {type: rolling, bake: \u0967\u0966m}\n".encode(),
        "strategies/odd.yaml",
        "/spec/bake",
        "must be a duration",
    ),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_what_the_fuzzers_found_stays_fixed(name: str) -> None:
    """Each input a fuzzer once turned into a traceback, a multi-line message or an accepted NaN is now a
    located problem."""
    rel, raw, file, pointer, fragment = FOUND[name]
    files = {**SMALL, rel: raw}
    with root_with(files) as (root, _):
        desired, problems = assert_well_formed(DirTree(root), line_counts=line_counts(files))
    assert desired is None
    assert any(p.file == file and p.pointer == pointer and fragment in p.message for p in problems), problems
    if name.startswith("NEL"):
        assert [p.line for p in problems if p.file == file] == [2]
