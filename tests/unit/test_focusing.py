"""Which part of a commit a tick acts on first: the changed services and what they wait for, and only when
the commit is small, shares nothing with other services and an earlier commit is known."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent.manifests.model import Desired, Manifest, Source, TaskDefinitionFile
from agent.reconcile.focusing import Focus, changed_services


def _desired(n: int = 20, image: dict[int, str] | None = None, **spec: Any) -> Desired:
    """n services svc00.. in cluster c, each with its own family; svc01 dependsOn svc00."""
    image = image or {}
    services, tds, families = {}, {}, {}
    for i in range(n):
        name = f"svc{i:02d}"
        body = {
            "family": name,
            "containerDefinitions": [{"name": "app", "image": f"app:{image.get(i, '1')}"}],
        }
        tds[name] = TaskDefinitionFile(body, Source(f"taskdefs/{name}.json"))
        families[name] = name
        service_spec = {"cluster": "c", "taskDefinition": f"taskdefs/{name}.json", **spec.get(name, {})}
        if i == 1:
            service_spec["dependsOn"] = ["svc00"]
        services[name] = Manifest("Service", name, service_spec, Source("services.yaml", i))
    clusters = {"c": Manifest("Cluster", "c", {}, Source("cluster.yaml"))}
    return Desired(services=services, clusters=clusters, task_definitions=tds, service_task_family=families)


FOCUS = Focus(least=10, share=0.1)


def test_an_image_bump_of_one_service_is_planned_first_with_what_it_waits_for() -> None:
    """svc01 changed: the part holds svc01 and svc00 (its dependency), their task definitions, the cluster."""
    part = FOCUS.part(_desired(), _desired(image={1: "2"}))
    assert part is not None
    assert list(part.services) == ["svc00", "svc01"]
    assert set(part.task_definitions) == {"svc00", "svc01"} and set(part.service_task_family) == {
        "svc00",
        "svc01",
    }
    assert list(part.clusters) == ["c"]


def test_new_and_edited_services_are_changed_removed_ones_are_not() -> None:
    """A new service and one whose spec changed are changed; a service the commit removed is left to the
    whole tick (prune)."""
    before = _desired(5)
    after = _desired(6, svc02={"desiredCount": 3})
    del after.services["svc04"]
    assert changed_services(before, after) == {"svc02", "svc05"}


@pytest.mark.parametrize(
    ("case", "before", "after"),
    [
        ("the first tick: nothing to compare with", None, _desired(image={3: "2"})),
        ("nothing changed", _desired(), _desired()),
        ("fewer services than least", _desired(5), _desired(5, image={3: "2"})),
        ("more than a tenth changed", _desired(), _desired(image={i: "2" for i in range(3, 6)})),
        (
            "a cluster changed",
            _desired(),
            dataclasses.replace(
                _desired(image={3: "2"}),
                clusters={"c": Manifest("Cluster", "c", {"settings": []}, Source("cluster.yaml"))},
            ),
        ),
        (
            "a task definition no service runs changed",
            dataclasses.replace(
                _desired(),
                task_definitions={
                    **_desired().task_definitions,
                    "job": TaskDefinitionFile({"v": 1}, Source("j")),
                },
            ),
            dataclasses.replace(
                _desired(image={3: "2"}),
                task_definitions={
                    **_desired().task_definitions,
                    "job": TaskDefinitionFile({"v": 2}, Source("j")),
                },
            ),
        ),
    ],
)
def test_no_first_pass(case: str, before: Desired | None, after: Desired) -> None:
    """Cases where the whole tick runs alone."""
    assert FOCUS.part(before, after) is None, case


def test_waves_that_make_the_part_too_large_mean_no_first_pass() -> None:
    """A service of wave 1 waits for every service of wave 0: twenty services, more than a tenth."""
    after = _desired(image={3: "2"}, svc03={"wave": 1})
    before = _desired(svc03={"wave": 1})
    assert FOCUS.part(before, after) is None
    assert Focus(least=10, share=1.0).part(before, after) is not None
