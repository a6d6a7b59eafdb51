"""The parts the sandbox's ECS simulation is built from.

:mod:`agent.sandbox.simulator` (the :class:`~agent.sandbox.simulator.Simulator`) and
:mod:`agent.sandbox.service_deployments` (its :class:`~agent.sandbox.service_deployments.ServiceDeployments`)
compose these modules; both depend on :mod:`~agent.sandbox.simulation.model` and
:mod:`~agent.sandbox.simulation.clock`, and neither of those imports them back.
"""
