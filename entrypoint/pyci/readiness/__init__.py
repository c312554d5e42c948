"""Watch every workload until it is healthy, has failed for good, or ran out of time.

One thread per (kind, namespace) lists, then watches from the list's resourceVersion, and feeds one
queue (`watch`); the caller's thread applies each event to a local cache (`cache`) and re-evaluates
at once, so a workload is reported healthy within milliseconds of the API server saying so. A run
starts these watches once, before `tilt ci` (`Sentinel`), and decides readiness on them afterwards.
The health rules (`health`), what is wrong with a pod (`classify`) and the verdict each workload gets
(`verdict`: failed on evidence of its own, or not finished) are pure functions over the objects as the
API returns them (camelCase JSON dicts), unit-tested with plain dicts.
"""

from pyci.readiness.cache import Cache
from pyci.readiness.classify import Problem, never_ready, pod_problem, workload_problem
from pyci.readiness.explain import describe_pending
from pyci.readiness.health import SETTLE, unsettled, workload_health
from pyci.readiness.objects import (
    SYSTEM_NAMESPACES,
    WORKLOAD_KINDS,
    Key,
    allowance,
    controller_of,
    parse_time,
    result_name,
)
from pyci.readiness.waiter import Sentinel, wait_healthy

__all__ = [
    "SETTLE", "SYSTEM_NAMESPACES", "WORKLOAD_KINDS", "Cache", "Key", "Problem", "Sentinel", "allowance",
    "controller_of", "describe_pending", "never_ready", "parse_time", "pod_problem", "result_name",
    "unsettled", "wait_healthy", "workload_health", "workload_problem",
]
