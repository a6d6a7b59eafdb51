"""The bench's peer scenario without tools: the runs alternate, and the report's ratios and calls per
service come from the samples a fake runner returns."""

from __future__ import annotations

from agent.sandbox.bench.peers import BASELINE, RUNS, Runner, order, peers_table, run_trials, summarise

WALL = {"ecs-deploy": 40.0, "apply (cold)": 4.0, "apply (warm)": 2.0, "daemon": 1.6}


def fake_runner(log: list[tuple[str, str]]) -> Runner:
    """A runner that records each run and answers a fixed wall time (+ the run's position) and calls."""

    def run(mode: str, tool: str) -> tuple[float, dict[str, int]]:
        log.append((mode, tool))
        extra = 0.1 * sum(1 for m, t in log if (m, t) == (mode, tool))
        calls = {"RegisterTaskDefinition": 10, "UpdateService": 10, "DescribeServices": 1}
        if tool == BASELINE:
            calls = {**calls, "DescribeServices": 30, "DescribeTaskDefinition": 10}
        return WALL[tool] * (2 if mode == "deployed" else 1) + extra, calls

    return run


def test_each_trial_rotates_the_order_of_the_runs() -> None:
    """Trial k starts with the run k places further along, so no tool always runs first or last."""
    log: list[tuple[str, str]] = []
    run_trials(3, fake_runner(log))
    assert len(log) == 3 * len(RUNS)
    assert [log[i * len(RUNS)] for i in range(3)] == [RUNS[0], RUNS[1], RUNS[2]]
    assert order(len(RUNS)) == list(RUNS) and sorted(order(5)) == sorted(RUNS)


def test_summary_gives_medians_ratios_to_ecs_deploy_and_calls_per_service() -> None:
    """Per mode, each tool's median wall time over ecs-deploy's, and its median calls over N."""
    summary = summarise(10, run_trials(3, fake_runner([])))
    written, deployed = summary["modes"]["written"], summary["modes"]["deployed"]
    assert summary["trials"] == 3
    assert written["ecs-deploy"]["wall_s"] == [40.1, 40.2, 40.3] and written["ecs-deploy"]["median_s"] == 40.2
    assert written["daemon"]["median_s"] == 1.8 and written["daemon"]["x_faster_than_ecs_deploy"] == 22.3
    assert (
        deployed["apply (cold)"]["median_s"] == 8.2
        and deployed["apply (cold)"]["x_faster_than_ecs_deploy"] == 9.8
    )
    assert written["ecs-deploy"]["calls_per_service"] == 6.0 and written["daemon"]["calls_per_service"] == 2.1


def test_table_shows_one_row_per_size_mode_and_tool() -> None:
    """The printed table: N, mode, tool, median, range, x faster (none for ecs-deploy itself), calls."""
    peers = [summarise(n, run_trials(1, fake_runner([]))) for n in (10, 50)]
    lines = peers_table(peers).splitlines()
    assert lines[0].split() == ["N", "until", "tool", "median", "s", "min-max", "s", "x", "faster", "than",
                                "ecs-deploy", "AWS", "calls/service"]  # fmt: skip
    assert len(lines) == 2 + 2 * len(RUNS)
    assert lines[2].split() == ["10", "written", "ecs-deploy", "40.10", "40.10-40.10", "-", "6.00"]
    assert lines[-1].split() == ["50", "deployed", "daemon", "3.30", "3.30-3.30", "24.3", "0.42"]
