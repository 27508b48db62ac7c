"""The typed stack config: good stacks load, every bad one fails with the field named.

Table-driven: tests/fixtures/config/<name>.ok.yaml must load. Each row of :data:`BAD` patches
one of them (key path -> bad value) and must be refused with exactly the problems it lists, each
a line that starts with the key path. The patched file goes through the real loader.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_platform.config.errors import StackConfigError
from dask_platform.config.rules import validate_stack_config
from dask_platform.config.sources import (
    NAMESPACE,
    list_stacks,
    load_stack_file,
    load_stack_path,
)
from dask_platform.pulumi_mocks import RecordingMocks

from ..programs import declared, run_program

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
OK = sorted(FIXTURES.glob("*.ok.yaml"))

DELETE = object()
"""A patch value: remove the key."""

SECRET = {"secure": "AAABAHg="}
"""An encrypted value as `pulumi config set --secret` stores it (never decrypted offline)."""

TLS = {
    "certificate_arn": "arn:aws:acm:eu-central-1:111122223333:certificate/"
    "6f1c2a9e-4b7d-4e21-9c3a-2d8f5e7b1a04",
    "hostname": "dask.example.org",
}
NO_HUB_TOKEN = {"gateway_jupyterhub_api_token": DELETE}


@dataclass(frozen=True)
class Bad:
    """A bad config: ``patch`` (key path -> bad value) over ``tests/fixtures/config/<base>.ok.yaml``
    must be refused with exactly ``expected`` problems (each the start of one reported line)."""

    id: str
    patch: dict[str, Any]
    expected: tuple[str, ...]
    base: str = "minimal"

    def document(self) -> dict[str, Any]:
        document = yaml.safe_load((FIXTURES / f"{self.base}.ok.yaml").read_text())
        for path, value in self.patch.items():
            set_path(document["config"], path, value)
        return document

    def write(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.document(), sort_keys=False))
        return path


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with :data:`DELETE` remove) ``a.b[0].c`` in a stack file's ``config:`` mapping,
    the first key in the ``dask-platform:`` namespace. Every parent must exist (a typo in the
    table fails here, not as a passing test)."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    parts[0] = f"{NAMESPACE}:{parts[0]}"
    node: Any = config
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = copy.deepcopy(value)


def expect(*expected: str) -> tuple[str, ...]:
    return expected


BAD = [
    # ------------------------------------------------------------------ top level
    Bad(
        "account-id-missing", {"account_id": DELETE}, expect("account_id: required key is missing")
    ),
    Bad("missing-region", {"region": DELETE}, expect("region: required key is missing")),
    Bad(
        "bad-region",
        {"region": "europe-central"},
        expect("region: must be an AWS commercial-partition region such as us-west-2"),
    ),
    Bad(
        "production-not-a-boolean",
        {"production": "maybe"},
        expect(
            "production: Input should be a valid boolean, unable to interpret input (got 'maybe')"
        ),
    ),
    Bad(
        "unknown-top-level-key",
        {"regoin": "eu-central-1"},
        expect("regoin: unknown key; allowed keys:"),
    ),
    Bad(
        "three-problems-at-once",
        {"region": "mars-1", "teams[0].name": "A", "scratch.retention_days": 1000},
        expect(
            "region: must be an AWS",
            "teams[0].name: must be 2-20",
            "scratch.retention_days: Input should be less than or equal to 365 (got 1000)",
        ),
    ),
    # ------------------------------------------------------------------ network
    Bad(
        "vpc-cidr-host-bits",
        {"network.vpc_cidr": "10.10.0.1/16"},
        expect("network.vpc_cidr: must be an IPv4 CIDR"),
    ),
    Bad(
        "vpc-cidr-too-small",
        {"network.vpc_cidr": "10.10.0.0/28"},
        expect("network.vpc_cidr: prefix length must be /16 to /24 (got /28)"),
    ),
    Bad(
        "single-availability-zone",
        {"network.availability_zones": ["eu-central-1a"]},
        expect("network.availability_zones: List should have at least 2 items"),
    ),
    Bad(
        "zone-of-other-region",
        {"network.availability_zones[1]": "us-east-1a"},
        expect("network.availability_zones[1]: 'us-east-1a' is not a zone of region eu-central-1"),
    ),
    Bad(
        "ingress-cidr-not-a-cidr",
        {"network.ingress_cidrs": ["everyone"]},
        expect("network.ingress_cidrs[0]: must be an IPv4 CIDR"),
    ),
    # ------------------------------------------------------------------ eks
    Bad(
        "kubernetes-version-1-28",
        {"eks.kubernetes_version": "1.28"},
        expect(
            "eks.kubernetes_version: must be an EKS Kubernetes minor version in standard support, "
            "one of 1.34"
        ),
    ),
    Bad(
        "admin-role-not-an-arn",
        {"eks.access.admin_role_arns[0]": "arn:aws:iam::111122223333:user/alice"},
        expect("eks.access.admin_role_arns[0]: must be an IAM role ARN"),
    ),
    Bad(
        "no-admin-roles",
        {"eks.access.admin_role_arns": []},
        expect("eks.access.admin_role_arns: List should have at least 1 item"),
    ),
    Bad(
        "endpoint-documentation-range",
        {"eks.endpoint": {"public_access": True, "public_access_cidrs": ["203.0.113.0/24"]}},
        expect("eks.endpoint.public_access_cidrs[0]: 203.0.113.0/24 is a documentation range"),
    ),
    Bad(
        "public-endpoint-open-to-internet",
        {"eks.endpoint": {"public_access": True, "public_access_cidrs": ["0.0.0.0/0"]}},
        expect("eks.endpoint.public_access_cidrs[0]: 0.0.0.0/0 would open the Kubernetes API"),
    ),
    Bad(
        "endpoint-public-without-cidrs",
        {"eks.endpoint.public_access": True},
        expect("eks.endpoint.public_access_cidrs: required when public_access is true"),
    ),
    Bad(
        "endpoint-private-without-operator-network",
        {"eks.endpoint": {"public_access": False}},
        expect("eks.endpoint.private_access_cidrs: required when public_access is false"),
    ),
    Bad(
        "log-type-unknown",
        {"eks.control_plane_log_types": ["api", "kubelet"]},
        expect(
            "eks.control_plane_log_types[1]: Input should be 'api', 'audit', 'authenticator', "
            "'controllerManager' or 'scheduler' (got 'kubelet')"
        ),
    ),
    Bad(
        "node-group-missing",
        {"eks.node_groups": {}},
        expect("eks.node_groups.core: required key is missing"),
    ),
    Bad(
        "instance-type-malformed",
        {"eks.node_groups.core.instance_types[0]": "large"},
        expect("eks.node_groups.core.instance_types[0]: must be an EC2 instance type"),
    ),
    Bad(
        "node-group-min-above-max",
        {"eks.node_groups.core.min_size": 5, "eks.node_groups.core.max_size": 4},
        expect("eks.node_groups.core.min_size: must not exceed max_size (4) (got 5)"),
    ),
    Bad(
        "node-group-desired-out-of-range",
        {"eks.node_groups.core.desired_size": 9},
        expect(
            "eks.node_groups.core.desired_size: must lie between min_size (1) and max_size (2) "
            "(got 9)"
        ),
    ),
    # ------------------------------------------------------------------ teams and buckets
    Bad("no-teams", {"teams": []}, expect("teams: List should have at least 1 item")),
    Bad(
        "team-name-invalid",
        {"teams[0].name": "Team_A"},
        expect("teams[0].name: must be 2-20 characters of a-z, 0-9 and '-'"),
    ),
    Bad(
        "team-name-repeated",
        {"teams": [{"name": "team-a", "groups": ["g1"]}, {"name": "team-a", "groups": ["g2"]}]},
        expect("teams: team names must be unique (repeated: team-a)"),
    ),
    Bad(
        "team-without-groups",
        {"teams[0].groups": []},
        expect("teams[0].groups: List should have at least 1 item"),
    ),
    Bad(
        "scratch-bucket-name-invalid",
        {"scratch.bucket_name": "My_Scratch"},
        expect("scratch.bucket_name: must be a valid S3 bucket name"),
    ),
    Bad(
        "scratch-retention-zero",
        {"scratch.retention_days": 0},
        expect("scratch.retention_days: Input should be greater than or equal to 1 (got 0)"),
    ),
    Bad(
        "scratch-also-data-bucket",
        {"data_buckets": [{"name": "example-scratch"}]},
        expect("data_buckets[0].name: 'example-scratch' is the scratch bucket"),
    ),
    # ------------------------------------------------------------------ gateway
    Bad(
        "gateway-key-misspelled",
        {"gateway.idle_timeout": 5},
        expect("gateway.idle_timeout: unknown key; allowed keys: auth, chart_version"),
    ),
    Bad(
        "auth-type-unknown",
        {"gateway.auth.type": "ldap", **NO_HUB_TOKEN},
        expect(
            "gateway.auth.type: Input should be 'simple', 'kerberos', 'jupyterhub' or 'custom' "
            "(got 'ldap')"
        ),
    ),
    Bad(
        "custom-auth-without-oidc",
        {"gateway.auth.type": "custom", **NO_HUB_TOKEN},
        expect("gateway.auth.oidc: required when type is 'custom' (issuer, audience, client_id)"),
    ),
    Bad(
        "jupyterhub-without-api-token",
        NO_HUB_TOKEN,
        expect("gateway_jupyterhub_api_token: required when gateway.auth.type is 'jupyterhub'"),
    ),
    Bad(
        "simple-auth-without-password",
        {"gateway.auth.type": "simple", **NO_HUB_TOKEN},
        expect("gateway_simple_password: required when gateway.auth.type is 'simple'"),
    ),
    Bad(
        "simple-password-in-plain-text",
        {"gateway.auth.type": "simple", **NO_HUB_TOKEN, "gateway_simple_password": "hunter2"},
        expect("gateway_simple_password: stored in plain text"),
    ),
    Bad(
        "simple-auth-in-production",
        {
            "production": True,
            "gateway.auth.type": "simple",
            "gateway.tls": TLS,
            "gateway_simple_password": SECRET,
            **NO_HUB_TOKEN,
        },
        expect(
            "gateway.auth.type: 'simple' (one shared password) is not allowed in a production stack"
        ),
    ),
    Bad(
        "production-without-tls-certificate",
        {"production": True},
        expect("gateway.tls: required in a production stack"),
    ),
    Bad(
        "tls-certificate-not-acm",
        {
            "gateway.tls": {
                **TLS,
                "certificate_arn": "arn:aws:iam::123456789012:server-certificate/gw",
            }
        },
        expect("gateway.tls.certificate_arn: String should match pattern"),
    ),
    Bad(
        "default-environment-aws-key",
        {"gateway.default_environment": {"AWS_SECRET_ACCESS_KEY": "x"}},
        expect("gateway.default_environment.AWS_SECRET_ACCESS_KEY: must not be set"),
    ),
    Bad(
        "image-tag-latest",
        {"gateway.image.tag": "latest"},
        expect("gateway.image.tag: must be a pinned image tag (not 'latest')"),
    ),
    Bad(
        "images-missing",
        {"gateway.server_image": DELETE},
        expect("gateway.server_image: required without images.bootstrap_stack"),
    ),
    Bad(
        "images-twice",
        {"images": {"bootstrap_stack": "earth-science/dask-platform-bootstrap/prod"}},
        expect(
            "gateway.image: the images come from images.bootstrap_stack",
            "gateway.server_image: the images come from images.bootstrap_stack",
        ),
    ),
    Bad(
        "worker-cores-default-above-max",
        {"gateway.worker_cores": {"min": 1, "max": 10, "default": 20}},
        expect("gateway.worker_cores: must satisfy min <= default <= max"),
    ),
    Bad(
        "scheduler-plus-worker-above-cluster-cores",
        {"gateway.worker_cores": {"min": 1, "max": 20, "default": 2}},
        expect(
            "gateway.worker_cores.max: the scheduler (0.5 cores) plus one maximal worker "
            "(20 cores) need 20.5 cores, above cluster_max_cores (20)"
        ),
    ),
    Bad(
        "worker-larger-than-cluster",
        {"gateway.worker_memory_gib": {"min": 1, "max": 128, "default": 4}},
        expect(
            "gateway.worker_memory_gib.max: the scheduler (1 GiB) plus one maximal worker "
            "(128 GiB) need 129 GiB, above cluster_max_memory_gib (64)"
        ),
    ),
    # ------------------------------------------------------------------ capacity
    Bad("capacity-missing", {"capacity": DELETE}, expect("capacity: required key is missing")),
    Bad(
        "capacity-limits-missing",
        {"capacity.workers.cpu_limit": DELETE, "capacity.workers.memory_limit_gib": DELETE},
        expect(
            "capacity.workers.cpu_limit: required key is missing",
            "capacity.workers.memory_limit_gib: required key is missing",
        ),
    ),
    Bad(
        "capacity-type-unknown",
        {
            "capacity.workers.capacity_types[1]": "reserved",
            "capacity.workers.consolidate_after": "5 minutes",
        },
        expect(
            "capacity.workers.capacity_types[1]: Input should be 'spot' or 'on-demand' "
            "(got 'reserved')",
            "capacity.workers.consolidate_after: must be a duration",
        ),
    ),
    Bad(
        "scheduler-on-spot",
        {"capacity.schedulers.capacity_types": ["spot", "on-demand"]},
        expect("capacity.schedulers.capacity_types: schedulers run on on-demand capacity only"),
    ),
    Bad(
        "capacity-allows-no-instance-type",
        {
            "capacity.schedulers.instance_families": ["m6i"],
            "capacity.schedulers.architectures": ["arm64"],
        },
        expect(
            "capacity.schedulers: the requirements (categories, families, sizes, architectures, "
            "capacity types) allow no EC2 instance type offered in eu-central-1"
        ),
    ),
    Bad(
        # xlarge m/r types have at most 4 vCPUs: named with the types and the largest allocatable.
        "worker-larger-than-every-instance-type",
        {
            "gateway.worker_memory_gib": {"min": 1, "max": 16, "default": 4},
            "capacity.workers.instance_sizes": ["xlarge"],
        },
        expect(
            "gateway.worker_cores.max: a worker of 10 cores and 16 GiB fits no instance type the "
            "capacity.workers NodePool allows (r5.xlarge, r5a.xlarge"
        ),
    ),
    Bad(
        "worker-memory-larger-than-every-instance-type",
        {
            "gateway.cluster_max_memory_gib": 1024,
            "gateway.worker_memory_gib": {"min": 1, "max": 512, "default": 4},
        },
        expect(
            "gateway.worker_memory_gib.max: a worker of 10 cores and 512 GiB fits no instance type"
        ),
    ),
    # ------------------------------------------------------------------ limits
    Bad(
        "limits-team-unknown",
        {"limits": {"teams": {"team-z": {"per_user": {"clusters": 1}}}}},
        expect("limits.teams.team-z: not a team of this stack (teams: team-a)"),
    ),
    Bad(
        "limits-problems-at-once",
        {
            "limits": {
                "per_user": {"clusters": 2, "worker_cores": 8, "worker_memory_gib": 32, "gpus": 1},
                "per_team": {"clusters": 0, "worker_cores": 512, "worker_memory_gib": 2048},
                "teams": {"team-a": {"per_user": {"worker_cores": 600, "worker_memory_gib": 0.5}}},
            }
        },
        expect(
            "limits.teams.team-a: per_user.worker_cores (600) exceeds per_team.worker_cores (512) "
            "for team team-a",
            "limits.teams.team-a: per_user.worker_memory_gib (0.5) is below "
            "gateway.worker_memory_gib.min (1): no user of team team-a could get a worker",
            "limits.per_team.clusters: Input should be greater than or equal to 1 (got 0)",
            "limits.per_user.gpus: unknown key; allowed keys: clusters, worker_cores, "
            "worker_memory_gib",
        ),
    ),
    # ------------------------------------------------------------------ object stores
    Bad(
        "object-store-addressing-style-unknown",
        {"object_stores[0].addressing_style": "dns"},
        expect(
            "object_stores[0].addressing_style: Input should be 'auto', 'virtual' or 'path' "
            "(got 'dns')"
        ),
        base="object-stores",
    ),
    Bad(
        "object-store-endpoint-malformed",
        {"object_stores[0].endpoint_url": "renc.osn.xsede.org/bucket"},
        expect("object_stores[0].endpoint_url: must be an http(s) endpoint URL"),
        base="object-stores",
    ),
    Bad(
        "object-store-endpoint-with-credentials",
        {"object_stores[0].endpoint_url": "https://AKIDEXAMPLE:hunter2@renc.osn.xsede.org"},
        expect(
            "object_stores[0].endpoint_url: must be an http(s) endpoint URL such as "
            "https://renc.osn.xsede.org (it must not carry credentials"
        ),
        base="object-stores",
    ),
    Bad(
        "object-store-name-repeated",
        {"object_stores[1].name": "osn-renci"},
        expect(
            "object_stores: store names must be unique (they are profile names; repeated: "
            "osn-renci)"
        ),
        base="object-stores",
    ),
    Bad(
        "object-store-team-unknown",
        {"object_stores[0].teams": ["team-a", "hytest"]},
        expect(
            "object_stores[0].teams[1]: 'hytest' is not a team of this stack (teams: team-a, "
            "team-b)"
        ),
        base="object-stores",
    ),
    Bad(
        "object-store-team-repeated",
        {"object_stores[0].teams": ["team-a", "team-b", "team-a"]},
        expect("object_stores[0].teams: must not repeat a team (repeated: team-a)"),
        base="object-stores",
    ),
    Bad(
        "object-store-problems-at-once",
        {
            "object_stores[0].endpoint_url": "ftp://renc.osn.xsede.org",
            "object_stores[0].teams": ["nobody"],
            "object_stores[1].name": "OSN_Renci",
        },
        expect(
            "object_stores[0].endpoint_url: must be an http(s) endpoint URL",
            "object_stores[0].teams[0]: 'nobody' is not a team of this stack (teams: team-a, "
            "team-b)",
            "object_stores[1].name: must be 2-40 characters",
        ),
        base="object-stores",
    ),
    Bad(
        "object-store-keys-missing",
        {"object_store_keys": DELETE},
        expect("object_store_keys: required when object_stores is set"),
        base="object-stores",
    ),
    Bad(
        "object-store-keys-in-plain-text",
        {"object_store_keys": '{"osn-renci": {"access_key_id": "x", "secret_access_key": "y"}}'},
        expect("object_store_keys: stored in plain text"),
        base="object-stores",
    ),
]
BY_ID = {bad.id: bad for bad in BAD}


def test_the_table_covers_every_section_with_unique_rows():
    assert len(BAD) >= 60
    assert len(BY_ID) == len(BAD), "row ids are unique"
    patched = {path.split(".")[0].split("[")[0] for bad in BAD for path in bad.patch}
    assert {"network", "eks", "teams", "scratch", "gateway", "capacity", "limits"} <= patched
    assert {"object_stores", "object_store_keys", "gateway_simple_password"} <= patched


@pytest.mark.parametrize("path", OK, ids=lambda p: p.name)
def test_good_config_loads(path):
    config = load_stack_path(path)
    assert config.teams, "a valid stack has at least one team"


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_bad_config_names_the_field(bad, tmp_path):
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(bad.write(tmp_path / f"{bad.base}.{bad.id}.yaml"))
    reported = caught.value.problems
    # Exactly the problems the row names, each once: the patch is the only thing wrong.
    unmatched = [p for p in reported if not any(p.startswith(e) for e in bad.expected)]
    missing = [e for e in bad.expected if not any(p.startswith(e) for p in reported)]
    assert (missing, unmatched) == ([], []), "\n".join(reported)
    assert len(reported) == len(bad.expected) == len(set(reported))
    # No pydantic internals.
    assert "errors.pydantic.dev" not in str(caught.value)
    assert "function-after" not in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path):
    bad = BY_ID["three-problems-at-once"]
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(bad.write(tmp_path / "Pulumi.broken.yaml"))
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("Pulumi.broken.yaml: 3 problem(s):\n  - ")


def test_unknown_key_lists_the_allowed_keys(tmp_path):
    bad = BY_ID["gateway-key-misspelled"]
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(bad.write(tmp_path / "Pulumi.broken.yaml"))
    (problem,) = caught.value.problems
    assert "idle_timeout_minutes" in problem, "the allowed keys include the one meant"


def test_defaults_are_the_documented_ones():
    config = load_stack_path(FIXTURES / "minimal.ok.yaml")
    gateway = config.gateway
    assert (gateway.worker_cores.min, gateway.worker_cores.max, gateway.worker_cores.default) == (
        1,
        10,
        2,
    )
    assert (
        gateway.worker_memory_gib.min,
        gateway.worker_memory_gib.max,
        gateway.worker_memory_gib.default,
    ) == (1, 32, 4)
    assert config.scratch.retention_days == 7
    assert gateway.chart_version == "2026.3.0"
    assert config.eks.endpoint.public_access is False
    assert config.eks.endpoint.public_access_cidrs == []
    assert config.eks.access.view_role_arns == []
    assert config.images.bootstrap_stack is None
    assert config.network.ingress_cidrs == []


@pytest.mark.parametrize("stack", list_stacks(Path(__file__).parents[2]))
def test_committed_stacks_are_valid(stack, repo):
    config = load_stack_file(repo, stack)
    assert config.region
    assert len(config.network.availability_zones) >= 2


def test_committed_stacks_differ_only_in_values(repo):
    """dev and prod use the same keys (the differences are values, never structure or code)."""
    import yaml

    keys = {
        stack: set(yaml.safe_load((repo / f"Pulumi.{stack}.yaml").read_text())["config"])
        for stack in list_stacks(repo)
    }
    assert keys["dev"] == keys["prod"]


def test_production_flag_is_what_distinguishes_prod(repo):
    assert load_stack_file(repo, "prod").production is True
    assert load_stack_file(repo, "dev").production is False


def test_unknown_stack_name_lists_the_committed_ones(repo):
    with pytest.raises(StackConfigError, match=r"committed stacks: dev, prod"):
        load_stack_file(repo, "staging")


def test_validate_accepts_plain_mapping():
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config({})
    reported = caught.value.problems
    for key in ("production", "region", "network", "eks", "teams", "scratch", "gateway"):
        assert f"{key}: required key is missing" in reported


NO_RESOURCE_CASES = [
    "account-id-missing",
    "bad-region",
    "gateway-key-misspelled",
    "limits-problems-at-once",
    "object-store-problems-at-once",
    "simple-password-in-plain-text",
]


@pytest.mark.parametrize("case", NO_RESOURCE_CASES)
def test_bad_config_creates_nothing(case, repo, tmp_path):
    """The program refuses before declaring a single resource (as `pulumi up` would)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(repo / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "infra").symlink_to(repo / "infra")
    BY_ID[case].write(project / "Pulumi.broken.yaml")
    recording = RecordingMocks("us-east-1")
    with pytest.raises(StackConfigError) as caught:
        run_program(project, "broken", recording)
    assert caught.value.problems
    assert declared(recording) == []
