"""ECS's documented task-definition defaults: where each one sits, its value and the sentence that says so.

ECS describes a task definition with values the user never wrote, and accepts a file that spells out
a default it would have filled in anyway. Both must plan as "no change", so every row here is applied
by ``agent/plan/taskdefs.py`` to both sides of a comparison:

* ``drop`` rows are removed when equal to their default (absent and default become "absent");
* ``fill`` rows are filled in when absent (absent and default become "default"); the normal form of
  these existed before the drop rows and content hashes of registered revisions depend on it.

``minimal_task_definition`` (taskdefs.py) removes every row's default, which is what a user would write.
``docs/manifests.md`` lists the same rows; a unit test keeps the two in step.

Paths are JSON pointers inside a task definition; ``*`` stands for every item of a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

API = "ECS API reference"
GUIDE = "ECS Developer Guide"


@dataclass(frozen=True)
class Default:
    """One documented default of a RegisterTaskDefinition field."""

    path: str
    value: Any
    other: Any  # a value that is not the default (tests use it to prove the field still matters)
    mode: str  # "drop" or "fill"
    source: str  # which page: "<API reference shape>" or "<developer guide page>"
    sentence: str


DEFAULTS: tuple[Default, ...] = (
    # ------------------------------------------------------------------ container definitions
    Default(
        "/containerDefinitions/*/essential",
        True,
        False,
        "fill",
        f"{API}: ContainerDefinition",
        "If this parameter is omitted, a container is assumed to be essential.",
    ),
    Default(
        "/containerDefinitions/*/portMappings/*/protocol",
        "tcp",
        "udp",
        "fill",
        f"{API}: PortMapping",
        "The default is tcp.",
    ),
    Default(
        "/containerDefinitions/*/mountPoints/*/readOnly",
        False,
        True,
        "drop",
        f"{API}: MountPoint",
        "The default value is false.",
    ),
    Default(
        "/containerDefinitions/*/volumesFrom/*/readOnly",
        False,
        True,
        "drop",
        f"{API}: VolumeFrom",
        "The default value is false.",
    ),
    Default(
        "/containerDefinitions/*/healthCheck/interval",
        30,
        10,
        "fill",
        f"{API}: HealthCheck",
        "The default value is 30 seconds.",
    ),
    Default(
        "/containerDefinitions/*/healthCheck/timeout",
        5,
        10,
        "fill",
        f"{API}: HealthCheck",
        "The default value is 5.",
    ),
    Default(
        "/containerDefinitions/*/healthCheck/retries",
        3,
        5,
        "fill",
        f"{API}: HealthCheck",
        "The default value is 3.",
    ),
    Default(
        "/containerDefinitions/*/healthCheck/startPeriod",
        0,
        60,
        "drop",
        f"{API}: HealthCheck",
        "By default, the startPeriod is off.",
    ),
    Default(
        "/containerDefinitions/*/linuxParameters/initProcessEnabled",
        False,
        True,
        "drop",
        f"{API}: LinuxParameters",
        "Run an init process inside the container that forwards signals and reaps processes. This "
        "parameter maps to the --init option to docker run. (false is docker run without --init)",
    ),
    Default(
        "/containerDefinitions/*/linuxParameters/swappiness",
        60,
        10,
        "drop",
        f"{API}: LinuxParameters",
        "If the swappiness parameter is not specified, a default value of 60 is used.",
    ),
    Default(
        "/containerDefinitions/*/restartPolicy/enabled",
        False,
        True,
        "drop",
        f"{API}: ContainerRestartPolicy",
        "Specifies whether a restart policy is enabled for the container. (a disabled policy is no "
        "policy: the whole restartPolicy is dropped when enabled is false)",
    ),
    Default(
        "/containerDefinitions/*/restartPolicy/restartAttemptPeriod",
        300,
        60,
        "drop",
        f"{API}: ContainerRestartPolicy",
        "By default, a container must run for 300 seconds before it can be restarted.",
    ),
    Default(
        "/containerDefinitions/*/versionConsistency",
        "enabled",
        "disabled",
        "drop",
        f"{API}: ContainerDefinition",
        "By default, the value is enabled.",
    ),
    Default(
        "/containerDefinitions/*/logConfiguration/options/awslogs-create-group",
        "false",
        "true",
        "drop",
        f"{API}: LogConfiguration",
        "awslogs-create-group ... If this option isn't specified, it defaults to false.",
    ),
    Default(
        "/containerDefinitions/*/firelensConfiguration/options/enable-ecs-log-metadata",
        "true",
        "false",
        "drop",
        f"{GUIDE}: Custom log routing (firelens)",
        "By default, Amazon ECS adds additional fields in your log entries that help identify the source "
        "of the logs. You can turn off this action by setting enable-ecs-log-metadata to false.",
    ),
    # ------------------------------------------------------------------------------- volumes
    Default(
        "/volumes/*/configuredAtLaunch",
        False,
        True,
        "drop",
        f"{API}: Volume",
        "Indicates whether the volume should be configured at launch time. (false: it is not)",
    ),
    Default(
        "/volumes/*/efsVolumeConfiguration/rootDirectory",
        "/",
        "/data",
        "fill",
        f"{API}: EFSVolumeConfiguration",
        "If this parameter is omitted, the root of the Amazon EFS volume will be used. Specifying / will "
        "have the same effect as omitting this parameter.",
    ),
    Default(
        "/volumes/*/efsVolumeConfiguration/transitEncryption",
        "DISABLED",
        "ENABLED",
        "drop",
        f"{API}: EFSVolumeConfiguration",
        "If this parameter is omitted, the default value of DISABLED is used.",
    ),
    Default(
        "/volumes/*/efsVolumeConfiguration/authorizationConfig/iam",
        "DISABLED",
        "ENABLED",
        "drop",
        f"{API}: EFSAuthorizationConfig",
        "If this parameter is omitted, the default value of DISABLED is used.",
    ),
    Default(
        "/volumes/*/dockerVolumeConfiguration/driver",
        "local",
        "rexray/ebs",
        "drop",
        f"{GUIDE}: Docker volumes",
        "When using Docker volumes, the built-in local driver or a third-party volume driver can be used. "
        "(ECS describes an omitted driver as local)",
    ),
    Default(
        "/volumes/*/dockerVolumeConfiguration/scope",
        "task",
        "shared",
        "drop",
        f"{API}: DockerVolumeConfiguration",
        "Docker volumes that are scoped to a task are automatically provisioned when the task starts and "
        "destroyed when the task stops. (ECS describes an omitted scope as task)",
    ),
    Default(
        "/volumes/*/dockerVolumeConfiguration/autoprovision",
        False,
        True,
        "drop",
        f"{GUIDE}: Task definition parameters (dockerVolumeConfiguration)",
        "Default value: false. ... If the scope is task then this parameter must either be omitted or "
        "set to false.",
    ),
    # ----------------------------------------------------------------------------- task level
    Default(
        "/enableFaultInjection",
        False,
        True,
        "drop",
        f"{API}: RegisterTaskDefinition",
        "The default value is false.",
    ),
    Default(
        "/runtimePlatform/operatingSystemFamily",
        "LINUX",
        "WINDOWS_SERVER_2022_CORE",
        "fill",
        f"{GUIDE}: Task definition parameters (runtimePlatform)",
        "Default: LINUX",
    ),
    Default(
        "/runtimePlatform/cpuArchitecture",
        "X86_64",
        "ARM64",
        "fill",
        f"{GUIDE}: Task definition parameters (runtimePlatform)",
        "Default: X86_64",
    ),
    Default(
        "/ephemeralStorage/sizeInGiB",
        20,
        21,
        "drop",
        f"{GUIDE}: Fargate task ephemeral storage",
        "By default, Amazon ECS tasks that are hosted on Fargate using platform version 1.4.0 or later "
        "receive a minimum of 20 GiB of ephemeral storage.",
    ),
)

# Defaults that depend on other fields; taskdefs.py applies them by hand and the docs list them.
CONDITIONAL: tuple[tuple[str, str, str], ...] = (
    (
        "/networkMode",
        "bridge (awsvpc when requiresCompatibilities has FARGATE; none on Windows)",
        "If no network mode is specified, the default is bridge. For Amazon ECS tasks on Fargate, the "
        "awsvpc network mode is required.",
    ),
    (
        "/containerDefinitions/*/portMappings/*/hostPort",
        "containerPort in awsvpc and host mode; 0 (dynamic) in bridge mode",
        "If you use containers in a task with the awsvpc or host network mode, the hostPort can either be "
        "left blank or set to the same value as the containerPort. If you use containers in a task with "
        "the bridge network mode, ... you can omit the hostPort (or set it to 0)",
    ),
    (
        "/containerDefinitions/*/cpu",
        "0",
        "Agent versions greater than or equal to 1.2.0: Null, zero, and CPU values of 1 are passed to "
        "Docker as 2. (0 and absent are the same container)",
    ),
)


# Rows ECS's DescribeTaskDefinition carries even when the request left them out (wherever the object
# holding them exists): seen in real output (tests/corpus/ecs-output/, and the EFS and docker-volume
# outputs the normaliser's first gaps came from). The sandbox adds these on RegisterTaskDefinition, so
# everything that goes through it exercises the normaliser; the other rows are only accepted either way.
ECHOED: frozenset[str] = frozenset(
    {
        "/containerDefinitions/*/essential",
        "/containerDefinitions/*/portMappings/*/protocol",
        "/containerDefinitions/*/healthCheck/interval",
        "/containerDefinitions/*/healthCheck/timeout",
        "/containerDefinitions/*/healthCheck/retries",
        "/volumes/*/efsVolumeConfiguration/rootDirectory",
        "/volumes/*/efsVolumeConfiguration/authorizationConfig/iam",
        "/volumes/*/dockerVolumeConfiguration/driver",
        "/volumes/*/dockerVolumeConfiguration/scope",
        "/enableFaultInjection",
    }
)


def echoed_rows() -> tuple[Default, ...]:
    return tuple(d for d in DEFAULTS if d.path in ECHOED)


def drop_rows() -> tuple[Default, ...]:
    return tuple(d for d in DEFAULTS if d.mode == "drop")


def split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def holders(node: Any, parts: list[str]) -> Iterator[dict[str, Any]]:
    """Every dict inside ``node`` that would hold the last part of ``parts`` (``*`` walks a list)."""
    if not parts[:-1]:
        if isinstance(node, dict):
            yield node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        for item in node if isinstance(node, list) else []:
            yield from holders(item, rest)
    elif isinstance(node, dict) and head in node:
        yield from holders(node[head], rest)


def same(value: Any, default: Any) -> bool:
    """Whether a written value is the default: options are strings (``"false"`` is ``false``)."""
    if isinstance(default, str) and isinstance(value, bool):
        return ("true" if value else "false") == default
    return type(value) is type(default) and value == default
