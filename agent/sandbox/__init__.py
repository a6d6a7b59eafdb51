"""The sandbox, an optional extra (``ecs-gitops[sandbox]``): moto's server on loopback plus the ECS behaviour
moto lacks (deployments, task sets, service deployments, alarms, Lambda answers), the harness the tests use
(harness.py, client_faults.py, git_hosts.py, traffic_invariant.py), the demo (demo.py) and the benchmark
(bench/). Nothing in the agent imports it; ``ecs-gitops sandbox`` loads it by name."""
