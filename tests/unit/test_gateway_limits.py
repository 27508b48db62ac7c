"""Limit arithmetic a user can predict (dask_platform.gateway_limits), on cluster configs built
by dask-gateway-server's own ClusterConfig; the stack's limits as the gateway receives them.
The enforcement itself is tested on the real local gateway (tests/integration/test_limits.py)."""

from __future__ import annotations

from pathlib import Path

from dask_gateway_server.backends.base import ClusterConfig

from dask_platform.config.sources import load_stack_path
from dask_platform.gateway_limits import ClusterSize, _per_cluster_caps, _total_caps
from dask_platform.gateway_settings import gateway_settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
GIB = 2**30


def cluster_config(**traits: object) -> dict:
    return ClusterConfig(**traits).to_dict()


def test_the_issues_case_names_the_cores_limit_and_the_scheduler():
    # 2-core workers, cluster_max_cores 2: dask-gateway folds it into cluster_max_workers 0
    # and reports "workers"; the platform names the cores and counts the scheduler's core.
    config = cluster_config(worker_cores=2, cluster_max_cores=2, cluster_max_workers=4)
    assert config["cluster_max_workers"] == 0, "dask-gateway's own folding"
    caps = _per_cluster_caps(config, 4)
    binding = min(caps, key=lambda c: c.workers)
    assert binding.workers == 0
    assert binding.reason == ("cluster_max_cores is 2: the scheduler's 1 + 0 workers x 2 cores = 1")


def test_per_cluster_caps_match_dask_gateways_own_count():
    config = cluster_config(
        worker_cores=2,
        worker_memory=3 * GIB,
        cluster_max_cores=8,
        cluster_max_memory=16 * GIB,
        cluster_max_workers=10,
    )
    caps = _per_cluster_caps(config, 10)
    assert [c.workers for c in caps] == [10, 3, 4]
    assert min(c.workers for c in caps) == config["cluster_max_workers"]
    assert caps[2].reason == (
        "cluster_max_memory is 16 GiB: the scheduler's 2 GiB + 4 workers x 3 GiB = 14 GiB"
    )


def test_totals_count_the_other_clusters():
    this = ClusterSize("c", "alice", "team-a", 2, 4, 0)
    others = [
        ClusterSize("d", "alice", "team-a", 1, 2, 3),
        ClusterSize("e", "alice", "team-a", 2, 4, 1),
    ]
    cores, memory = _total_caps(
        this, others, {"clusters": 2, "worker_cores": 10, "worker_memory_gib": 100}, "alice's"
    )
    assert cores.workers == 2  # (10 - 3 - 2) // 2
    assert cores.reason == (
        "alice's worker_cores limit is 10 cores; other clusters hold 5 cores (2 cluster(s)), "
        "leaving room for 2 workers x 2 cores"
    )
    assert memory.workers == 22  # (100 - 6 - 4) // 4


def test_settings_carry_each_teams_resolved_limits():
    settings = gateway_settings(load_stack_path(FIXTURES / "limits.ok.yaml"))
    assert settings["limits"] == {
        "team-a": {
            "per_user": {"clusters": 2, "worker_cores": 32.0, "worker_memory_gib": 64.0},
            "per_team": {"clusters": 4, "worker_cores": 64.0, "worker_memory_gib": 256.0},
        },
        "team-b": {
            "per_user": {"clusters": 2, "worker_cores": 16.0, "worker_memory_gib": 64.0},
            "per_team": {"clusters": 10, "worker_cores": 64.0, "worker_memory_gib": 256.0},
        },
    }


def test_limits_default_to_the_documented_values():
    config = load_stack_path(FIXTURES / "minimal.ok.yaml")
    per_user, per_team = config.limits.for_team("team-a")
    assert per_user.model_dump() == {"clusters": 3, "worker_cores": 64, "worker_memory_gib": 256}
    assert per_team.model_dump() == {
        "clusters": 20,
        "worker_cores": 512,
        "worker_memory_gib": 2048,
    }
