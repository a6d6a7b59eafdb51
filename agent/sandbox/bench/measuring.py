"""``python -m agent.bench`` (``make bench``): what the agent costs at N = 10, 100 and 1,000 services.

For each N the agent runs in a fresh process of its own against a sandbox in another process (started with
``python -m agent.sandbox.cli up --port 0 --no-seed``), so the CPU time and RSS measured are the agent's
alone. The sandbox is told to start tasks at once (``POST /_sandbox/config {"taskStartSeconds": 0.001}``:
deployments complete as soon as they are made) and pacing is lifted (the sandbox has no API limits), so
wall times show the agent's own cost; the time ECS's rate limits would add is reported beside them.

Measured, from one local git repository with N services (each its own task-definition family) in one
cluster:

a. AWS calls per no-op tick, by operation (botocore ``before-call`` events), and their ratio to the
   floor (DescribeServices / ceil(N/10));
b. agent CPU seconds (``time.process_time``) and peak RSS (``VmHWM``, reset before each tick through
   ``/proc/self/clear_refs``) per no-op tick, and the RSS when idle after them;
c. wall time and calls to roll a new image out to all N services from one commit, until every service
   is reported deployed;
d. commit-to-first-mutating-call latency of ``Agent.run``: with the watchfiles trigger (a local
   repository), and polling every ``--interval`` seconds (the watcher turned off).

And once, for ``--faults-n`` services (50 by default): the rollout of a new image to all of them with
``--faults-rate`` (20 %) of the agent's AWS requests failing (throttling and 5xx, seeded:
``agent.testing.AwsFaults``), against the same rollout without faults: requests, faults injected,
botocore retries and the duration ratio.

It prints a table and writes ``docs/bench/results.json`` and ``docs/bench/cost.png`` (matplotlib, from the
``bench`` extra; skipped with a note when it is missing).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

SIZES = (10, 100, 1000)
NO_OP_TICKS = 3
REGION = "eu-west-1"
CLUSTER = "bench"
OUT = Path("docs/bench")
READS = ("Describe", "List", "Get")
# ECS's limits the sandbox does not enforce: RegisterTaskDefinition 20 burst then 1/s, UpdateService 50/5.
REGISTER_BURST, REGISTER_RATE, UPDATE_BURST, UPDATE_RATE = 20, 1.0, 50, 5.0


# ------------------------------------------------------------------------------------- measuring


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return round((kb or 0) / 1024, 1)


def reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def reads(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k.split(".", 1)[1].startswith(READS))


def mutating(counts: dict[str, int]) -> dict[str, int]:
    return {k: n for k, n in counts.items() if not k.split(".", 1)[1].startswith(READS)}


def paced_floor_seconds(n: int) -> float:
    """How long ECS's limits make a rollout of n new revisions at least: registrations past the burst go
    at 1 per second (updates, 5 per second, keep up with them)."""
    return max(0.0, (n - REGISTER_BURST) / REGISTER_RATE, (n - UPDATE_BURST) / UPDATE_RATE)


# ------------------------------------------------------------------------------------- the world


class SandboxProcess:
    """``python -m agent.sandbox.cli up --port 0 --no-seed`` in a subprocess; its endpoint from line one."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.sandbox.cli", "up", "--port", "0", "--no-seed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith("AWS_ENDPOINT_URL="):
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {first!r}")
        self.endpoint = first.split("=", 1)[1]
        # Drain the rest of its output so it never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.control("/_sandbox/config", {"taskStartSeconds": 0.001})

    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Repo:
    """A local git repository holding N services, each with its own task-definition family."""

    def __init__(self, root: Path, n: int) -> None:
        import git

        self.root, self.n = root, n
        self.git = git.Repo.init(root, initial_branch="main")
        with self.git.config_writer() as cw:
            cw.set_value("user", "name", "Bench").set_value("user", "email", "bench@example.com")
        (root / "cluster.yaml").write_text(
            f"apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {{name: {CLUSTER}}}\nspec: {{}}\n"
        )
        (root / "taskdefs").mkdir()
        docs = []
        for i in range(n):
            self.write_taskdef(i, "1")
            docs.append(
                "apiVersion: ecs-gitops/v1\nkind: Service\n"
                f"metadata: {{name: svc{i:04d}}}\n"
                f"spec: {{cluster: {CLUSTER}, taskDefinition: taskdefs/svc{i:04d}.json, desiredCount: 1, "
                "launchType: EC2}\n"
            )
        (root / "services.yaml").write_text("---\n".join(docs))
        self.commit("N services")

    def write_taskdef(self, i: int, tag: str) -> None:
        body = {
            "family": f"svc{i:04d}",
            "networkMode": "bridge",
            "requiresCompatibilities": ["EC2"],
            "containerDefinitions": [{"name": "app", "image": f"repo/app:{tag}", "memory": 128}],
        }
        (self.root / "taskdefs" / f"svc{i:04d}.json").write_text(json.dumps(body, indent=2))

    def commit(self, message: str) -> str:
        self.git.git.add(A=True)
        return str(self.git.index.commit(message).hexsha)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("watchfiles").setLevel(logging.ERROR)


