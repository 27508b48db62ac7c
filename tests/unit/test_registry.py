"""The bootstrap project (infra/bootstrap) under mocks, for every committed bootstrap stack: one
ECR repository per image of images/, scanned on push, immutable tags, KMS, protected, with a
lifecycle policy and a pull policy for the other accounts; exported as ecr_repositories for
`scripts/build-images --push` and as `images` for the platform stacks' stack reference. No
platform stack creates a repository."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from dask_platform.bootstrap_config import load_bootstrap_path
from dask_platform.config.errors import StackConfigError
from dask_platform.config.sources import list_stacks, load_stack_file
from dask_platform.images import all_images
from dask_platform.pulumi_eval import evaluate_stack

from .conftest import BOOTSTRAP, BOOTSTRAP_STACKS, REPO, STACKS, evaluated, evaluated_bootstrap

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"


def repositories(evaluation):
    return {r.inputs["name"]: r for r in evaluation.of_type(REPOSITORY)}


@pytest.fixture(params=BOOTSTRAP_STACKS)
def bootstrap(request):
    return request.param


def test_only_the_bootstrap_project_creates_repositories():
    assert BOOTSTRAP_STACKS == ["prod"]
    for stack in STACKS:
        assert repositories(evaluated(stack)) == {}, stack
        assert "ecr_repositories" not in evaluated(stack).outputs


def test_one_repository_per_image(bootstrap):
    config = load_bootstrap_path(BOOTSTRAP / f"Pulumi.{bootstrap}.yaml")
    prefix = config.registry.repository_prefix
    found = repositories(evaluated_bootstrap(bootstrap))
    assert sorted(found) == sorted(f"{prefix}/{image}" for image in all_images())


def test_repositories_are_immutable_scanned_encrypted_and_protected(bootstrap):
    for name, repository in repositories(evaluated_bootstrap(bootstrap)).items():
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE", name
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, name
        assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
        assert repository.inputs["forceDelete"] is False, name
        assert repository.protect, f"{name} must be protect=True"
        assert repository.parent.endswith("dask-platform:registry:Registry::registry")


def test_every_repository_has_the_configured_lifecycle(bootstrap):
    config = load_bootstrap_path(BOOTSTRAP / f"Pulumi.{bootstrap}.yaml")
    evaluation = evaluated_bootstrap(bootstrap)
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


def test_every_account_that_pulls_is_granted_by_the_repository_policy(bootstrap):
    """Each platform stack whose images come from this bootstrap stack and that deploys to
    another account is named in every repository's policy (dev pulls from prod's registry)."""
    config = load_bootstrap_path(BOOTSTRAP / f"Pulumi.{bootstrap}.yaml")
    pulling = {
        load_stack_file(REPO, s).account_id
        for s in STACKS
        if (load_stack_file(REPO, s).images.bootstrap_stack or "").endswith(f"/{bootstrap}")
    } - {config.account_id}
    assert pulling, "the committed dev stack pulls from another account"
    assert set(config.pull_account_ids) == pulling
    evaluation = evaluated_bootstrap(bootstrap)
    policies = {p.inputs["repository"]: p for p in evaluation.of_type(REPOSITORY_POLICY)}
    assert sorted(policies) == sorted(repositories(evaluation))
    for name, policy in policies.items():
        (statement,) = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {
            "AWS": [f"arn:aws:iam::{account}:root" for account in config.pull_account_ids]
        }, name
        assert sorted(statement["Action"]) == [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]


def test_exports_map_each_image_to_its_url_and_tag(bootstrap):
    config = load_bootstrap_path(BOOTSTRAP / f"Pulumi.{bootstrap}.yaml")
    outputs = evaluated_bootstrap(bootstrap).outputs
    prefix = f"{config.account_id}.dkr.ecr.{config.region}.amazonaws.com/"
    assert outputs["ecr_repositories"] == {
        image: f"{prefix}{config.registry.repository_prefix}/{image}" for image in all_images()
    }
    assert outputs["images"] == {
        image: f"{prefix}{config.registry.repository_prefix}/{image}:{config.image_tags[image]}"
        for image in all_images()
    }


def test_platform_stacks_run_the_bootstrap_images(stack):
    """The platform reads its images through the stack reference: the references it runs are the
    bootstrap stack's, never a hand-copied account."""
    config = load_stack_file(REPO, stack)
    assert config.images.bootstrap_stack is not None
    target = config.images.bootstrap_stack.rsplit("/", 1)[-1]
    images = evaluated_bootstrap(target).outputs["images"]
    evaluation = evaluated(stack)
    assert evaluation.outputs["worker_image"] == images["worker"]
    (reference,) = evaluation.of_type("pulumi:pulumi:StackReference") or [
        r for r in evaluation.resources if r.type == "pulumi:pulumi:StackReference"
    ]
    assert reference.inputs["name"] == config.images.bootstrap_stack
    text = (REPO / f"Pulumi.{stack}.yaml").read_text()
    assert "123456789012" not in text, "the documentation account is no image registry"


