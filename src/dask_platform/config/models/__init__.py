"""The stack configuration's pydantic models, one module per section; every public model is
importable from here (``from dask_platform.config.models import StackConfig, Gateway``)."""

from dask_platform.config.models.capacity import (
    Capacity,
    NodePoolCapacity,
    SchedulerNodePoolCapacity,
)
from dask_platform.config.models.ecs import LOG_RETENTION_DAYS, Ecs, EcsGpu
from dask_platform.config.models.eks import (
    DOCUMENTATION_RANGES,
    Eks,
    EksAccess,
    EksAddons,
    EksEndpoint,
    Network,
    NodeGroup,
    NodeGroups,
)
from dask_platform.config.models.gateway import (
    SUPPORTED_CHART_VERSION,
    Gateway,
    GatewayAuth,
    GatewayTls,
    Image,
    IntRange,
    Oidc,
    Range,
)
from dask_platform.config.models.images import ImageRefs, Images, Registry
from dask_platform.config.models.limits import (
    DEFAULT_PER_TEAM,
    DEFAULT_PER_USER,
    LimitOverrides,
    Limits,
    LimitValues,
    TeamLimits,
)
from dask_platform.config.models.object_stores import ObjectStore
from dask_platform.config.models.stack import DataBucket, Scratch, StackConfig, Team

__all__ = [
    "DEFAULT_PER_TEAM",
    "DEFAULT_PER_USER",
    "DOCUMENTATION_RANGES",
    "LOG_RETENTION_DAYS",
    "SUPPORTED_CHART_VERSION",
    "Capacity",
    "DataBucket",
    "Ecs",
    "EcsGpu",
    "Eks",
    "EksAccess",
    "EksAddons",
    "EksEndpoint",
    "Gateway",
    "GatewayAuth",
    "GatewayTls",
    "Image",
    "ImageRefs",
    "Images",
    "IntRange",
    "LimitOverrides",
    "LimitValues",
    "Limits",
    "Network",
    "NodeGroup",
    "NodeGroups",
    "NodePoolCapacity",
    "ObjectStore",
    "Oidc",
    "Range",
    "Registry",
    "SchedulerNodePoolCapacity",
    "Scratch",
    "StackConfig",
    "Team",
    "TeamLimits",
]