# ------------------------------------------------------------------------------------- one size


def measure(n: int, interval: int, trials: int) -> dict[str, Any]:
    """Every measurement for n services (run in a process of its own: see ``main``)."""
    _quiet_logs()
    from agent.aws.clients import Aws
    from agent.aws.pacing import Pacer
    from agent.config import AgentConfig
    from agent.daemon import Agent

    work = Path(tempfile.mkdtemp(prefix=f"ecs-gitops-bench-{n}-"))
    sandbox = SandboxProcess()
    try:
        repo = Repo(work / "repo", n)
        config = AgentConfig.default()
        config = replace(
            config,
            source=replace(config.source, repo=str(repo.root), interval=f"{interval}s"),
            status=replace(config.status, publisher="log"),
            server=replace(config.server, port=_free_port(), host="127.0.0.1"),
        )
        aws = Aws(region=REGION, endpoint_url=sandbox.endpoint)
        agent = Agent(config, work / "data", aws, pacer=Pacer(limits={}))  # the sandbox has no API limits
        counter = aws.counter
        out: dict[str, Any] = {"n": n, "floor_describe_services": math.ceil(n / 10)}

        def settle(max_ticks: int = 30) -> tuple[int, Any]:
            for i in range(1, max_ticks + 1):
                result = agent.tick()
                if result is not None and result.wake_at is None:
                    return i, result
            raise RuntimeError(f"N={n}: the rollout did not settle in {max_ticks} ticks")

        # The first commit creates everything (not measured beyond its wall time and calls).
        counter.reset()
        t0 = time.perf_counter()
        deploy_ticks, _ = settle()
        out["deploy"] = {
            "wall_s": round(time.perf_counter() - t0, 2),
            "ticks": deploy_ticks,
            "calls": dict(counter.counts),
        }

        # (a) + (b): no-op ticks.
        ticks = []
        can_reset = reset_peak()
        for _ in range(NO_OP_TICKS):
            gc.collect()
            counter.reset()
            reset_peak()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = agent.tick()
            assert result is not None and result.outcome == "unchanged", result
            ticks.append(
                {
                    "calls": dict(counter.counts),
                    "cpu_s": time.process_time() - cpu0,
                    "wall_s": time.perf_counter() - wall0,
                    "peak_rss_mb": peak_mb(),
                }
            )
        calls = ticks[-1]["calls"]
        gc.collect()
        out["no_op_tick"] = {
            "calls": calls,
            "total": sum(calls.values()),
            "reads": reads(calls),
            "mutating": mutating(calls),
            "describe_services_ratio": round(calls.get("ecs.DescribeServices", 0) / math.ceil(n / 10), 2),
            "other_calls_max": max((c for k, c in calls.items() if k != "ecs.DescribeServices"), default=0),
            "cpu_s": round(statistics.median(t["cpu_s"] for t in ticks), 3),
            "wall_s": round(statistics.median(t["wall_s"] for t in ticks), 3),
            "peak_rss_mb": max(t["peak_rss_mb"] for t in ticks),
            "peak_rss_is_per_tick": can_reset,
        }
        out["idle_rss_mb"] = rss_mb()

        # (c): one commit bumps the image of all N services; tick until every one is reported deployed.
        for i in range(n):
            repo.write_taskdef(i, "2")
        repo.commit("bump all")
        counter.reset()
        cpu0, t0 = time.process_time(), time.perf_counter()
        first = agent.tick()
        apply_wall = time.perf_counter() - t0
        assert first is not None and first.outcome == "applied", first
        more, last = settle()
        assert last.statuses["ecs-gitops"].state == "success", last.statuses["ecs-gitops"]
        rollout_calls = dict(counter.counts)
        all_ticks = 1 + more
        beyond = reads(rollout_calls) - all_ticks * reads(calls)
        out["rollout"] = {
            "apply_tick_wall_s": round(apply_wall, 2),
            "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": round(time.process_time() - cpu0, 2),
            "ticks": all_ticks,
            "calls": rollout_calls,
            "total": sum(rollout_calls.values()),
            "mutating": mutating(rollout_calls),
            "mutating_per_service": round(sum(mutating(rollout_calls).values()) / n, 2),
            "reads_beyond_no_op_ticks": beyond,
            "reads_beyond_per_service": round(beyond / n, 3),
            "paced_floor_s": paced_floor_seconds(n),
        }

        # (d): commit -> first mutating call, with Agent.run.
        out["latency"] = _latency(agent, repo, interval, trials)
        return out
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