def test_worker_images_are_pinned_to_the_notebook_lock(bootstrap):
    """Workers run exactly the notebook's environment: the bootstrap stack tags the worker, the
    notebook and the GPU variant with the one images lock's tag. Re-locking without updating the
    bootstrap stack fails here."""
    from dask_platform.images.lock import lock_sha256, lock_tag

    config = load_bootstrap_path(BOOTSTRAP / f"Pulumi.{bootstrap}.yaml")
    expected = lock_tag(lock_sha256())
    for image in ("worker", "notebook", "worker-gpu"):
        assert config.image_tags[image] == expected, image
    assert config.image_tags["gateway"].startswith("build-")


def test_the_repository_names_follow_the_config(tmp_path):
    """A bootstrap stack with another prefix: the names come from the config, not from code."""
    shutil.copy(BOOTSTRAP / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(BOOTSTRAP / "__main__.py", tmp_path / "__main__.py")
    (tmp_path.parent / "components").exists() or (tmp_path.parent / "components").symlink_to(
        REPO / "infra" / "components"
    )
    raw = yaml.safe_load((BOOTSTRAP / "Pulumi.prod.yaml").read_text())
    raw["config"]["dask-platform-bootstrap:registry"] = {
        "repository_prefix": "earth/dask",
        "keep_images": 5,
    }
    (tmp_path / "Pulumi.site.yaml").write_text(yaml.safe_dump(raw))
    evaluation = evaluate_stack("site", tmp_path)
    assert sorted(repositories(evaluation)) == sorted(f"earth/dask/{i}" for i in all_images())
    rules = json.loads(evaluation.of_type(LIFECYCLE)[0].inputs["policy"])["rules"]
    assert {r["selection"]["countNumber"] for r in rules} == {5, 7}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("registry", {"repository_prefix": "Dask Platform"}, "registry.repository_prefix: must"),
        ("registry", {"keep_images": 0}, "registry.keep_images: Input should be greater than"),
        ("registry", {"scan_on_push": False}, "registry.scan_on_push: unknown key"),
        ("image_tags", {"worker": "lock-41e8821f4bfa"}, "image_tags: must name exactly the"),
        ("image_tags", {"worker": "latest"}, "image_tags.worker: must be a pinned image tag"),
        ("pull_account_ids", ["12345"], "pull_account_ids[0]: must be a 12-digit AWS account"),
    ],
)
def test_a_bad_bootstrap_stack_is_one_clear_error(tmp_path, key, value, expected):
    raw = yaml.safe_load((BOOTSTRAP / "Pulumi.prod.yaml").read_text())
    current = raw["config"][f"dask-platform-bootstrap:{key}"]
    raw["config"][f"dask-platform-bootstrap:{key}"] = (
        {**current, **value} if key == "registry" else value
    )
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(StackConfigError) as caught:
        load_bootstrap_path(path)
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_committed_platform_stacks_list(repo):
    assert list_stacks(repo) == STACKS
