"""Facts about ECS's request shapes that both the manifest checks and the planner need.

The checks (agent.manifests.checks) refuse what the planner could not send; the planner (agent.plan)
builds the requests. Keeping these here lets the planner depend on the manifests, never the reverse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# Fields DescribeTaskDefinition adds that RegisterTaskDefinition does not take: a task-definition file
# copied from `aws ecs describe-task-definition` may hold them; they are tolerated and dropped.
READ_ONLY_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)

# The CreateService request fields a Service manifest's spec passes through as they are.
SERVICE_REQUEST_FIELDS = (
    "serviceName",
    "taskDefinition",
    "availabilityZoneRebalancing",
    "loadBalancers",
    "serviceRegistries",
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "role",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "schedulingStrategy",
    "deploymentController",
    "tags",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
    "monitoring",
)


def _spec(manifest: Any) -> Mapping[str, Any]:
    spec = getattr(manifest, "spec", manifest)
    return spec if isinstance(spec, Mapping) else {}


def explicit_wave(manifest: Any) -> int:
    """A service's ``wave`` (0 when unset)."""
    wave = _spec(manifest).get("wave", 0)
    return wave if isinstance(wave, int) and not isinstance(wave, bool) else 0


# Task-level cpu and memory in the spellings ECS accepts ("0.25 vCPU", "1 GB").
_CPU_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*vcpus?\s*$", re.IGNORECASE)
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gb|gib|mb|mib)\s*$", re.IGNORECASE)


# The most digits a task size is read with: any real size has a handful; a longer string of digits is
# kept as written (and refused by validation) rather than converted.
MAX_DIGITS = 18


def cpu_units(value: Any) -> Any:
    """Task-level CPU as ECS stores it: ``"0.25 vCPU"`` -> ``"256"``, ``1024`` -> ``"1024"``.

    A value in no known spelling is returned unchanged (validation reports it, not the planner).
    """
    return _in_units(value, _CPU_RE, lambda m: float(m.group(1)) * 1024)


def memory_mib(value: Any) -> Any:
    """Task-level memory in MiB as ECS stores it: ``"1 GB"`` -> ``"1024"``, ``"0.5GB"`` -> ``"512"``."""
    return _in_units(
        value, _MEMORY_RE, lambda m: float(m.group(1)) * (1024 if m.group(2).lower() in ("gb", "gib") else 1)
    )


def _in_units(value: Any, spelled: re.Pattern[str], amount: Any) -> Any:
    """A number, or a string of digits, as ECS's string of units; a string ``spelled`` matches as
    ``amount(match)`` rounded; anything else unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 60 else value  # str() refuses an int of 4,300 digits
    if isinstance(value, float):
        return str(int(value)) if math.isfinite(value) and abs(value) < 10**MAX_DIGITS else value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return str(int(text)) if len(text) <= MAX_DIGITS else text  # int() refuses 4,300 digits
        match = spelled.match(text)
        if match:
            units = amount(match)
            return str(round(units)) if math.isfinite(units) and units < 10**MAX_DIGITS else value
    return value


# Environment entries that look like credentials: by the variable's name, or by the value's shape.
_CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL"
    r"|(?:^|_)(?:API_?|PRIVATE_?|ACCESS_?|AUTH_?|SIGNING_?)?KEY(?:$|_)",
    re.IGNORECASE,
)
_CREDENTIAL_VALUES = (
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*(?:PRIVATE KEY|CERTIFICATE)"), "a PEM key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
    (
        re.compile(r"^(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,})$"),
        "a token",
    ),
    (re.compile(r"^[0-9a-fA-F]{32,}$"), "a long hex string"),
    (re.compile(r"^(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/_-]{40,}={0,2}$"), "a long base64 string"),
)


def credential_reason(name: str, value: str) -> str | None:
    """Why a plain environment entry looks like a credential (its name, or the shape of its value), or
    None: the checks warn about it, and plans show its value as ``(sensitive)``."""
    for rx, what in _CREDENTIAL_VALUES:
        if rx.search(value):
            return f'the value of "{name}" looks like {what}'
    if value and not value.startswith("arn:") and _CREDENTIAL_NAME.search(name):
        return f'"{name}" looks like a credential'
    return None
