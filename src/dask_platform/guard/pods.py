"""The pods of the dask-gateway release, as its controller would create them, checked in `plan`.

For the release the program declares (its recorded values, secrets redacted): the chart is
rendered, its config loaded as the API pod and the controller load it, every team's scheduler
and worker built by dask-gateway-server (:mod:`dask_platform.gateway_pods`), each checked
(schema, ServiceAccount, merged placement, resources, environment), then placed on the NodePools
the program declares (:mod:`dask_platform.schedulability`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dask_platform import capacity as cap
from dask_platform.config.models import StackConfig
from dask_platform.gateway_pod_checks import check_built_pods
from dask_platform.gateway_pods import (
    GATEWAY_RELEASE,
    GatewayConfigError,
    build_pods,
    config_file_problems,
    render_gateway,
)
from dask_platform.guard.manifests import RELEASE_TYPE, release_values
from dask_platform.pulumi_mocks import Evaluation
from dask_platform.schedulability import PodPlacement, place_pods

NODE_POOL_TYPE = "kubernetes:karpenter.sh/v1:NodePool"


@dataclass
class PodReport:
    """What `plan` shows of the gateway's pods: one line per problem, and where each pod fits."""

    problems: list[str] = field(default_factory=list)
    placements: list[PodPlacement] = field(default_factory=list)
    pods_built: int = 0


def check_release_pods(config: StackConfig, evaluation: Evaluation) -> PodReport:
    """Build and check the pods of the declared dask-gateway release (see the module doc).

    A stack without that release is a problem (nothing would serve `Gateway()`). Raises
    ChartError when the chart cache lacks the pinned chart (plan reports it as for rendering).
    """
    releases = [
        r for r in evaluation.of_type(RELEASE_TYPE) if r.inputs.get("name") == GATEWAY_RELEASE
    ]
    if not releases:
        return PodReport(
            problems=[
                f"no Helm release named {GATEWAY_RELEASE!r} is declared: the gateway's pods "
                "cannot be built and checked"
            ]
        )
    values = release_values(releases[0])
    rendered = render_gateway(config, values)
    report = PodReport(problems=config_file_problems(rendered))
    if report.problems:
        return report
    try:
        pods = build_pods(config, rendered=rendered)
    except GatewayConfigError as exc:
        report.problems.append(str(exc))
        return report
    report.pods_built = len(pods)
    report.problems += check_built_pods(pods, config.eks.kubernetes_version)
    node_pools = [r.inputs for r in evaluation.of_type(NODE_POOL_TYPE)]
    if node_pools:
        report.placements, problems = place_pods(
            pods,
            node_pools,
            region=config.region,
            vm_memory_overhead_percent=config.capacity.vm_memory_overhead_percent,
            daemonset_overhead=cap.daemonset_overhead(config.capacity),
        )
        report.problems += problems
    else:
        report.problems.append("no Karpenter NodePool is declared: nothing would add nodes")
    return report
