"""The Registry component (infra/components/registry.py) under mocks, for every committed stack:
one ECR repository per image of images/, scanned on push, immutable tags, KMS, protected, with a
lifecycle policy; exported as ecr_repositories for `scripts/build-images --push`. The registry
section of the stack config is validated like every other."""

from __future__ import annotations

import json
import shutil

import pytest

from dask_platform.images import all_images
from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.stack_config import StackConfigError, validate_stack_config

from .conftest import REPO

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def repositories(evaluation):
    return {r.inputs["name"]: r for r in evaluation.of_type(REPOSITORY)}


def test_one_stack_owns_the_repositories(repo):
    from dask_platform.stack_config import list_stacks, load_stack_file

    owners = [s for s in list_stacks(repo) if load_stack_file(repo, s).registry.enabled]
    assert owners == ["prod"]


def test_repositories_exactly_when_enabled(evaluation, config):
    found = repositories(evaluation)
    if not config.registry.enabled:
        assert found == {}
        assert "ecr_repositories" not in evaluation.outputs
        return
    prefix = config.registry.repository_prefix
    assert sorted(found) == sorted(f"{prefix}/{image}" for image in all_images())


def test_repositories_are_immutable_scanned_encrypted_and_protected(evaluation, config):
    for name, repository in repositories(evaluation).items():
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE", name
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, name
        assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
        assert repository.inputs["forceDelete"] is False, name
        assert repository.protect, f"{name} must be protect=True"
        assert repository.parent.endswith("dask-platform:registry:Registry::registry")


def test_every_repository_has_the_configured_lifecycle(evaluation, config):
    policies = {p.inputs["repository"]: p for p in evaluation.of_type(LIFECYCLE)}
    assert sorted(policies) == sorted(repositories(evaluation))
    for name, policy in policies.items():
        rules = json.loads(policy.inputs["policy"])["rules"]
        untagged, rest = sorted(rules, key=lambda rule: rule["rulePriority"])
        assert untagged["selection"] == {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": config.registry.untagged_expiry_days,
        }, name
        # ECR evaluates "any" last only if it has the highest priority number.
        assert rest["selection"] == {
            "tagStatus": "any",
            "countType": "imageCountMoreThan",
            "countNumber": config.registry.keep_images,
        }, name
        assert untagged["action"] == rest["action"] == {"type": "expire"}


def test_ecr_repositories_export_maps_each_image_to_its_url(evaluation, config):
    exported = evaluation.outputs.get("ecr_repositories")
    if not config.registry.enabled:
        assert exported is None  # pushing needs the owning stack's outputs
        return
    assert isinstance(exported, dict)
    assert sorted(exported) == sorted(all_images())
    for image, url in exported.items():
        assert url == (
            f"123456789012.dkr.ecr.{config.region}.amazonaws.com/"
            f"{config.registry.repository_prefix}/{image}"
        )


def test_the_repository_names_follow_the_config(tmp_path):
    """A stack with another prefix: the names come from the config, not from code."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "infra").symlink_to(REPO / "infra")
    text = (REPO / "Pulumi.dev.yaml").read_text()
    assert "    enabled: false\n  dask-platform:tags:" in text
    text = text.replace(
        "    enabled: false\n  dask-platform:tags:",
        "    enabled: true\n    repository_prefix: earth/dask\n    keep_images: 5\n"
        "  dask-platform:tags:",
    )
    (tmp_path / "Pulumi.site.yaml").write_text(text)
    evaluation = evaluate_stack("site", tmp_path)
    assert sorted(repositories(evaluation)) == sorted(f"earth/dask/{i}" for i in all_images())
    rules = json.loads(evaluation.of_type(LIFECYCLE)[0].inputs["policy"])["rules"]
    assert {r["selection"]["countNumber"] for r in rules} == {5, 7}


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({"repository_prefix": "Dask Platform"}, "registry.repository_prefix: must be an ECR"),
        ({"repository_prefix": "dask-platform/"}, "registry.repository_prefix: must be an ECR"),
        ({"keep_images": 0}, "registry.keep_images: Input should be greater than or equal to 1"),
        ({"untagged_expiry_days": 400}, "registry.untagged_expiry_days: Input should be less"),
        ({"scan_on_push": False}, "registry.scan_on_push: unknown key; allowed keys: enabled"),
    ],
)
def test_a_bad_registry_section_is_one_clear_error(registry, expected):
    import yaml

    raw = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    data = {k.partition(":")[2]: v for k, v in raw.items()}
    data["registry"] = registry
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config(data)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert expected in caught.value.problems[0]
