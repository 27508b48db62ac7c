"""The replay's input conversions, without an emulator: Pulumi's wire values to what boto3
takes (the integration tests read the replayed resources back from the emulator)."""

from __future__ import annotations

from pulumi.runtime import rpc

from dask_platform.local.provision import (
    NOT_REPLAYED,
    REPLAY,
    REPLAYED_NAMESPACES,
    Provisioned,
    boto_shape,
)
from dask_platform.pulumi_mocks import Evaluation


def test_translate_unwraps_secrets_makes_whole_floats_ints_and_maps_identifiers() -> None:
    provisioned = Provisioned(
        evaluation=Evaluation(stack="local"),
        identifiers={
            "arn:aws:kms:us-east-1:1:key/k": "arn:aws:kms:us-east-1:1:key/uuid",
            "arn:aws:kms:us-east-1:1:key/k-2": "arn:aws:kms:us-east-1:1:key/uuid-2",
        },
    )
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "pair"}
    assert provisioned.translate(
        {
            "secretString": secret,
            "days": 7.0,
            "ratio": 0.5,
            "policy": '{"Resource": ["arn:aws:kms:us-east-1:1:key/k-2"]}',
        }
    ) == {
        "secretString": "pair",
        "days": 7,
        "ratio": 0.5,
        # The longer identifier is replaced whole, not through its prefix.
        "policy": '{"Resource": ["arn:aws:kms:us-east-1:1:key/uuid-2"]}',
    }


def test_boto_shape_spells_the_keys_as_boto3_does() -> None:
    assert boto_shape(
        [
            {
                "id": "expire",
                "filter": {"prefix": ""},
                "applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
            }
        ]
    ) == [
        {
            "ID": "expire",
            "Filter": {"Prefix": ""},
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        }
    ]


def test_every_table_entry_is_in_a_replayed_namespace() -> None:
    for type_ in [*REPLAY, *NOT_REPLAYED]:
        assert type_.startswith(REPLAYED_NAMESPACES), type_
    assert not set(REPLAY) & set(NOT_REPLAYED)


def test_the_table_covers_what_every_committed_stack_declares(evaluation: Evaluation) -> None:
    """A committed stack's resources could all be replayed locally (with the same features in
    local/platform.yaml): a new type in infra/components fails here first."""
    declared = {r.type for r in evaluation.resources if r.type.startswith(REPLAYED_NAMESPACES)}
    assert declared - set(REPLAY) - set(NOT_REPLAYED) == set()
