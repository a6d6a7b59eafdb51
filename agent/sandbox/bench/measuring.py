"""The bench's measurements: for one N, AWS calls, CPU and RSS per no-op tick, a rollout to all N
services and commit-to-first-call latency by file watcher, push webhook and polling (``measure``); the
same rollout with AWS faults (``measure_faults``). Each runs in a process of its own (see
``agent.sandbox.bench.__main__``)."""

from __future__ import annotations

import gc
import hashlib
import json
import math
import random
import resource
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.reconcile.scheduling import poll_jitter
from agent.sandbox.bench.world import REGION, Repo, SandboxProcess, free_port, quiet_logs

NO_OP_TICKS = 3
READS = ("Describe", "List", "Get")
# ECS's limits the sandbox does not enforce: RegisterTaskDefinition 20 burst then 1/s, UpdateService 50/5.
REGISTER_BURST, REGISTER_RATE, UPDATE_BURST, UPDATE_RATE = 20, 1.0, 50, 5.0


# ------------------------------------------------------------------------------------- process usage


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


# ------------------------------------------------------------------------------------- one size


# A fixed piece of the work a tick does (ECS answers encoded, decoded, hashed and sorted), timed beside the
# agent's ticks: this machine's speed drifts by half over tens of minutes, so a CPU figure is also given
# as a multiple of the reference's CPU measured in the same minutes ("reference units"), which can be
# compared across runs and machines.
_REFERENCE_DOC = {
    "services": [
        {
            "serviceName": f"svc{i:04d}",
            "desiredCount": i % 7,
            "deployments": [{"status": "PRIMARY", "taskDefinition": f"arn:aws:ecs:::task-definition/f:{i}"}],
            "tags": [{"key": "ecs-gitops", "value": str(i)}],
        }
        for i in range(100)
    ]
}


