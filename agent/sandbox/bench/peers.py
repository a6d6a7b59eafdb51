"""The peer scenario (``--peers``): fabfuel ecs-deploy, ``ecs-gitops apply`` (cold and warm) and the
daemon, each rolling an image bump out to N services on one sandbox.

The sandbox runs in a process of its own and starts tasks at once, as for the rest of the bench. Each
tool has N services of its own there (its own cluster and task-definition families, created first by
``ecs-gitops apply``), so no tool meets revisions another one registered. Every run gives all N services
of one tool a new image (``repo/app:<k>``), in two modes:

* ``written``: until the tool has made its changes (new revisions registered, services updated), without
  waiting for ECS: ``ecs deploy ... --timeout -1`` (fire and forget), ``ecs-gitops apply`` without
  ``--wait``, and the daemon's one tick that applies the commit;
* ``deployed``: until every deployment is reported done: ``ecs deploy`` waiting (its default
  ``--sleep-time 1`` between checks; on the sandbox the first check already finds the deployment done),
  ``ecs-gitops apply --wait`` (it looks again when the rollout asks, 5 s after applying), and the
  daemon's ticks back to back until every service is reported deployed (as the rollout of ``measure``).

The tools:

* ``ecs-deploy``: ``ecs deploy CLUSTER SERVICE --image app IMAGE``, one process per service, one after the
  other (how a CI job runs it per service), deregistering the previous revision (its default);
* ``apply (cold)``: ``ecs-gitops apply`` of the commit bumping all N, in a fresh process with an empty
  ``--data-dir`` (no store, no clone), run from a throwaway virtualenv into which this checkout is
  installed as the Dockerfile installs it (requirements.lock, then the agent without extras; pip
  compiles both to bytecode, as it compiled ecs-deploy), not from the editable development venv, whose
  test tools add imports and whose sources may lack bytecode (``PYTHONDONTWRITEBYTECODE``);
* ``apply (warm)``: the same with the ``--data-dir`` of the previous apply (warm store and clone);
* ``daemon``: the already-running agent (``Agent.tick`` in the bench's process, warm).

A trial makes one run of each tool in each mode, in an order rotated by one each trial. ecs-deploy is
installed with pip into a throwaway virtualenv (or ``--peers-ecs-deploy`` names its ``ecs``). Both
ecs-gitops tools run with pacing lifted (the sandbox has no API limits) and statuses through the ``log``
publisher. AWS calls are those the sandbox served during the run (``GET /_sandbox/faults``, ``served``),
counted the same way for every tool.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.sandbox.bench.world import REGION, Repo, SandboxProcess, quiet_logs

ECS_DEPLOY = "ecs-deploy==1.17.0"
BASELINE = "ecs-deploy"
TOOLS = (BASELINE, "apply (cold)", "apply (warm)", "daemon")
MODES = ("written", "deployed")
RUNS = tuple((mode, tool) for mode in MODES for tool in TOOLS)
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root, when run from a checkout
PREFIXES = {BASELINE: "ed", "apply (cold)": "ac", "apply (warm)": "aw", "daemon": "dm"}
UNLIMITED = {"burst": 1_000_000, "perSecond": 1_000_000}
APPLY_CONFIG = "apiVersion: ecs-gitops/v1\nkind: AgentConfig\nstatus: {publisher: log}\npacing:\n" + "".join(
    f"  {op}: {{burst: {UNLIMITED['burst']}, perSecond: {UNLIMITED['perSecond']}}}\n"
    for op in (
        "registerTaskDefinition",
        "createService",
        "updateService",
        "describeServices",
        "describeTaskDefinition",
    )
)

# A run: (mode, tool) -> (wall seconds, AWS calls by operation).
Runner = Callable[[str, str], tuple[float, dict[str, int]]]
Run = tuple[str, str]


def install_ecs_deploy(into: Path) -> Path:
    """A virtualenv at ``into`` with ecs-deploy from PyPI; its ``ecs`` executable."""
    pip = _venv(into)
    subprocess.run([str(pip), "install", "--quiet", ECS_DEPLOY], check=True, capture_output=True)
    return into / "bin" / "ecs"


def install_ecs_gitops(into: Path, checkout: Path = CHECKOUT) -> Path:
    """A virtualenv at ``into`` with ``checkout`` installed as the Dockerfile installs it: the pinned
    requirements.lock, then the agent itself without extras. Its ``ecs-gitops`` executable."""
    if not (checkout / "pyproject.toml").is_file() or not (checkout / "requirements.lock").is_file():
        raise RuntimeError(f"{checkout} is not an ecs-gitops checkout: pass --peers-ecs-gitops")
    pip = _venv(into)
    for args in (["-r", str(checkout / "requirements.lock")], [str(checkout)]):
        subprocess.run([str(pip), "install", "--quiet", "--no-deps", *args], check=True, capture_output=True)
    return into / "bin" / "ecs-gitops"


def _venv(into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(into)], check=True, capture_output=True)
    return into / "bin" / "pip"


def order(trial: int, runs: Sequence[Run] = RUNS) -> list[Run]:
    """The runs of ``trial`` (0-based), rotated by one each trial so that none always comes first."""
    k = trial % len(runs)
    return [*runs[k:], *runs[:k]]


def run_trials(trials: int, runner: Runner, runs: Sequence[Run] = RUNS) -> dict[str, dict[str, list[Any]]]:
    """Every run of every trial, alternating: the samples, by mode then tool."""
    samples: dict[str, dict[str, list[Any]]] = {}
    for mode, tool in runs:
        samples.setdefault(mode, {})[tool] = []
    for trial in range(trials):
        for mode, tool in order(trial, runs):
            wall, calls = runner(mode, tool)
            samples[mode][tool].append({"wall_s": round(wall, 3), "calls": calls})
    return samples


def summarise(n: int, samples: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Per mode and tool: the median wall time, how many times faster than ecs-deploy's median it is, and
    AWS calls per service (median over the trials)."""
    modes: dict[str, Any] = {}
    for mode, tools in samples.items():
        rows: dict[str, Any] = {}
        for tool, runs in tools.items():
            walls = [r["wall_s"] for r in runs]
            rows[tool] = {
                "wall_s": walls,
                "median_s": round(statistics.median(walls), 3),
                "calls_per_service": round(statistics.median(sum(r["calls"].values()) for r in runs) / n, 2),
                "calls": runs[-1]["calls"],
            }
        base = rows[BASELINE]["median_s"] if BASELINE in rows else None
        for row in rows.values():
            ratio = base / row["median_s"] if base and row["median_s"] else None
            row["x_faster_than_ecs_deploy"] = None if ratio is None else round(ratio, 1)
        modes[mode] = rows
    trials = max((len(runs) for tools in samples.values() for runs in tools.values()), default=0)
    return {"n": n, "trials": trials, "modes": modes}


