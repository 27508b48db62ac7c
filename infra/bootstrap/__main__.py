"""dask-platform bootstrap: the ECR repositories and the image tags every platform stack runs.

Applied before any platform stack (docs/how-to/deploy.md): `pulumi up` here, push the images to the
repositories it exports, then the platform stacks read ``images`` through a stack reference.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws

# The components live beside this project (infra/components), shared with the platform program.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.registry import Registry, RegistryArgs

from dask_platform.bootstrap_config import IMAGE_OUTPUT, load_bootstrap_from_pulumi
from dask_platform.config.rules import require_account
from dask_platform.images import all_images

config = load_bootstrap_from_pulumi()  # every problem at once, before any resource
tags = {"dask-platform/stack": f"bootstrap-{pulumi.get_stack()}", "managed-by": "pulumi"}
aws_provider = aws.Provider("aws", region=config.region, default_tags={"tags": tags})

caller = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(provider=aws_provider))
# Fails the `up` before anything is created in an account the config does not name.
caller.account_id.apply(lambda account: require_account(config.account_id, account))

registry = Registry(
    "registry",
    RegistryArgs(
        repository_prefix=config.registry.repository_prefix,
        images=all_images(),
        keep_images=config.registry.keep_images,
        untagged_expiry_days=config.registry.untagged_expiry_days,
        pull_account_ids=config.pull_account_ids,
    ),
    opts=pulumi.ResourceOptions(providers={"aws": aws_provider}),
)

pulumi.export("account_id", config.account_id)
pulumi.export("region", config.region)
# `scripts/build-images --push --outputs <this stack's outputs>` reads this.
pulumi.export("ecr_repositories", registry.repository_urls)
# What the platform stacks run (pulumi.StackReference(...).get_output("images")).


def tagged(url: str, tag: str) -> str:
    return f"{url}:{tag}"


pulumi.export(
    IMAGE_OUTPUT,
    {
        image: pulumi.Output.all(registry.repositories[image].repository_url, tag).apply(
            lambda pair: tagged(pair[0], pair[1])
        )
        for image, tag in config.image_tags.items()
    },
)
