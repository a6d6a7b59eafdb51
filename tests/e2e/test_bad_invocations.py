"""Mistakes a user makes, through the installed ``ecs-gitops`` console script.

Each invocation exits 1 with one line on standard error saying what is wrong and where (``FILE:LINE`` for
a config file; a count line ``invalid: N problem(s)`` may follow, and the JSON log lines of ``apply`` are
not counted), prints no traceback, and makes no AWS call that changes anything: the sandbox every
invocation points at counts what it served, and no operation but a read may appear.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e_support import REPO_ROOT, SandboxProcess, base_env, closed_port, make_repository, needs_cli, run

pytestmark = [needs_cli, pytest.mark.slow]

INVALID = REPO_ROOT / "tests" / "invalid" / "schema-unknown-field"
HEADER = "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
CONFIGS = {
    "unknown.yaml": HEADER + "source:\n  repo: .\n  intervall: 30s\n",
    "duration.yaml": HEADER + "source:\n  repo: .\n  interval: soon\n",
    "syntax.yaml": HEADER + "source:\n  interval: 5m\n  branch: [main\n",
    "two.yaml": HEADER + "---\n" + HEADER,
    "github.yaml": HEADER + "source:\n  repo: .\nstatus:\n  publisher: github\n",
    "kind.yaml": "apiVersion: ecs-gitops/v1\nkind: Service\n",
    "signers.yaml": HEADER + "verify:\n  mode: ssh\n  allowedSigners: no-such-file\n",
    "unreachable.yaml": HEADER + "aws:\n  region: eu-west-1\n  endpointUrl: http://127.0.0.1:{closed}\n",
}

# (id, arguments, what standard error must say, environment: "sandbox" | "bare" | "nocreds" | VAR=VALUE)
CASES = [
    # bad refs, missing paths, folders that are not repositories
    (
        "validate-unknown-ref",
        "validate {ws}/deployments --ref nosuchref",
        "--ref nosuchref: no such commit, branch or tag",
    ),
    ("validate-ref-before-history", "validate {ws}/deployments --ref HEAD~3", "--ref HEAD~3: no such commit"),
    ("validate-ref-of-plain-folder", "validate {ws}/plain --ref HEAD", "plain is not in a git repository"),
    (
        "validate-missing-folder",
        "validate {ws}/nowhere",
        "nowhere: /: cannot list the manifest root: no such folder",
    ),
    ("validate-empty-folder", "validate {ws}/empty", "empty: /: no manifests or task definitions found here"),
    (
        "validate-invalid-manifest",
        f"validate {INVALID}",
        'services/web.yaml:15: /spec/desiredcount: unknown field "desiredcount"',
    ),
    (
        "plan-missing-repo",
        "plan --repo /nonexistent/deployments",
        "/nonexistent/deployments: /: cannot list the manifest root: no such folder",
    ),
    (
        "plan-unknown-ref",
        "plan --repo {ws}/deployments --ref nosuchref",
        "--ref nosuchref: no such commit, branch or tag in",
    ),
    (
        "plan-subfolder-unknown-ref",
        "plan --repo {ws}/deployments/services --ref nosuchref",
        "--ref nosuchref: no such commit",
    ),
    ("plan-ref-of-plain-folder", "plan --repo {ws}/plain --ref HEAD", "plain is not in a git repository"),
    (
        "plan-folder-missing-at-ref",
        "plan --repo {ws}/deployments --path nosuch --ref HEAD",
        "no folder 'nosuch' at commit",
    ),
    (
        "plan-invalid-manifests",
        f"plan --repo {INVALID}",
        'services/web.yaml:15: /spec/desiredcount: unknown field "desiredcount"',
    ),
    (
        "apply-plain-folder",
        "apply --repo {ws}/plain --data-dir {data}",
        "--repo {ws}/plain is not a git repository",
    ),
    (
        "apply-folder-inside-repo",
        "apply --repo {ws}/deployments/services --data-dir {data}",
        "it is a folder of the repository",
    ),
    (
        "apply-missing-repo",
        "apply --repo /nonexistent/deployments --data-dir {data}",
        "--repo /nonexistent/deployments: no such folder",
    ),
    (
        "apply-unknown-ref",
        "apply --repo {ws}/deployments --ref nosuchref --data-dir {data}",
        "'nosuchref' is not a commit of",
    ),
    (
        "apply-folder-missing-at-commit",
        "apply --repo {ws}/deployments --path nosuch --data-dir {data}",
        "no folder 'nosuch' at commit",
    ),
    (
        "apply-invalid-manifests",
        "apply --repo {ws}/invalid --data-dir {data}",
        'services/web.yaml:15: /spec/desiredcount: unknown field "desiredcount"',
    ),
    ("apply-data-dir-is-a-file", "apply --repo {ws}/deployments --data-dir {ws}/afile", "afile: File exists"),
    ("status-plain-folder", "status --repo {ws}/plain", "plain: not a git repository"),
    ("status-unknown-ref", "status --repo {ws}/deployments --ref nosuchref", "unknown revision 'nosuchref'"),
    # bad flags and commands
    ("no-command", "", "the following arguments are required: COMMAND"),
    ("unknown-command", "deploy", "invalid choice: 'deploy'"),
    ("plan-unknown-flag", "plan --bogus", "unrecognized arguments: --bogus"),
    ("plan-flag-without-value", "plan --region", "argument --region: expected one argument"),
    (
        "plan-pr-not-a-number",
        "plan --publish --ref HEAD --pr seven",
        "argument --pr: invalid int value: 'seven'",
    ),
    ("plan-publish-without-ref", "plan --publish", "--publish needs --ref"),
    ("run-unknown-flag", "run --watch", "unrecognized arguments: --watch"),
    ("sandbox-unknown-command", "sandbox down", "invalid choice: 'down'"),
    (
        "sandbox-port-out-of-range",
        "sandbox up --port 99999",
        "argument --port: not a port (0 to 65535): '99999'",
    ),
    ("sandbox-clock-speed-zero", "sandbox up --no-seed --clock-speed 0", "--clock-speed must be positive"),
    (
        "sandbox-clock-start-not-a-time",
        "sandbox up --clock-start tuesday",
        "argument --clock-start: not an ISO 8601 time",
    ),
    (
        "sandbox-missing-seed",
        "sandbox up --seed {ws}/no-seed.yaml",
        "no-seed.yaml: invalid sandbox seed: cannot read the file",
    ),
    ("sandbox-alarm-bad-state", "sandbox alarm web-5xx RED", "argument STATE: invalid choice: 'RED'"),
    (
        "sandbox-alarm-unknown",
        "sandbox alarm web-500 ALARM --endpoint {sandbox}",
        "no CloudWatch alarm named 'web-500'",
    ),
    (
        "sandbox-alarm-nobody-there",
        "sandbox alarm web-5xx ALARM --endpoint http://127.0.0.1:{closed}",
        "cannot set alarm 'web-5xx' at http://127.0.0.1:",
    ),
    (
        "sandbox-lambda-nobody-there",
        "sandbox lambda smoke FAILED --endpoint http://127.0.0.1:{closed}",
        "no sandbox at http://127.0.0.1:",
    ),
    (
        "sandbox-hook-without-receiver",
        "sandbox hook postTestTraffic FAILED --endpoint {sandbox}",
        "serves no HTTP hooks",
    ),
    # bad agent configs: FILE:LINE
    (
        "config-missing",
        "--config {ws}/no-config.yaml validate {ws}/plain",
        "no-config.yaml: /: cannot read the config file",
    ),
    (
        "config-unknown-field",
        "--config {ws}/unknown.yaml validate {ws}/plain",
        'unknown.yaml:5: /source/intervall: unknown field "intervall"',
    ),
    (
        "config-bad-duration",
        "validate {ws}/plain --config {ws}/duration.yaml",
        "duration.yaml:5: /source/interval: must be a duration",
    ),
    (
        "config-not-yaml",
        "--config {ws}/syntax.yaml validate {ws}/plain",
        "syntax.yaml:6: /: not valid YAML or JSON",
    ),
    (
        "config-two-documents",
        "--config {ws}/two.yaml validate {ws}/plain",
        "two.yaml:4: /: holds several YAML documents",
    ),
    (
        "config-github-without-repository",
        "--config {ws}/github.yaml validate {ws}/plain",
        "github.yaml:5: /status/github: required field is missing",
    ),
    (
        "config-wrong-kind",
        "--config {ws}/kind.yaml validate {ws}/plain",
        'kind.yaml:2: /kind: must be "AgentConfig"',
    ),
    (
        "config-missing-signers",
        "--config {ws}/signers.yaml validate {ws}/plain",
        "signers.yaml:5: /verify/allowedSigners: no such file",
    ),
    ("config-of-run", "run --config {ws}/unknown.yaml", "unknown.yaml:5: /source/intervall: unknown field"),
    (
        "config-variable",
        "validate {ws}/plain",
        "ECS_GITOPS_SOURCE_INTERVAL: /source/interval: must be a duration",
        "ECS_GITOPS_SOURCE_INTERVAL=soon",
    ),
    # AWS that cannot be reached or entered
    (
        "plan-unreachable-flag",
        "plan --repo {ws}/plain --endpoint-url http://127.0.0.1:{closed}",
        "cannot reach AWS at http://127.0.0.1:{closed} (set by --endpoint-url)",
    ),
    (
        "plan-unreachable-variable",
        "plan --repo {ws}/plain",
        "cannot reach AWS at http://127.0.0.1:{closed} (set by AWS_ENDPOINT_URL)",
        "AWS_ENDPOINT_URL=http://127.0.0.1:{closed}",
    ),
    (
        "plan-unreachable-config",
        "--config {ws}/unreachable.yaml plan --repo {ws}/plain",
        "(set by aws.endpointUrl in {ws}/unreachable.yaml)",
        "bare",
    ),
    (
        "apply-unreachable",
        "apply --repo {ws}/deployments --data-dir {data} --endpoint-url http://127.0.0.1:{closed}",
        "the tick did not finish: cannot reach AWS at http://127.0.0.1:{closed}",
    ),
    (
        "plan-no-credentials",
        "plan --repo {ws}/plain --endpoint-url http://192.0.2.1:9",
        "no AWS credentials found",
        "nocreds",
    ),
    (
        "plan-unknown-profile",
        "plan --repo {ws}/plain --profile nosuch",
        "no AWS profile named 'nosuch' (set by --profile)",
    ),
    (
        "plan-unknown-profile-variable",
        "plan --repo {ws}/plain",
        "no AWS profile named 'nosuch' (set by AWS_PROFILE)",
        "AWS_PROFILE=nosuch",
    ),
]

COUNT_LINE = re.compile(r"^invalid: \d+ problem\(s\)$")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployments repository (manifests-example), a plain copy, an invalid repository, an empty folder,
    a file, and the agent configs above."""
    ws = tmp_path_factory.mktemp("ws")
    example = REPO_ROOT / "manifests-example"
    make_repository(ws / "deployments", example)
    shutil.copytree(example, ws / "plain")
    make_repository(ws / "invalid", INVALID)
    (ws / "empty").mkdir()
    (ws / "afile").write_text("not a folder\n")
    return ws


