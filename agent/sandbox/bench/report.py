"""The bench's report: the table printed, the faults line, and the cost plot (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            "N",
            "no-op calls",
            "DescribeSvc/floor",
            "other max",
            "TD reads",
            "CPU s/tick",
            "1-file CPU s",
            "CPU ms/tick slope",
            "RSS MB/tick slope",
            "peak RSS MB",
            "idle RSS MB",
            "rollout s",
            "rollout calls",
            "mut/svc",
            "reads/svc",
            "ECS-paced s",
            "watch ms (med/max)",
            "webhook ms (med/max)",
            "poll s (med/max) /X",
            "overruns",
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
                _cpu(noop),
                _cpu(r["one_file_commit"]) if "one_file_commit" in r else "-",
                f"{r['flat']['cpu_ms_per_tick_slope']:+.3f}/{r['flat']['ticks']}" if "flat" in r else "-",
                f"{r['flat']['rss_mb_per_tick_slope']:+.4f}" if "flat" in r else "-",
                f"{noop['peak_rss_mb']:.0f}",
                f"{r['idle_rss_mb']:.0f}",
                f"{roll['wall_s']:.1f}",
                str(roll["total"]),
                f"{roll['mutating_per_service']:.2f}",
                f"{roll['reads_beyond_per_service']:.3f}",
                f"{roll['paced_floor_s']:.0f}",
                _ms(lat["watch"]),
                _ms(lat.get("webhook")),
                f"{lat['poll']['median_s']:.1f}/{lat['poll']['max_s']:.1f} /{lat['poll']['interval_s']}",
                str(r.get("overruns", {}).get("count", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cpu(measured: dict[str, Any]) -> str:
    """CPU seconds, and in reference units when measured (see ``measuring.reference_cpu_s``)."""
    units = measured.get("cpu_reference_units")
    return f"{measured['cpu_s']:.3f}" + (f" = {units:.0f} ref" if units is not None else "")


def _ms(latency: dict[str, Any] | None) -> str:
    """Median/max of one trigger's latency samples, in milliseconds ("-" when not measured)."""
    if latency is None:
        return "-"
    return f"{latency['median_s'] * 1000:.0f}/{latency['max_s'] * 1000:.0f}"


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