def reference_cpu_s(rounds: int = 3) -> float:
    """The median CPU seconds of ``rounds`` runs of the fixed reference workload (about 10 ms each)."""
    times = []
    for _ in range(rounds):
        cpu0 = time.process_time()
        for _ in range(30):
            text = json.dumps(_REFERENCE_DOC, sort_keys=True)
            hashlib.sha256(text.encode()).hexdigest()
            back = json.loads(text)
            sorted(back["services"], key=lambda s: (s["desiredCount"], s["serviceName"]))
        times.append(time.process_time() - cpu0)
    return statistics.median(times)


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (units per tick)."""
    k = len(values)
    if k < 2:
        return 0.0
    mean_x, mean_y = (k - 1) / 2, statistics.fmean(values)
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(k))


def flat(agent: Any, ticks: int) -> dict[str, Any]:
    """``ticks`` no-op ticks in a row: CPU and RSS of each, their slopes, first and last tenth."""
    cpus: list[float] = []
    rsss: list[float] = []
    refs: list[float] = []
    for i in range(ticks):
        cpu0 = time.process_time()
        result = agent.tick()
        cpus.append(time.process_time() - cpu0)
        rsss.append(rss_mb())
        assert result is not None and result.outcome == "unchanged", result
        if i % 10 == 0:
            refs.append(reference_cpu_s(1))
    tenth = max(1, ticks // 10)
    return {
        "ticks": ticks,
        "cpu_ms_per_tick_slope": round(slope(cpus) * 1000, 4),
        "rss_mb_per_tick_slope": round(slope(rsss), 4),
        "cpu_s_first_tenth": round(statistics.median(cpus[:tenth]), 4),
        "cpu_s_last_tenth": round(statistics.median(cpus[-tenth:]), 4),
        "rss_mb_first": rsss[0],
        "rss_mb_last": rsss[-1],
        # the machine's own drift over the same ticks: the reference's slope, as a share of its mean per tick
        "reference_drift_per_tick": round(slope(refs) / 10 / statistics.fmean(refs), 6) if refs else 0.0,
    }


def measure(n: int, interval: int, trials: int, slope_ticks: int = 200) -> dict[str, Any]:
    """Every measurement for n services (run in a process of its own: see ``main``)."""
    quiet_logs()
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
            server=replace(config.server, port=free_port(), host="127.0.0.1"),
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
                    "reference_cpu_s": reference_cpu_s(),
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
            "reference_cpu_s": round(statistics.median(t["reference_cpu_s"] for t in ticks), 5),
            "cpu_reference_units": round(statistics.median(t["cpu_s"] / t["reference_cpu_s"] for t in ticks)),
            "wall_s": round(statistics.median(t["wall_s"] for t in ticks), 3),
            "peak_rss_mb": max(t["peak_rss_mb"] for t in ticks),
            "peak_rss_is_per_tick": can_reset,
        }
        out["idle_rss_mb"] = rss_mb()

        # (b2): one commit changing one file: the CPU of the tick that applies it, then the run of no-op
        # ticks whose CPU and RSS must stay flat (least-squares slope per tick).
        repo.write_taskdef(0, "one")
        repo.commit("bump svc0000")
        gc.collect()
        before = reference_cpu_s()
        cpu0 = time.process_time()
        one = agent.tick()
        one_cpu = time.process_time() - cpu0
        reference = statistics.median([before, reference_cpu_s()])
        out["one_file_commit"] = {
            "cpu_s": round(one_cpu, 3),
            "reference_cpu_s": round(reference, 5),
            "cpu_reference_units": round(one_cpu / reference),
            "outcome": one.outcome,
        }
        settle()
        out["flat"] = flat(agent, slope_ticks)

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
        # Ticks of every phase that outlasted the poll interval (ecs_gitops_tick_overrun_total).
        out["overruns"] = {"count": agent.readiness.overruns, "interval_s": interval}
        return out
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


def _latency(
    agent: Any, repo: Repo, interval: int, trials: int, modes: tuple[str, ...] = ("watch", "webhook", "poll")
) -> dict[str, Any]:
    """Commit to first mutating call with ``Agent.run``: the watchfiles trigger (``watch``), a signed push
    webhook posted to the agent's server right after the commit (``webhook``, no watcher), and polling
    alone (``poll``)."""
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

    def trial(max_wait: float, push: Any = None) -> float:
        tag[0] += 1
        i = rng.randrange(repo.n)
        repo.write_taskdef(i, str(tag[0]))
        with lock:
            armed.clear()
            hit.clear()
        repo.commit(f"bump svc{i:04d}")
        with lock:
            armed["commit"] = time.perf_counter()
        if push is not None:
            push(f"bench-{tag[0]}")
        if not hit.wait(max_wait):
            raise RuntimeError(f"no mutating call {max_wait} s after the commit")
        return armed["call"] - armed["commit"]

    def idle(agent: Any, seconds: float) -> None:
        """Wait until the agent is between ticks (the rollout of the last trial has been applied)."""
        time.sleep(seconds)
        with agent._lock:  # held while a tick runs
            pass

    class Polled(GitSource):
        local_path = property(lambda self: None)  # type: ignore[assignment]

    results: dict[str, Any] = {}
    for mode in modes:
        if mode != "watch":  # as with a remote repository: no file watcher, the interval job (and webhooks)
            agent.source.__class__ = Polled
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,), name=f"bench-agent-{mode}")
        runner.start()
        idle(agent, 1.0)
        samples = []
        try:
            push = _webhook(agent) if mode == "webhook" else None
            for _ in range(trials):
                if mode == "poll":
                    time.sleep(rng.uniform(0, interval))  # commits land at any point of the poll cycle
                samples.append(round(trial(interval * 3 + 60, push), 3))
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
    if "poll" not in results:
        return results
    jitter = poll_jitter(interval)
    results["poll"].update(
        {
            "interval_s": interval,
            "jitter_s": jitter,
            "median_over_interval": round(results["poll"]["median_s"] / interval, 2),
            "max_over_interval": round(results["poll"]["max_s"] / interval, 2),
        }
    )
    return results


def _webhook(agent: Any) -> Any:
    """``push(delivery)``: post a signed GitHub push of the tracked branch to the agent's server (the
    secret is set for this process); raises unless the agent answers that it asked for a tick."""
    import json
    import os
    import urllib.request

    from agent.http.server import github_signature

    secret = "bench-webhook-secret"
    os.environ[agent.config.server.webhook_secret_env] = secret
    deadline = time.monotonic() + 30
    while agent.server is None and time.monotonic() < deadline:
        time.sleep(0.05)
    url = agent.server.url + "/webhook/github"
    body = json.dumps({"ref": f"refs/heads/{agent.config.source.branch}"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": github_signature(secret, body),
    }

    def push(delivery: str) -> None:
        request = urllib.request.Request(
            url, data=body, headers={**headers, "X-GitHub-Delivery": delivery}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if not answer.get("triggered"):
            raise RuntimeError(f"the webhook asked for no tick: {answer}")

    return push


def measure_faults(n: int, rate: float, seed: int) -> dict[str, Any]:
    """A rollout of n services without faults, then one with ``rate`` of AWS requests failing."""
    quiet_logs()
    from agent.aws.clients import Aws
    from agent.aws.pacing import Pacer
    from agent.config import AgentConfig
    from agent.daemon import Agent
    from agent.sandbox.client_faults import AwsFaults

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