def _environment(kind: str, sandbox: SandboxProcess, fill: dict[str, str]) -> dict[str, str]:
    if kind == "bare":
        return base_env()
    if kind == "nocreds":
        return base_env(AWS_REGION="eu-west-1")
    extra = dict([kind.format(**fill).split("=", 1)]) if "=" in kind else {}
    return sandbox.env(**extra)


def test_at_least_thirty_mistakes_are_tried() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_mistake_is_one_clear_line_and_exit_1(
    case: tuple[str, ...], workspace: Path, sandbox_process: SandboxProcess, tmp_path: Path
) -> None:
    _, command, expected, *rest = case
    for name, text in CONFIGS.items():
        if not (workspace / name).exists():
            (workspace / name).write_text(text.format(closed=PORT))
    fill = {
        "ws": str(workspace),
        "data": str(tmp_path / "data"),
        "sandbox": sandbox_process.endpoint,
        "closed": str(PORT),
    }
    args = [part.format(**fill) for part in command.split()]
    before = sandbox_process.mutations()
    done = run(args, cwd=workspace, env=_environment(rest[0] if rest else "sandbox", sandbox_process, fill))
    said = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("{")]
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert said and expected.format(**fill) in said[0], said
    assert len(said) == 1 or (len(said) == 2 and COUNT_LINE.match(said[1])), said
    assert sandbox_process.mutations() == before, "an AWS call that changes something was made"


PORT = closed_port()  # one refused port for the whole table (each worker picks its own)
