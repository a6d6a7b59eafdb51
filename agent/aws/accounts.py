"""Many accounts and regions: which account and region each cluster lives in, and how the agent gets there.

The agent config's ``accounts`` list maps clusters to an account and region, each reached by assuming a
role (STS AssumeRole, with an external id when the role's trust policy asks for one; botocore refreshes
the session before it expires, see ``Aws.assume_role``). One agent reconciles all of them:

* :func:`split_desired` cuts one commit's manifests into one ``Desired`` per account, by cluster.
  Clusters, services and Managed Instances capacity providers go where their cluster is; a task-definition
  family goes to every account with a service that runs it; an Auto Scaling group capacity provider to
  every account whose Cluster manifest lists it; a named strategy to every account with a service using
  it. What nothing places (a family no service runs, a provider no cluster lists, a strategy no service
  names) goes to the first account listed.
* a :class:`Lane` is one account as the reconciler works in it: its own clients, name resolver,
  task-definition index, executor and pacing (ECS's rate limits are per account and region).

Without ``accounts`` there is one lane, the agent's own credentials and region, and nothing here runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan.model import AccountRef
from agent.plan.planning import ServiceMemo

from .clients import Aws
from .executing import Executor
from .observing import Observer
from .pacing import Pacer
from .resolving import Resolver


@dataclass(frozen=True)
class Account:
    """One entry of the config's ``accounts``, its region filled in."""

    name: str
    region: str
    clusters: tuple[str, ...]
    account_id: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def ref(self) -> AccountRef:
        return AccountRef(self.name, self.account_id, self.region)

    @property
    def label(self) -> str:
        return self.ref.label


def accounts_of(config: Any, default_region: str) -> tuple[Account, ...]:
    """The config's accounts (empty when it lists none); a missing region is ``default_region``."""
    return tuple(
        Account(
            name=a.name,
            region=a.region or default_region,
            clusters=tuple(a.clusters),
            account_id=a.account,
            role_arn=a.role_arn,
            external_id=a.external_id,
        )
        for a in getattr(config, "accounts", None) or ()
    )


def _cluster_name(desired: Desired, ref: Any) -> str:
    manifest = desired.clusters.get(str(ref))
    return str(manifest.spec.get("clusterName") or manifest.name) if manifest else str(ref)


def split_desired(desired: Desired, accounts: Sequence[Account]) -> list[tuple[Account, Desired]]:
    """One ``Desired`` per account that has anything to do, in the order of ``accounts`` (see the module
    docstring for where each kind goes). Validation made sure every cluster named is in an account; one
    that is not would go to the first."""
    home = accounts[0]
    account_of = {c: a.name for a in reversed(accounts) for c in a.clusters}

    def where(cluster_ref: Any) -> str:
        return account_of.get(_cluster_name(desired, cluster_ref), home.name)

    parts: dict[str, dict[str, dict[str, Any]]] = {
        a.name: {k: {} for k in ("clusters", "services", "capacity_providers", "strategies", "families")}
        for a in accounts
    }
    for name, cluster in desired.clusters.items():
        parts[where(name)]["clusters"][name] = cluster
    for name, service in desired.services.items():
        part = parts[where(service.spec.get("cluster"))]
        part["services"][name] = service
        family = desired.service_task_family.get(name)
        if family in desired.task_definitions:
            part["families"][family] = desired.task_definitions[family]
        strategy = service.spec.get("strategy")
        if isinstance(strategy, str) and strategy in desired.strategies:
            part["strategies"][strategy] = desired.strategies[strategy]
    for name, provider in desired.capacity_providers.items():
        if provider.spec.get("cluster"):
            homes = {where(provider.spec["cluster"])}
        else:
            homes = {
                where(c)
                for c, m in desired.clusters.items()
                if name in (m.spec.get("capacityProviders") or [])
            }
        for account in homes or {home.name}:
            parts[account]["capacity_providers"][name] = provider
    placed_families = {f for p in parts.values() for f in p["families"]}
    for family, td in desired.task_definitions.items():
        if family not in placed_families:
            parts[home.name]["families"][family] = td
    placed_strategies = {s for p in parts.values() for s in p["strategies"]}
    for name, strategy in desired.strategies.items():
        if name not in placed_strategies:
            parts[home.name]["strategies"][name] = strategy

    out = []
    for account in accounts:
        part = parts[account.name]
        if not any(part.values()):
            continue
        out.append(
            (
                account,
                dataclasses.replace(
                    desired,
                    clusters=part["clusters"],
                    services=part["services"],
                    capacity_providers=part["capacity_providers"],
                    strategies=part["strategies"],
                    windows=dict(desired.windows),
                    task_definitions=part["families"],
                    service_task_family={
                        n: f for n, f in desired.service_task_family.items() if n in part["services"]
                    },
                    warnings=[],
                ),
            )
        )
    return out


def account_of_service(manifest: Manifest, desired: Desired, accounts: Sequence[Account]) -> Account | None:
    """The account a Service manifest's cluster is in (None without accounts)."""
    if not accounts:
        return None
    cluster = _cluster_name(desired, manifest.spec.get("cluster"))
    return next((a for a in accounts if cluster in a.clusters), accounts[0])


@dataclass
class Lane:
    """One account and region as the reconciler works in it (``account`` None: the agent's own)."""

    account: Account | None
    aws: Aws
    resolver: Resolver
    observer: Observer
    executor: Executor
    memo: ServiceMemo = field(default_factory=ServiceMemo)  # each service's last plan, reused if unchanged

    @classmethod
    def open(cls, account: Account | None, aws: Aws, pacer: Pacer) -> Lane:
        observer = Observer(aws, pacer)
        return cls(
            account, aws, Resolver(aws), observer, Executor(aws, pacer, on_registered=observer.remember)
        )


def aws_for(base: Aws, account: Account) -> Aws:
    """The Aws of ``account``: ``base`` in the account's region, as the account's role when it has one."""
    if not account.role_arn:
        return base.in_region(account.region)
    return base.assume_role(
        account.role_arn,
        region=account.region,
        external_id=account.external_id,
        session_name=f"ecs-gitops-{account.name}"[:64],
    )
