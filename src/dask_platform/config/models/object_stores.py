"""S3-compatible stores outside AWS S3 (OSN, Ceph, Wasabi), reached by profile name through
the platform's AWS config file; each key pair is a Pulumi secret (``object_store_keys``) kept in
Secrets Manager. See dask_platform.object_stores.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from dask_platform.config.types import (
    AddressingStyle,
    ConfigModel,
    EndpointUrl,
    ObjectStoreName,
    StoreRegion,
    TeamName,
)


class ObjectStore(ConfigModel):
    """One S3-compatible store outside AWS S3, known to users by its profile name."""

    name: ObjectStoreName = Field(
        description="The AWS profile name users already use (e.g. osn-renci)."
    )
    endpoint_url: EndpointUrl = Field(
        description="The store's S3 endpoint, e.g. https://renc.osn.xsede.org."
    )
    region: StoreRegion | None = Field(
        default=None,
        description="Signing region the store expects (on platform processes it holds for the "
        "store's profile over AWS_DEFAULT_REGION); unset = the SDK default.",
    )
    addressing_style: AddressingStyle | None = Field(
        default=None,
        description="One of {auto, virtual, path}; most on-premises stores need path.",
    )
    teams: list[TeamName] = Field(
        min_length=1,
        description="Teams whose roles may read the store's key pair; each at most once.",
    )

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, value: list[str]) -> list[str]:
        # A repeat is a typo or a merge slip: the grant and the secret's tag list each team once.
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"must not repeat a team (repeated: {', '.join(repeated)})")
        return value
