"""Property-based fuzzing of the agent config: any file and any ``ECS_GITOPS_*`` environment ends in an
``AgentConfig`` or in ``InvalidInput`` whose problems name the file (or the variable) and a JSON pointer,
never in a traceback; the CLI says so with exit 1."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hostile import (
    EXAMPLE,
    UNKNOWN_KEY,
    assert_problem_well_formed,
    collect_pool,
    dump,
    encoded,
    json_values,
    mutated,
    value_pool,
    yaml_text,
)
from hypothesis import given
from hypothesis import strategies as st

from agent.config import AgentConfig, env_settings, load_config
from agent.errors import InvalidInput, Problem
from agent.manifests.loading import MAX_DEPTH, parse_yaml

EXAMPLE_CONFIG = (EXAMPLE / "agent-config.yaml").read_text()
CONFIG_DOC = parse_yaml(EXAMPLE_CONFIG, "agent-config.yaml")[0][0].data
CONFIG_POOL: dict[str, list[Any]] = {}
collect_pool(CONFIG_DOC, CONFIG_POOL)  # the config's own values first, then the manifests' by key
CONFIG_POOL.update({k: v for k, v in value_pool().items() if k not in CONFIG_POOL})
VARIABLES = sorted(env_settings())


def _load(path: str | None, env: dict[str, str]) -> tuple[AgentConfig | None, list[Problem]]:
    """``load_config`` where anything but InvalidInput fails the test; the problems are checked."""
    try:
        config = load_config(path, env)
    except InvalidInput as err:
        problems = err.problems
        assert problems and any(p.severity == "error" for p in problems)
        files = {Problem(f, "", "-").file for f in (path or "environment", *env)}
        for problem in problems:
            assert_problem_well_formed(problem, files)
        return None, problems
    # What is accepted is usable: plain, finite values, a duration that parses, one-line warnings.
    json.dumps(dataclasses.asdict(config), allow_nan=False)
    assert 0 <= config.source.interval_seconds <= 24 * 3600  # the scheduler takes it as a timedelta
    assert all("\n" not in w for w in config.warnings)
    return config, []


def _with_file(raw: bytes, name: str = "config.yaml"):  # type: ignore[no-untyped-def]
    tmp = tempfile.TemporaryDirectory(prefix="ecs-gitops-fuzz-config-")
    path = Path(tmp.name) / name
    path.write_bytes(raw)
    return tmp, str(path)


@given(text=st.one_of(yaml_text, json_values.map(json.dumps)), data=st.data(), json_name=st.booleans())
def test_config_text_and_bytes(text: str, data: st.DataObject, json_name: bool) -> None:
    """A config file of any text or bytes (YAML corners, JSON, encodings, NULs): a config or located
    problems naming the file."""
    raw = data.draw(encoded(text), label="bytes")
    tmp, path = _with_file(raw, "config.json" if json_name else "config.yaml")
    with tmp:
        _load(path, {})


@given(data=st.data(), unknown=st.booleans(), as_json=st.booleans())
def test_mutated_example_config(data: st.DataObject, unknown: bool, as_json: bool) -> None:
    """manifests-example/agent-config.yaml mutated (values retyped, crossed over, deepened, keys renamed
    or deleted): an unknown top-level field is always reported at ``/x-fuzz-unknown`` in the file."""
    doc = data.draw(mutated(CONFIG_DOC, CONFIG_POOL), label="config")
    if unknown and isinstance(doc, dict):
        doc[UNKNOWN_KEY] = True
    name = "config.json" if as_json else "config.yaml"
    tmp, path = _with_file(dump(name, [doc]), name)
    with tmp:
        config, problems = _load(path, {})
    if unknown and isinstance(doc, dict):
        assert config is None
        unread = any(p.pointer == "" for p in problems)  # too deep, too big: the file is refused whole
        assert unread or any(p.file == path and p.pointer == f"/{UNKNOWN_KEY}" for p in problems), problems


env_values = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "65536",
            "8080",
            "1.5",
            "nan",
            "inf",
            "true",
            "yes",
            "a,b,,c",
            ",",
            "prod",
            "http://x",
            "gitnotes",
            "dynamodb",
            "1h30m",
            "60s",
            "0s",
            "\t",
            "é",
            "x" * 300,
        ]
    ),
    st.text(max_size=30).filter(lambda s: "\x00" not in s),
)


@given(
    env=st.dictionaries(
        st.one_of(
            st.sampled_from(VARIABLES),
            st.sampled_from(
                ["ECS_GITOPS_SOURCE_REPOO", "ECS_GITOPS_X", "ECS_GITOPS_GIT_TOKEN", "ECS_GITOPS_"]
            ),
        ),
        env_values,
        max_size=6,
    ),
    with_file=st.booleans(),
)
def test_environment_overrides(env: dict[str, str], with_file: bool) -> None:
    """Any values in any ``ECS_GITOPS_*`` variables, over the example file or over defaults: a config, or
    problems each naming the variable that set the field (or the file)."""
    if with_file:
        tmp, path = _with_file(EXAMPLE_CONFIG.encode())
        with tmp:
            _, problems = _load(path, env)
    else:
        _, problems = _load(None, env)
    for problem in problems:
        if problem.file in env:
            assert env[problem.file] != "", problem  # an empty variable counts as unset


@given(width=st.integers(2, 12), levels=st.integers(4, 10), depth=st.integers(MAX_DEPTH + 3, 300))
def test_config_alias_bombs_and_deep_nesting(width: int, levels: int, depth: int) -> None:
    """A config file that is an alias bomb or nested past the limit is refused at once, located."""
    lines = ["apiVersion: ecs-gitops/v1", "kind: AgentConfig", "a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    for body in ("\n".join(lines) + "\n", "log: " + "[" * depth + "]" * depth + "\n"):
        tmp, path = _with_file(body.encode())
        with tmp:
            config, problems = _load(path, {})
        if body.startswith("log") or width**levels > 40_000:
            assert config is None and any(p.file == path for p in problems)


def _cli(argv: list[str]) -> tuple[int, str]:
    from agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


@given(text=yaml_text, data=st.data())
def test_cli_with_a_hostile_config(text: str, data: st.DataObject) -> None:
    """``ecs-gitops validate --config HOSTILE`` exits 1 with located problems and no traceback whenever
    the config is invalid."""
    raw = data.draw(encoded(text), label="bytes")
    tmp, path = _with_file(raw)
    with tmp:
        config, _ = _load(path, {})
        code, output = _cli(["--config", path, "validate", str(EXAMPLE)])
    assert "Traceback" not in output
    if config is None:
        assert code == 1 and path in output, output


def test_what_the_config_fuzzer_found_stays_fixed(tmp_path: Path) -> None:
    """A key that str.isdigit() calls a digit but int() refuses ("²") crashed sorting the problems."""
    path = tmp_path / "config.yaml"
    path.write_text('{"\\u00b2": null, "x": {"2": 1, "10": 2}}')
    _, problems = _load(str(path), {})
    assert [p.pointer for p in problems][:2] == ["/apiVersion", "/kind"]
    assert "/\u00b2" in [p.pointer for p in problems]


def test_a_nan_variable_is_refused() -> None:
    """ECS_GITOPS_PACING_CREATE_SERVICE_BURST=nan (or inf) is a problem naming the variable, not a NaN burst
    (found by the environment fuzzer: float("nan") passed every minimum)."""
    for text in ("nan", "inf", "-inf", "NaN"):
        config, problems = _load(None, {"ECS_GITOPS_PACING_CREATE_SERVICE_BURST": text})
        assert config is None
        assert [(p.file, p.pointer) for p in problems] == [
            ("ECS_GITOPS_PACING_CREATE_SERVICE_BURST", "/pacing/createService/burst")
        ]
