"""``python -m agent.sandbox.bench`` (``make bench``): what the agent costs at N = 10, 100 and 1,000 services.

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
   ``/proc/self/clear_refs``) per no-op tick, and the RSS when idle after them; each CPU figure also in
   reference units, a multiple of a fixed workload timed beside it (``measuring.reference_cpu_s``), since
   the machine's speed drifts;
c. wall time and calls to roll a new image out to all N services from one commit, until every service
   is reported deployed;
d. commit-to-first-mutating-call latency of ``Agent.run``: with the watchfiles trigger (a local
   repository), and polling every ``--interval`` seconds (the watcher turned off);
e. overruns: the ticks of a-d that outlasted ``--interval`` (``ecs_gitops_tick_overrun_total``; the loop
   then pauses between ticks rather than running them back to back).

And once, for ``--faults-n`` services (50 by default): the rollout of a new image to all of them with
``--faults-rate`` (20 %) of the agent's AWS requests failing (throttling and 5xx, seeded:
``agent.sandbox.client_faults.AwsFaults``), against the same rollout without faults: requests, faults
injected, botocore retries and the duration ratio.

With ``--peers`` (``--peers-only``: that alone, kept with the other results of results.json), the peer
scenario of :mod:`agent.sandbox.bench.peers`: fabfuel ecs-deploy against ``ecs-gitops apply`` (cold and
warm) and the daemon, at N = 10 and 50, 3 trials each.

It prints a table and writes ``docs/bench/results.json`` and ``docs/bench/cost.png`` (matplotlib, from the
``bench`` extra; skipped with a note when it is missing).
"""