def _latency(agent: Any, repo: Repo, interval: int, trials: int) -> dict[str, Any]:
    from agent.git.source import GitSource

    armed: dict[str, float] = {}
    hit = threading.Event()
    lock = threading.Lock()

    def before_call(_api: str, _change: Any) -> None:
        with lock:
            if "commit" in armed and "call" not in armed:
                armed["call"] = time.perf_counter()
                hit.set()

    agent.reconciler.executor.before_call = before_call
    tag = [2]
    rng = random.Random(8)

    def trial(max_wait: float) -> float:
        tag[0] += 1
        i = rng.randrange(repo.n)
        repo.write_taskdef(i, str(tag[0]))
        with lock:
            armed.clear()
            hit.clear()
        repo.commit(f"bump svc{i:04d}")
        with lock:
            armed["commit"] = time.perf_counter()
        if not hit.wait(max_wait):
            raise RuntimeError(f"no mutating call {max_wait} s after the commit")
        return armed["call"] - armed["commit"]

    def idle(agent: Any, seconds: float) -> None:
        """Wait until the agent is between ticks (the rollout of the last trial has been applied)."""
        time.sleep(seconds)
        with agent._lock:  # held while a tick runs
            pass

    results: dict[str, Any] = {}
    for mode in ("watch", "poll"):
        if mode == "poll":  # as with a remote repository: no file watcher, only the interval job

            class Polled(type(agent.source)):  # type: ignore[misc]
                local_path = property(lambda self: None)

            agent.source.__class__ = Polled
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), name=f"bench-agent-{mode}")
        runner.start()
        idle(agent, 1.0)
        samples = []
        try:
            for _ in range(trials):
                if mode == "poll":
                    time.sleep(rng.uniform(0, interval))  # commits land at any point of the poll cycle
                samples.append(round(trial(interval * 3 + 60), 3))
                idle(agent, 0.5)
        finally:
            stop.set()
            runner.join(timeout=120)
            agent.source.__class__ = GitSource
        results[mode] = {
            "samples_s": samples,
            "min_s": min(samples),
            "median_s": round(statistics.median(samples), 3),
            "max_s": max(samples),
        }
    jitter = max(1, interval // 10)
    results["poll"].update(
        {
            "interval_s": interval,
            "jitter_s": jitter,
            "median_over_interval": round(results["poll"]["median_s"] / interval, 2),
            "max_over_interval": round(results["poll"]["max_s"] / interval, 2),
        }
    )
    return results


def measure_faults(n: int, rate: float, seed: int) -> dict[str, Any]:
    """A rollout of n services without faults, then one with ``rate`` of AWS requests failing."""
    _quiet_logs()
    from agent.aws.clients import Aws
    from agent.aws.pacing import Pacer
    from agent.config import AgentConfig
    from agent.daemon import Agent
    from agent.testing import AwsFaults

    work = Path(tempfile.mkdtemp(prefix=f"ecs-gitops-bench-faults-{n}-"))
    sandbox = SandboxProcess()
    try:
        repo = Repo(work / "repo", n)
        config = AgentConfig.default()
        config = replace(
            config,
            source=replace(config.source, repo=str(repo.root)),
            status=replace(config.status, publisher="log"),
        )
        aws = Aws(region=REGION, endpoint_url=sandbox.endpoint)
        agent = Agent(config, work / "data", aws, pacer=Pacer(limits={}))

        def rollout(tag: str) -> tuple[float, int]:
            for i in range(n):
                repo.write_taskdef(i, tag)
            repo.commit(f"image {tag}")
            t0 = time.perf_counter()
            for ticks in range(1, 61):
                result = agent.tick()  # None: a tick cut short by an error that outlasted the retries
                if result is not None and result.wake_at is None:
                    assert result.statuses["ecs-gitops"].state == "success", result.statuses["ecs-gitops"]
                    return time.perf_counter() - t0, ticks
            raise RuntimeError(f"the rollout of {n} services with faults did not settle")

        rollout("1")  # create everything
        clean_s, clean_ticks = rollout("2")
        faults = AwsFaults(rate=rate, seed=seed, kinds=("throttle", "5xx")).install(aws)
        faulty_s, faulty_ticks = rollout("3")
        summary = faults.summary()
        return {
            "n": n,
            "rate": rate,
            "seed": seed,
            "fault_free_s": round(clean_s, 2),
            "fault_free_ticks": clean_ticks,
            "faulty_s": round(faulty_s, 2),
            "faulty_ticks": faulty_ticks,
            "ratio": round(faulty_s / clean_s, 2),
            **summary,
        }
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------- report


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            "N",
            "no-op calls",
            "DescribeSvc/floor",
            "other max",
            "TD reads",
            "CPU s/tick",
            "peak RSS MB",
            "idle RSS MB",
            "rollout s",
            "rollout calls",
            "mut/svc",
            "reads/svc",
            "ECS-paced s",
            "watch ms (med/max)",
            "poll s (med/max) /X",
        )
    ]
    for r in results:
        noop, roll, lat = r["no_op_tick"], r["rollout"], r["latency"]
        td_reads = sum(n for k, n in noop["calls"].items() if "TaskDefinition" in k)
        rows.append(
            (
                str(r["n"]),
                str(noop["total"]),
                f"{noop['calls'].get('ecs.DescribeServices', 0)}/{r['floor_describe_services']}"
                f" = {noop['describe_services_ratio']:.2f}",
                str(noop["other_calls_max"]),
                str(td_reads),
                f"{noop['cpu_s']:.3f}",
                f"{noop['peak_rss_mb']:.0f}",
                f"{r['idle_rss_mb']:.0f}",
                f"{roll['wall_s']:.1f}",
                str(roll["total"]),
                f"{roll['mutating_per_service']:.2f}",
                f"{roll['reads_beyond_per_service']:.3f}",
                f"{roll['paced_floor_s']:.0f}",
                f"{lat['watch']['median_s'] * 1000:.0f}/{lat['watch']['max_s'] * 1000:.0f}",
                f"{lat['poll']['median_s']:.1f}/{lat['poll']['max_s']:.1f} /{lat['poll']['interval_s']}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def faults_line(f: dict[str, Any]) -> str:
    injected = ", ".join(f"{n} {kind}" for kind, n in sorted(f["injected"].items()))
    return (
        f"faults: {f['n']} services, {f['rate']:.0%} of AWS requests failing ({injected} of "
        f"{f['attempts']} requests): {f['retries']} retries, {f['failed_calls']} calls failed for good; "
        f"rollout {f['faulty_s']:.1f} s against {f['fault_free_s']:.1f} s without faults "
        f"(x{f['ratio']:.2f}), {f['faulty_ticks']} ticks against {f['fault_free_ticks']}"
    )


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = [r["n"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(ns, [r["no_op_tick"]["total"] for r in results], "o-", label="calls per no-op tick")
    ax.plot(ns, [r["rollout"]["total"] for r in results], "s-", label="calls per rollout (all N, until done)")
    ax.plot(
        ns,
        [sum(r["rollout"]["mutating"].values()) for r in results],
        "^--",
        label="mutating calls per rollout (floor 2N)",
    )
    floor = [math.ceil(n / 10) for n in ns]
    ax.plot(ns, floor, ":", color="grey", label="floor: ceil(N/10) DescribeServices")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("services (N)")
    ax.set_ylabel("AWS API calls")
    ax.set_title("ecs-gitops: AWS calls against the number of services")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated N values")
    parser.add_argument("--interval", type=int, default=5, help="poll interval X, seconds (default 5)")
    parser.add_argument("--trials", type=int, default=5, help="latency samples per trigger (default 5)")
    parser.add_argument("--out", default=str(OUT), help="where results.json and cost.png go")
    parser.add_argument("--faults-n", type=int, default=50, help="services in the faults scenario (0: skip)")
    parser.add_argument("--faults-rate", type=float, default=0.2, help="share of AWS requests failing")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N, print JSON
    parser.add_argument("--faults-one", type=int, help=argparse.SUPPRESS)  # internal: the faults scenario
    args = parser.parse_args(argv)

    if args.one is not None:
        print(json.dumps(measure(args.one, args.interval, args.trials)), flush=True)
        return 0
    if args.faults_one is not None:
        print(json.dumps(measure_faults(args.faults_one, args.faults_rate, seed=6)), flush=True)
        return 0

    started = time.perf_counter()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        print(f"N={n} ...", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "agent.bench", "--one", str(n), "--interval", str(args.interval),
             "--trials", str(args.trials)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["measure_s"] = round(time.perf_counter() - t0, 1)
        results.append(result)
        print(f"N={n} done in {result['measure_s']} s", flush=True)

    faults = None
    if args.faults_n:
        print(f"faults: N={args.faults_n}, {args.faults_rate:.0%} of AWS requests failing ...", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "agent.bench", "--faults-one", str(args.faults_n),
             "--faults-rate", str(args.faults_rate)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            return 1
        faults = json.loads(proc.stdout.strip().splitlines()[-1])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": " ".join(["python -m agent.bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "total_s": round(time.perf_counter() - started, 1),
        "results": results,
        "faults": faults,
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(table(results))
    if faults is not None:
        print()
        print(faults_line(faults))
    plotted = plot(results, out / "cost.png")
    print()
    drawn = f" and {out / 'cost.png'}" if plotted else " (matplotlib missing: no plot)"
    print(f"wrote {out / 'results.json'}{drawn}")
    print(f"bench took {doc['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
