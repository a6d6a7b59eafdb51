"""What RegisterTaskDefinition enforces but botocore's model does not say: names, health-check ranges,
Fargate task sizes and ports.

``problems(body)`` is a pure function of one task-definition body (the RegisterTaskDefinition shape)
returning ``(JSON pointer, message)`` pairs; ``located(tds)`` turns them into ``Problem`` objects with
the file, the pointer inside it and the line. Each rule quotes the sentence of the ECS API reference it
comes from. Where ECS's documentation and its behaviour could differ, the looser bound is used: a check
here must never refuse what ECS would register.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agent.errors import Problem
from agent.manifests.fields import MAX_DIGITS, cpu_units, memory_mib
from agent.manifests.model import TaskDefinitionFile

# RegisterTaskDefinition family / ContainerDefinition name: "Up to 255 letters (uppercase and lowercase),
# numbers, underscores, and hyphens are allowed."
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

# HealthCheck: interval "You may specify between 5 and 300 seconds."; timeout "You may specify between
# 2 and 60 seconds." (newer pages say 120; the looser bound is used); retries "You may specify between 1
# and 10 retries."; startPeriod "You can specify between 0 and 300 seconds."
HEALTH_CHECK_RANGES = {"interval": (5, 300), "timeout": (2, 120), "retries": (1, 10), "startPeriod": (0, 300)}

# RegisterTaskDefinition memory: "If using the Fargate launch type, this field is required and you must
# use one of the following values. This determines your range of supported values for the cpu parameter."
# (cpu units -> the memory values in MiB that go with it)
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# containerPortRange: "The containerPortRange valid values are between 1 and 65535."
_PORT_MAX = 65535
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name_problem(value: Any, what: str) -> str | None:
    if isinstance(value, str) and not _NAME.match(value):
        return (
            f"{what} {value[:80]!r} is not accepted by ECS: up to 255 letters, numbers, underscores and "
            "hyphens"
        )
    return None


def _task_size(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Task-level cpu and memory in a spelling ECS reads. RegisterTaskDefinition cpu: "It can be
    expressed as an integer using CPU units (for example, 1024) or as a string using vCPUs (for example,
    1 vCPU or 1 vcpu)"; memory: "as an integer using MiB (for example, 1024) or as a string using GB
    (for example, 1GB or 1 GB)". A string of more than MAX_DIGITS digits is no size either."""
    found = []
    for key, read, spelled in (("cpu", cpu_units, "CPU units (1024) or vCPUs (1 vCPU)"),
                               ("memory", memory_mib, "MiB (1024) or GB (2 GB)")):  # fmt: skip
        value = body.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
            continue  # the schema reports a value of another type
        units = read(value)
        if not (isinstance(units, str) and units.isascii() and units.isdigit() and len(units) <= MAX_DIGITS):
            if isinstance(value, int):
                shown = f"of {value.bit_length()} bits"  # str() refuses an int of 4,300 digits
            elif len(str(value)) > 24:
                shown = f"{str(value)[:20]!r}… ({len(str(value))} characters)"
            else:
                shown = repr(value)
            found.append((f"/{key}", f"task {key} {shown} is not a size ECS reads: {spelled}"))
    return found


def _fargate_size(body: dict[str, Any]) -> list[tuple[str, str]]:
    if "FARGATE" not in _items(body.get("requiresCompatibilities")):
        return []
    cpu, memory = cpu_units(body.get("cpu")), memory_mib(body.get("memory"))
    if not (isinstance(cpu, str) and cpu.isdigit() and isinstance(memory, str) and memory.isdigit()):
        return []  # missing or unreadable: _task_size (and the schema) report it
    sizes = ", ".join(str(c) for c in FARGATE_SIZES)
    cpu_n, memory_n = int(cpu), int(memory)
    platform = body.get("runtimePlatform") if isinstance(body.get("runtimePlatform"), dict) else {}
    family = str(platform.get("operatingSystemFamily", "LINUX"))
    # RegisterTaskDefinition memory: "The CPU units cannot be less than 1 vCPU when you use Windows
    # containers on Fargate."
    if family.upper().startswith("WINDOWS") and cpu_n < 1024:
        return [("/cpu", f"Fargate runs Windows containers with at least 1 vCPU (1024 units), not {cpu_n}")]
    if cpu_n not in FARGATE_SIZES:
        return [("/cpu", f"Fargate has no task size with cpu {cpu_n}; cpu must be one of {sizes}")]
    allowed = FARGATE_SIZES[cpu_n]
    if memory_n not in allowed:
        step = allowed[1] - allowed[0]
        return [
            (
                "/memory",
                f"Fargate has no task size with cpu {cpu_n} and memory {memory_n} MiB; with cpu {cpu_n} "
                f"memory is {allowed[0]} to {allowed[-1]} MiB in steps of {step}",
            )
        ]
    return []


