"""``python -m agent.sandbox.bench``: measure each N in a process of its own, then the faults scenario and,
with ``--peers``, the peer scenario; print the tables and write results.json and cost.png. The parts a run
does not measure (``--sizes ''``, ``--faults-n 0``, ``--peers-only``) are kept from the results.json there."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from agent.sandbox.bench import __doc__ as BENCH_DOC
from agent.sandbox.bench.measuring import measure, measure_faults
from agent.sandbox.bench.peers import measure_peers, peers_table
from agent.sandbox.bench.report import faults_line, plot, table

SIZES = (10, 100, 1000)
PEER_SIZES = (10, 50)
OUT = Path("docs/bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.sandbox.bench", description=BENCH_DOC.splitlines()[0]
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated N values")
    parser.add_argument("--interval", type=int, default=5, help="poll interval X, seconds (default 5)")
    parser.add_argument("--trials", type=int, default=5, help="latency samples per trigger (default 5)")
    parser.add_argument("--out", default=str(OUT), help="where results.json and cost.png go")
    parser.add_argument(
        "--slope-ticks", type=int, default=200, help="no-op ticks for the slopes (default 200)"
    )
    parser.add_argument("--faults-n", type=int, default=50, help="services in the faults scenario (0: skip)")
    parser.add_argument("--faults-rate", type=float, default=0.2, help="share of AWS requests failing")
    parser.add_argument(
        "--peers", action="store_true", help="also time fabfuel ecs-deploy against apply and the daemon"
    )
    parser.add_argument(
        "--peers-only", action="store_true", help="only the peer scenario (= --peers --sizes '' --faults-n 0)"
    )
    parser.add_argument("--peers-sizes", default=",".join(map(str, PEER_SIZES)), help="N values of --peers")
    parser.add_argument("--peers-trials", type=int, default=3, help="trials of each tool (default 3)")
    parser.add_argument(
        "--peers-ecs-deploy",
        help="an installed ecs-deploy's `ecs` (default: pip installs one in a temp venv)",
    )
    parser.add_argument(
        "--peers-ecs-gitops",
        help="an installed `ecs-gitops` to time as apply (default: this checkout, installed in a temp venv)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N, print JSON
    parser.add_argument("--faults-one", type=int, help=argparse.SUPPRESS)  # internal: the faults scenario
    parser.add_argument("--peers-one", type=int, help=argparse.SUPPRESS)  # internal: the peers at one N
    args = parser.parse_args(argv)
    if args.peers_only:
        args.peers, args.sizes, args.faults_n = True, "", 0

    if args.peers_one is not None:
        tools = (args.peers_ecs_deploy, args.peers_ecs_gitops)
        print(json.dumps(measure_peers(args.peers_one, args.peers_trials, *tools)), flush=True)
        return 0
    if args.one is not None:
        print(json.dumps(measure(args.one, args.interval, args.trials, args.slope_ticks)), flush=True)
        return 0
    if args.faults_one is not None:
        print(json.dumps(measure_faults(args.faults_one, args.faults_rate, seed=6)), flush=True)
        return 0

    started = time.perf_counter()
    results = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        t0 = time.perf_counter()
        print(f"N={n} ...", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "agent.sandbox.bench", "--one", str(n), "--interval", str(args.interval),
             "--trials", str(args.trials), "--slope-ticks", str(args.slope_ticks)],
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
            [sys.executable, "-m", "agent.sandbox.bench", "--faults-one", str(args.faults_n),
             "--faults-rate", str(args.faults_rate)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            return 1
        faults = json.loads(proc.stdout.strip().splitlines()[-1])

    peers = None
    if args.peers:
        peers = {"trials": args.peers_trials, "sizes": []}
        for n in (int(s) for s in args.peers_sizes.split(",") if s):
            print(f"peers: N={n}, {args.peers_trials} trials of each tool ...", flush=True)
            cmd = [sys.executable, "-m", "agent.sandbox.bench", "--peers-one", str(n),
                   "--peers-trials", str(args.peers_trials)]  # fmt: skip
            if args.peers_ecs_deploy:
                cmd += ["--peers-ecs-deploy", args.peers_ecs_deploy]
            if args.peers_ecs_gitops:
                cmd += ["--peers-ecs-gitops", args.peers_ecs_gitops]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
                return 1
            peers["sizes"].append(json.loads(proc.stdout.strip().splitlines()[-1]))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m agent.sandbox.bench", *(argv if argv is not None else sys.argv[1:])])
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    doc = {
        "command": command if results else previous.get("command", command),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "total_s": round(time.perf_counter() - started, 1) if results else previous.get("total_s"),
        "results": results or previous.get("results", []),
        "faults": faults if faults is not None else previous.get("faults"),
        "peers": {**peers, "command": command} if peers is not None else previous.get("peers"),
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    if results:
        print()
        print(table(results))
    if faults is not None:
        print()
        print(faults_line(faults))
    if peers is not None:
        print()
        print(peers_table(peers["sizes"]))
    plotted = plot(results, out / "cost.png") if results else False
    print()
    drawn = f" and {out / 'cost.png'}" if plotted else " (no plot: no sizes, or matplotlib missing)"
    print(f"wrote {out / 'results.json'}{drawn}")
    print(f"bench took {round(time.perf_counter() - started, 1)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
