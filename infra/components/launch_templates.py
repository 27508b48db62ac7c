"""The one launch template shape every EC2 instance of the platform uses (EKS nodes, ECS GPU
container instances): IMDSv2 only with hop limit 1, an encrypted gp3 root volume, a Name tag."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def hardened_launch_template(
    resource_name: str,
    *,
    description: str,
    disk_size_gib: int,
    instance_name: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    **extra: Any,
) -> aws.ec2.LaunchTemplate:
    """A launch template whose instances cannot lend their role to containers.

    IMDSv2 only, hop limit 1: a container (one network hop further than the instance) cannot
    reach the instance metadata service, so it cannot borrow the instance role's credentials.
    ``extra`` passes the template's other arguments (image, profile, user data, ...).
    ref: https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html
    """
    return aws.ec2.LaunchTemplate(
        resource_name,
        description=description,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=1,
            instance_metadata_tags="disabled",
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=disk_size_gib,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type="instance", tags={**tags, "Name": instance_name}
            )
        ],
        tags=tags,
        opts=opts,
        **extra,
    )
