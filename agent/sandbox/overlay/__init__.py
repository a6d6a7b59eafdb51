"""ECS overlay: WSGI middleware that makes moto's ECS answer like the real service.

moto stores ECS state but drops or mangles much of what our agent reads back (capacity-provider
strategies, deployment configuration, Managed Instances capacity providers, ``cpu: "0.5 vCPU"``...).
This middleware sits in front of moto's WSGI app and handles the ECS JSON protocol
(``X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>``):

* ``handlers`` maps an operation to a function that answers it (usually by patching the request,
  forwarding it to moto with :meth:`Call.forward`, and patching the reply);
* ``post_processors`` maps an operation to functions applied to moto's successful replies.

Both tables are plain dicts that other parts extend instead of editing the dispatcher: the
deployment simulator (:mod:`agent.sandbox.simulator`) owns ``deployments``, task sets, counts and
events, and registers itself with :meth:`Simulator.install`, which also adds a ``before_dispatch``
hook (it catches up with its clock before each request) and ``control_routes`` (JSON endpoints under
``/_sandbox/``, outside ECS's target header). Requests for other services pass the ``pre_request``
hooks too (faults name any AWS operation, e.g. ELBv2's ``ModifyRule``) and then go to ``aws_routes``
(REST APIs the sandbox answers itself: Lambda Invoke, :mod:`agent.sandbox.lambdas`) or to moto
untouched. All ECS calls are serialised by one lock: moto is not thread-safe and the overlay state
must match it.

What is patched, and why, is listed next to each handler; the ECS output shapes come from botocore's
own model so that every reply parses with a real boto3 client.

The package, one module per concern (each lists what moto gets wrong about its resource):

* :mod:`~agent.sandbox.overlay.dispatch`: :class:`EcsOverlay`, the routing and the default tables;
* :mod:`~agent.sandbox.overlay.calls`: :class:`Call`, :class:`Reply`, :class:`EcsError`, the state;
* :mod:`~agent.sandbox.overlay.shapes`: botocore's ECS model (conform a reply, check it);
* :mod:`~agent.sandbox.overlay.services`, :mod:`~agent.sandbox.overlay.clusters`,
  :mod:`~agent.sandbox.overlay.capacity_providers`, :mod:`~agent.sandbox.overlay.task_definitions`.
"""

from agent.sandbox.overlay.calls import (
    Call,
    EcsError,
    Handler,
    Json,
    Overlay,
    OverlayState,
    PostProcessor,
    Reply,
    region_of,
)
from agent.sandbox.overlay.capacity_providers import (
    FARGATE_PROVIDERS,
    check_capacity_strategy,
    normalise_strategy,
)
from agent.sandbox.overlay.dispatch import (
    CONTENT_TYPE,
    CONTROL_PREFIX,
    DEFAULT_HANDLERS,
    DEFAULT_POST_PROCESSORS,
    TARGET_PREFIX,
    AwsRoute,
    ControlRoute,
    EcsOverlay,
)
from agent.sandbox.overlay.services import (
    DEFAULT_DEPLOYMENT_CONFIGURATION,
    DEPLOYMENT_FIELDS,
    SERVICE_DEFAULTS,
    SERVICE_FIELDS,
    merge_service,
)
from agent.sandbox.overlay.shapes import conform, shape_errors, shape_members
from agent.sandbox.overlay.task_definitions import (
    TASKDEF_DEFAULTS,
    TASKDEF_FIELDS,
    task_cpu_units,
    task_memory_mib,
)

__all__ = [
    "CONTENT_TYPE",
    "CONTROL_PREFIX",
    "DEFAULT_DEPLOYMENT_CONFIGURATION",
    "DEFAULT_HANDLERS",
    "DEFAULT_POST_PROCESSORS",
    "DEPLOYMENT_FIELDS",
    "FARGATE_PROVIDERS",
    "SERVICE_DEFAULTS",
    "SERVICE_FIELDS",
    "TARGET_PREFIX",
    "TASKDEF_DEFAULTS",
    "TASKDEF_FIELDS",
    "AwsRoute",
    "Call",
    "ControlRoute",
    "EcsError",
    "EcsOverlay",
    "Handler",
    "Json",
    "Overlay",
    "OverlayState",
    "PostProcessor",
    "Reply",
    "check_capacity_strategy",
    "conform",
    "merge_service",
    "normalise_strategy",
    "region_of",
    "shape_errors",
    "shape_members",
    "task_cpu_units",
    "task_memory_mib",
]
