"""Fair-share limits the gateway enforces per user and per team (dask_platform.gateway_limits)."""

from __future__ import annotations

from pydantic import Field

from dask_platform.config.types import (
    ConfigModel,
)


class LimitValues(ConfigModel):
    """One set of fair-share limits; every field is a total over the clusters counted."""

    clusters: int = Field(ge=1, le=1000, description="Clusters running or starting at once.")
    worker_cores: float = Field(
        gt=0, description="Cores of the workers the clusters may have (schedulers excluded)."
    )
    worker_memory_gib: float = Field(
        gt=0, description="Memory (GiB) of the workers the clusters may have."
    )


class LimitOverrides(ConfigModel):
    """Some fields of :class:`LimitValues`; the rest come from the defaults."""

    clusters: int | None = Field(default=None, ge=1, le=1000)
    worker_cores: float | None = Field(default=None, gt=0)
    worker_memory_gib: float | None = Field(default=None, gt=0)


class TeamLimits(ConfigModel):
    per_user: LimitOverrides = Field(default_factory=LimitOverrides)
    per_team: LimitOverrides = Field(default_factory=LimitOverrides)


DEFAULT_PER_USER = LimitValues(clusters=3, worker_cores=64, worker_memory_gib=256)
DEFAULT_PER_TEAM = LimitValues(clusters=20, worker_cores=512, worker_memory_gib=2048)


class Limits(ConfigModel):
    """Fair share, enforced by the gateway (dask_platform.gateway_limits): what one user may hold
    and what all users of one team together may hold, over the clusters running or starting.
    A cluster counts against the team it was started for (its ``team`` option)."""

    per_user: LimitValues = Field(
        default=DEFAULT_PER_USER, description="Each user's limits, in every team."
    )
    per_team: LimitValues = Field(
        default=DEFAULT_PER_TEAM, description="Each team's limits (all its users together)."
    )
    teams: dict[str, TeamLimits] = Field(
        default_factory=dict,
        description="Per-team overrides of per_user (for that team's clusters) and per_team.",
    )
    no_client_timeout_minutes: float = Field(
        default=15,
        gt=0,
        le=7 * 24 * 60,
        description="A cluster with no connected Dask client this long is stopped "
        "(dask_platform.no_client); clusters created with shutdown_on_close=False are exempt "
        "but still obey gateway.idle_timeout_minutes.",
    )

    def for_team(self, team: str) -> tuple[LimitValues, LimitValues]:
        """``(per_user, per_team)`` in effect for clusters of ``team``."""
        override = self.teams.get(team, TeamLimits())
        return (
            self.per_user.model_copy(update=override.per_user.model_dump(exclude_none=True)),
            self.per_team.model_copy(update=override.per_team.model_dump(exclude_none=True)),
        )


# ref: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
