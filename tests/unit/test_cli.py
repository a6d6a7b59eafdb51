"""The command line as a user types it: options in either place, errors as FILE: /pointer: message."""

from __future__ import annotations

from pathlib import Path

from agent.cli import main


def test_run_validates_its_config_before_starting(tmp_path: Path, capsys) -> None:
    """`ecs-gitops run --config FILE` rejects an invalid config with every problem and exit code 1."""
    bad = tmp_path / "agent.yaml"
    bad.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\nsource: {intervall: 30s}\n"
        "status: {publisher: github}\n"
    )
    assert main(["run", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: /source/intervall: unknown field" in err  # FILE:LINE, like manifests
    assert f"{bad}:4: /status/github: required field is missing" in err
    assert "Traceback" not in err


def test_config_may_come_before_or_after_the_command(tmp_path: Path, capsys) -> None:
    """--config works as a global option and as an option of the command."""
    missing = str(tmp_path / "missing.yaml")
    assert main(["--config", missing, "validate", "."]) == 1
    assert main(["validate", "--config", missing, "."]) == 1
    err = capsys.readouterr().err
    assert err.count("cannot read the config file") == 2


def test_aws_endpoint_url_from_the_environment_gets_sandbox_credentials(monkeypatch) -> None:
    """With AWS_ENDPOINT_URL on loopback and no credentials anywhere, the agent uses dummy ones."""
    from agent.aws.clients import Aws

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    aws = Aws()
    assert aws.endpoint_url == "http://127.0.0.1:4566"
    assert aws.client("ecs")._request_signer._credentials.access_key == "sandbox"

