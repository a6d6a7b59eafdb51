"""With a state store, a new process starts warm: the revision index (task-definition ARN -> content hash,
how far each family is accounted for, the descriptions of the revisions running) is kept in the store,
so a cold ``plan``, a restarted daemon and a cold ``apply`` make no task-definition read (counted through
botocore events)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import Reconciler
from agent.sandbox.harness import write_services
from agent.store.sqlite import SqliteStore

N = 20


class Process:
    """One agent process: its own clients, call counter and reconciler, over the store at ``path``."""

    def __init__(self, sandbox, path: Path) -> None:
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.store = SqliteStore(path)
        self.reconciler = Reconciler(self.aws, store=self.store, pacer=Pacer(limits={}))

    def tick(self, root: Path) -> dict[str, int]:
        self.aws.counter.reset()
        self.reconciler.tick(DirTree(root), "0" * 40)
        return dict(self.aws.counter.counts)

    def plan(self, root: Path) -> dict[str, int]:
        self.aws.counter.reset()
        self.reconciler.plan(DirTree(root))
        return dict(self.aws.counter.counts)

    def close(self) -> None:
        self.store.close()


def _ecs(counts: dict[str, int]) -> dict[str, int]:
    return {k: n for k, n in counts.items() if k.startswith("ecs.")}


def test_cold_plan_restart_and_apply_with_a_warm_store_make_no_task_definition_read(
    sandbox, tmp_path: Path
) -> None:
    """After one process deployed N services: a new process's plan and no-op tick make ceil(N/10)
    DescribeServices + one DescribeClusters and nothing else; a new process's image bump makes at most 2.2
    calls per service (N RegisterTaskDefinition + N UpdateService + the no-op reads), and so does a revert
    (N UpdateService, nothing registered, no look-back)."""
    cluster, root, state = "warm", tmp_path / "repo", tmp_path / "state.db"
    floor = {"ecs.DescribeServices": math.ceil(N / 10), "ecs.DescribeClusters": 1}
    write_services(root, "1", N, cluster)
    first = Process(sandbox, state)
    first.tick(root)
    first.close()

    planner = Process(sandbox, state)  # `ecs-gitops plan --data-dir`
    assert _ecs(planner.plan(root)) == floor
    planner.close()

    daemon = Process(sandbox, state)  # a restarted daemon
    assert _ecs(daemon.tick(root)) == floor
    daemon.close()

    write_services(root, "2", N, cluster)
    apply = Process(sandbox, state)  # `ecs-gitops apply` of an image bump
    bump = _ecs(apply.tick(root))
    assert apply.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": N, "ecs.UpdateService": N}
    assert sum(bump.values()) <= 2.2 * N, bump
    apply.close()

    write_services(root, "1", N, cluster)
    revert = Process(sandbox, state)
    back = _ecs(revert.tick(root))
    assert revert.aws.counter.mutating() == {"ecs.UpdateService": N}
    assert "ecs.ListTaskDefinitions" not in back and "ecs.DescribeTaskDefinition" not in back, back
    assert _ecs(revert.tick(root)) == floor
    revert.close()


def test_a_damaged_index_entry_is_read_from_ecs(sandbox, tmp_path: Path) -> None:
    """An index entry that cannot be used is ignored: the agent reads ECS as a cold agent would."""
    cluster, root, state = "damaged", tmp_path / "repo", tmp_path / "state.db"
    write_services(root, "1", 3, cluster)
    first = Process(sandbox, state)
    first.tick(root)
    for key, _ in first.store.items("revisions/"):
        first.store.put(key, {"newest": "not a pair", "arns": 7})
    first.close()

    again = Process(sandbox, state)
    counts = _ecs(again.tick(root))
    assert again.aws.counter.mutating() == {}
    assert counts["ecs.DescribeTaskDefinition"] == 3
    assert _ecs(again.tick(root)) == {"ecs.DescribeServices": 1, "ecs.DescribeClusters": 1}
    again.close()


def test_a_no_op_tick_writes_nothing_to_the_store(sandbox, tmp_path: Path) -> None:
    """Once a commit is deployed, later no-op ticks write no row of the state store (a record read back
    unchanged is not rewritten), while a tick that changes the services writes their records."""
    import sqlite3

    cluster, root, state = "quiet", tmp_path / "repo", tmp_path / "state.db"
    write_services(root, "1", 5, cluster)
    daemon = Process(sandbox, state)
    daemon.tick(root)
    daemon.tick(root)
    counter = sqlite3.connect(state, isolation_level=None)  # triggers count every row the agent writes
    counter.execute("CREATE TABLE writes (key TEXT)")
    for event in ("INSERT", "UPDATE"):
        counter.execute(
            f"CREATE TRIGGER count_{event.lower()} AFTER {event} ON state "
            "BEGIN INSERT INTO writes VALUES (new.key); END"
        )

    def written() -> list[str]:
        return [row[0] for row in counter.execute("SELECT key FROM writes")]

    for _ in range(3):
        daemon.tick(root)
    assert written() == []

    write_services(root, "2", 5, cluster)
    daemon.tick(root)
    assert sum(key.startswith("rollout/") for key in written()) == 5
    counter.close()
    daemon.close()


def _git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def test_the_apply_command_with_its_data_dir_makes_the_warm_floor(sandbox, tmp_path: Path) -> None:
    """``ecs-gitops apply --data-dir`` (the console script, a new process each time) of an image bump: the
    sandbox serves N RegisterTaskDefinition + N UpdateService + ceil(N/10) DescribeServices + one
    DescribeClusters and no task-definition read, and the apply exits 0 (rolling)."""
    cluster, root, data = "warmcli", tmp_path / "repo", tmp_path / "data"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    cli = Path(sys.executable).with_name("ecs-gitops")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_GITOPS_"))}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    argv = [str(cli), "apply", "--repo", str(root), "--data-dir", str(data),
            "--endpoint-url", sandbox.endpoint, "--region", sandbox.region]  # fmt: skip
    served = []
    for tag in ("1", "2"):
        write_services(root, tag, N, cluster)
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"image {tag}")
        before = dict(sandbox.faults.served)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        after = sandbox.faults.served
        served.append({op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)})
    assert served[0]["CreateService"] == N  # the first apply created them
    assert served[1] == {
        "RegisterTaskDefinition": N,
        "UpdateService": N,
        "DescribeServices": math.ceil(N / 10),
        "DescribeClusters": 1,
    }