def _health_check(health: Any, base: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not isinstance(health, dict):
        return found
    for key, (low, high) in HEALTH_CHECK_RANGES.items():
        value = _int(health.get(key))
        if value is not None and not low <= value <= high:
            found.append((f"{base}/healthCheck/{key}", f"healthCheck {key} must be between {low} and {high}"))
    return found


def _ports(container: dict[str, Any], base: str, network_mode: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for pi, pm in enumerate(_items(container.get("portMappings"))):
        if not isinstance(pm, dict):
            continue
        where = f"{base}/portMappings/{pi}"
        container_port, host_port = _int(pm.get("containerPort")), _int(pm.get("hostPort"))
        if container_port is not None and not 1 <= container_port <= _PORT_MAX:
            found.append((f"{where}/containerPort", f"containerPort must be between 1 and {_PORT_MAX}"))
        if host_port is not None and not 0 <= host_port <= _PORT_MAX:
            found.append((f"{where}/hostPort", f"hostPort must be between 0 and {_PORT_MAX}"))
        # PortMapping hostPort: "If you use containers in a task with the awsvpc or host network mode,
        # the hostPort can either be left blank or set to the same value as the containerPort."
        if (
            network_mode in ("awsvpc", "host")
            and host_port is not None
            and container_port is not None
            and host_port != container_port
        ):
            found.append(
                (
                    f"{where}/hostPort",
                    f"in {network_mode} network mode hostPort must be left out or equal containerPort "
                    f"({container_port}), not {host_port}",
                )
            )
        span = pm.get("containerPortRange")
        if isinstance(span, str):
            # containerPortRange: "The first port in the range must be less than last port in the range."
            match = _RANGE.match(span)
            if not match or not 1 <= int(match.group(1)) < int(match.group(2)) <= _PORT_MAX:
                found.append(
                    (
                        f"{where}/containerPortRange",
                        f"containerPortRange {span[:40]!r} must be FIRST-LAST with 1 <= FIRST < LAST <= "
                        f"{_PORT_MAX}",
                    )
                )
    return found


def problems(body: Any) -> list[tuple[str, str]]:
    """``(pointer, message)`` for every rule ECS enforces that the task definition breaks."""
    if not isinstance(body, dict):
        return []
    found: list[tuple[str, str]] = []
    message = _name_problem(body.get("family"), "family")
    if message:
        found.append(("/family", message))
    size = _task_size(body)
    found += size or _fargate_size(body)
    for ci, container in enumerate(_items(body.get("containerDefinitions"))):
        if not isinstance(container, dict):
            continue
        base = f"/containerDefinitions/{ci}"
        message = _name_problem(container.get("name"), "container name")
        if message:
            found.append((f"{base}/name", message))
        found += _health_check(container.get("healthCheck"), base)
        found += _ports(container, base, body.get("networkMode"))
    return found


def located(tds: Iterable[TaskDefinitionFile]) -> list[Problem]:
    """The problems of each task definition, located in its file (inline ones under their pointer)."""
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for td in tds:
        key = (td.source.file, td.pointer)
        if key in seen:
            continue
        seen.add(key)
        for pointer, message in problems(td.body):
            full = f"{td.pointer}{pointer}"
            out.append(Problem(td.source.file, full, message, td.source.line_of(full)))
    return out