def peers_table(peers: list[dict[str, Any]]) -> str:
    """One row per N, mode and tool: median and range of the wall times, x faster than ecs-deploy, AWS
    calls per service."""
    rows = [("N", "until", "tool", "median s", "min-max s", "x faster than ecs-deploy", "AWS calls/service")]
    for size in peers:
        for mode, tools in size["modes"].items():
            for tool, r in tools.items():
                ratio = r["x_faster_than_ecs_deploy"]
                rows.append(
                    (
                        str(size["n"]),
                        mode,
                        tool,
                        f"{r['median_s']:.2f}",
                        f"{min(r['wall_s']):.2f}-{max(r['wall_s']):.2f}",
                        "-" if tool == BASELINE or ratio is None else f"{ratio:.1f}",
                        f"{r['calls_per_service']:.2f}",
                    )
                )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- the real tools


class Peers:
    """The sandbox, one repository of N services per tool, and the running daemon: runs one tool once."""

    def __init__(self, n: int, work: Path, ecs: Path, ecs_gitops: Path) -> None:
        from dataclasses import replace

        from agent.aws.clients import Aws
        from agent.aws.pacing import Pacer
        from agent.config import AgentConfig
        from agent.daemon import Agent

        self.n, self.work, self.ecs, self.ecs_gitops, self.tag = n, work, ecs, ecs_gitops, 1
        self.sandbox = SandboxProcess()
        self.config = work / "agent.yaml"
        self.config.write_text(APPLY_CONFIG)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ENDPOINT_URL": self.sandbox.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        self.repos = {
            tool: Repo(work / PREFIXES[tool], n, cluster=f"peers-{PREFIXES[tool]}", prefix=PREFIXES[tool])
            for tool in TOOLS
        }
        for tool in (BASELINE, "apply (cold)", "apply (warm)"):  # create their services
            self._apply(self.repos[tool], self._data_dir(tool, fresh=True), wait=True)
        daemon = self.repos["daemon"]
        config = AgentConfig.default()
        config = replace(
            config,
            source=replace(config.source, repo=str(daemon.root)),
            status=replace(config.status, publisher="log"),
        )
        aws = Aws(region=REGION, endpoint_url=self.sandbox.endpoint)
        self.agent = Agent(config, work / "daemon-data", aws, pacer=Pacer(limits={}))
        self._settle()

    def served(self) -> Counter[str]:
        return Counter(self.sandbox.control("/_sandbox/faults")["served"])

    def run(self, mode: str, tool: str) -> tuple[float, dict[str, int]]:
        """Bump the image of the tool's N services to a new tag, until ``mode``: its wall time and calls."""
        self.tag += 1
        tag, repo, wait = str(self.tag), self.repos[tool], mode == "deployed"
        if tool != BASELINE:
            for i in range(self.n):
                repo.write_taskdef(i, tag)
            repo.commit(f"image {tag}")
        before = self.served()
        t0 = time.perf_counter()
        if tool == BASELINE:
            for i in range(self.n):
                self._ecs_deploy(repo, i, tag, wait)
        elif tool == "daemon" and wait:
            self._settle()
        elif tool == "daemon":
            self.agent.tick()
        else:
            self._apply(repo, self._data_dir(tool, fresh=tool == "apply (cold)"), wait)
        wall = time.perf_counter() - t0
        calls = self.served() - before
        if tool == "daemon" and not wait:
            self._settle()  # see the rollout through (not measured), so the next run starts from rest
        return wall, dict(sorted(calls.items()))

    def _data_dir(self, tool: str, fresh: bool) -> Path:
        path = self.work / f"data-{PREFIXES[tool]}"
        if fresh:
            shutil.rmtree(path, ignore_errors=True)
        return path

    def _apply(self, repo: Repo, data_dir: Path, wait: bool) -> None:
        argv = [str(self.ecs_gitops), "apply", "--repo", str(repo.root),
                "--config", str(self.config), "--data-dir", str(data_dir),
                "--endpoint-url", self.sandbox.endpoint, "--region", REGION]  # fmt: skip
        self._check([*argv, "--wait"] if wait else argv)

    def _ecs_deploy(self, repo: Repo, i: int, tag: str, wait: bool) -> None:
        argv = [str(self.ecs), "deploy", repo.cluster, repo.name(i), "--image", "app", f"repo/app:{tag}",
                "--region", REGION, "--timeout", "120" if wait else "-1"]  # fmt: skip
        self._check(argv)

    def _check(self, argv: list[str]) -> None:
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            command = " ".join(argv[:3])
            raise RuntimeError(f"{command}... exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")

    def _settle(self, max_ticks: int = 30) -> None:
        for _ in range(max_ticks):
            result = self.agent.tick()
            if result is not None and result.wake_at is None:
                assert result.statuses["ecs-gitops"].state == "success", result.statuses["ecs-gitops"]
                return
        raise RuntimeError(f"N={self.n}: the daemon's rollout did not settle in {max_ticks} ticks")

    def stop(self) -> None:
        self.sandbox.stop()


def measure_peers(n: int, trials: int, ecs: str | None, ecs_gitops: str | None = None) -> dict[str, Any]:
    """The peer scenario at n services (run in a process of its own: see ``main``)."""
    quiet_logs()
    work = Path(tempfile.mkdtemp(prefix=f"ecs-gitops-bench-peers-{n}-"))
    try:
        ecs_path = Path(ecs) if ecs else install_ecs_deploy(work / "venv")
        agent_path = Path(ecs_gitops) if ecs_gitops else install_ecs_gitops(work / "agent-venv")
        peers = Peers(n, work, ecs_path, agent_path)
        try:
            result = summarise(n, run_trials(trials, peers.run))
        finally:
            peers.stop()
        result["ecs_deploy"] = ECS_DEPLOY if ecs is None else str(ecs)
        result["ecs_gitops"] = "installed from this checkout" if ecs_gitops is None else str(ecs_gitops)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
