"""Live services on the CODE_DEPLOY controller: held until the manifest opts in to the migration to the
native ECS engine, then one explained UpdateService; and how plans show holds, notes and accounts."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from test_planning import _applied, _change, _desired

from agent.plan.model import UPDATE, AccountRef
from agent.plan.planning import build_plan
from agent.plan.render import plan_to_dict, render_text


def _code_deploy(desired: Any, task_sets: int = 1) -> Any:
    """ECS after ``desired`` was applied, with prod/web on CodeDeploy (task sets instead of deployments)."""
    observed = _applied(desired)
    web = observed.services[("prod", "web")]
    web["deploymentController"] = {"type": "CODE_DEPLOY"}
    web["taskSets"] = [
        {
            "id": f"ecs-svc/{i}",
            "status": "PRIMARY" if i == 0 else "ACTIVE",
            "taskDefinition": web["taskDefinition"],
        }
        for i in range(task_sets)
    ]
    return observed


@pytest.mark.parametrize(
    ("overrides", "task_sets", "held", "waiting", "says"),
    [
        ({}, 1, True, False, "set migrateFromCodeDeploy: true"),
        ({"migrateFromCodeDeploy": False}, 1, True, False, "set migrateFromCodeDeploy: true"),
        (
            {"migrateFromCodeDeploy": True},
            2,
            True,
            True,
            "CodeDeploy deployment is in progress (2 task sets)",
        ),
        (
            {"migrateFromCodeDeploy": True, "strategy": {"type": "blueGreen", "engine": "agent"}},
            1,
            True,
            False,
            "cannot become EXTERNAL",
        ),
        ({"migrateFromCodeDeploy": True}, 1, False, False, ""),
    ],
)
def test_code_deploy_service_is_held_unless_migration_is_asked_for(
    overrides: dict[str, Any], task_sets: int, held: bool, waiting: bool, says: str
) -> None:
    """Without the opt-in, during a CodeDeploy deployment, or towards EXTERNAL the change is held."""
    plan = build_plan(_desired(**overrides), _code_deploy(_desired(), task_sets), "abc")
    web = _change(plan, "Service", "prod/web")
    assert web.action == UPDATE
    controller = next(f for f in web.fields if f.path == "/deploymentController/type")
    assert controller.old == "CODE_DEPLOY" and controller.new in ("ECS", "EXTERNAL")
    if held:
        assert web.hold is not None and web.hold.waiting is waiting and says in web.hold.reason
        assert not web.note
        bump = build_plan(_desired("repo/app:v2", **overrides), _code_deploy(_desired(), task_sets), "abc")
        family = _change(bump, "TaskDefinition", "web")  # registered only once a service may run it
        assert family.hold is not None and family.hold.reason == "registered when prod/web may be deployed"
        assert family.hold.waiting is waiting
    else:
        assert web.hold is None
        assert web.note.startswith("migration from CodeDeploy: UpdateService switches")
        assert web.request["updateService"]["deploymentController"] == {"type": "ECS"}


def test_migration_carries_the_other_changes_in_the_same_call() -> None:
    """An image bump committed with the opt-in goes in the one UpdateService that switches the controller."""
    plan = build_plan(_desired("repo/app:v2", migrateFromCodeDeploy=True), _code_deploy(_desired()), "abc")
    assert _change(plan, "TaskDefinition", "web").hold is None
    update = _change(plan, "Service", "prod/web").request["updateService"]
    assert update["deploymentController"] == {"type": "ECS"}
    assert update["taskDefinition"].family == "web" and update["taskDefinition"].arn is None


def test_the_opt_in_does_nothing_on_a_service_already_on_ecs() -> None:
    """migrateFromCodeDeploy left in a manifest after the migration changes nothing."""
    desired = _desired(migrateFromCodeDeploy=True)
    web = _change(build_plan(desired, _applied(_desired()), "abc"), "Service", "prod/web")
    assert (web.action, web.hold, web.note) == ("no-change", None, "")


def test_text_and_json_show_holds_notes_and_accounts() -> None:
    """A held change says why, a migration its note, and with accounts a header names each account."""
    held = build_plan(_desired(), _code_deploy(_desired()), "abc")
    text = render_text(held)
    web_line = "~ Service prod/web  [wave 1, after api]\n"  # web dependsOn api
    assert web_line + "    ! held: runs on CodeDeploy (deployment controller CODE_DEPLOY)" in text
    assert '    ~ /deploymentController/type: "CODE_DEPLOY" -> "ECS"' in text
    web = next(c for c in plan_to_dict(held)["changes"] if c["name"] == "prod/web")
    assert web["hold"] == {"reason": _change(held, "Service", "prod/web").hold.reason, "waiting": False}
    assert "note" not in web and "account" not in web

    migrating = build_plan(_desired(migrateFromCodeDeploy=True), _code_deploy(_desired()), "abc")
    assert web_line + "    # migration from CodeDeploy: " in render_text(migrating)

    prod = AccountRef("prod", "111111111111", "eu-west-1")
    staging = AccountRef("staging", "222222222222", "us-east-1")
    changes = [replace(c, account=prod) for c in migrating.changes[:2]]
    changes += [replace(c, account=staging) for c in migrating.changes[2:]]
    both = replace(migrating, changes=tuple(changes))
    lines = render_text(both).splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("Account ")]
    assert [lines[i] for i in headers] == [
        "Account prod (111111111111, eu-west-1):",
        "Account staging (222222222222, us-east-1):",
    ]
    assert lines[headers[1] - 1] == ""  # a blank line between accounts
    as_json = json.loads(json.dumps(plan_to_dict(both)))
    assert as_json["changes"][0]["account"] == {
        "name": "prod",
        "accountId": "111111111111",
        "region": "eu-west-1",
    }
    assert as_json["changes"][-1]["account"]["name"] == "staging"
