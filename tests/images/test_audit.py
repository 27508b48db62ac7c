"""The image audit (run by every build) must catch each violation: a deliberately bad image,
built for real on the same base, breaks every rule at once and every rule must report it."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest

from dask_platform.images import IMAGE_LABEL, LOCK_LABEL
from dask_platform.images.audit import audit_image, config_findings

from ..examples import EXAMPLE_ACCESS_KEY_ID

BAD_CONTAINERFILE = f"""
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
# Everything the platform forbids: a key in the config, credential files in two homes, root.
ENV AWS_ACCESS_KEY_ID={EXAMPLE_ACCESS_KEY_ID} AWS_PROFILE=shared
RUN mkdir -p /root/.aws /home/analyst/.docker \\
 && printf '[default]\\naws_access_key_id = {EXAMPLE_ACCESS_KEY_ID}\\n' > /root/.aws/credentials \\
 && printf '{{"auths": {{}}}}' > /home/analyst/.docker/config.json
USER root
"""


def _context(containerfile: str) -> io.BytesIO:
    data = containerfile.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Containerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture(scope="module")
def bad_image(engine, built):
    base = built["worker"]  # any image of this build: its base is the Debian/registry base
    base_reference = engine.client.images.get(base.image_id).labels[
        "org.opencontainers.image.base.name"
    ]
    reference = f"localhost/dask-platform/audit-violations:{uuid.uuid4().hex[:8]}"
    engine.client.images.build(
        fileobj=_context(BAD_CONTAINERFILE),
        custom_context=True,
        dockerfile="Containerfile",
        tag=reference,
        buildargs={"BASE_IMAGE": base_reference},
        pull=False,
        rm=True,
    )
    try:
        yield reference
    finally:
        engine.client.images.remove(reference, force=True)


def test_every_violation_of_a_bad_image_is_reported(engine, bad_image):
    findings = {(f.rule, f.detail) for f in audit_image(engine.client, bad_image)}
    rules = sorted({rule for rule, _ in findings})
    assert rules == [
        "image-label",
        "lock-label",
        "no-aws-variables",
        "no-credential-files",
        "non-root-user",
    ]
    details = " | ".join(detail for _, detail in sorted(findings))
    assert "AWS_ACCESS_KEY_ID is set" in details
    assert "AWS_PROFILE is set" in details
    assert "/root/.aws exists" in details
    assert "/root/.aws/credentials exists" in details
    assert "/home/analyst/.docker/config.json exists" in details


@pytest.mark.parametrize(
    ("config", "labels", "rule"),
    [
        ({"User": ""}, {LOCK_LABEL: "x", IMAGE_LABEL: "worker"}, "non-root-user"),
        ({"User": "0:0"}, {LOCK_LABEL: "x", IMAGE_LABEL: "worker"}, "non-root-user"),
        ({"User": "root"}, {LOCK_LABEL: "x", IMAGE_LABEL: "worker"}, "non-root-user"),
        (
            {"User": "1000", "Env": ["aws_secret_access_key=x"]},
            {LOCK_LABEL: "x", IMAGE_LABEL: "worker"},
            "no-aws-variables",
        ),
        ({"User": "1000:1000"}, {IMAGE_LABEL: "worker"}, "lock-label"),
        ({"User": "1000:1000"}, {LOCK_LABEL: "x"}, "image-label"),
    ],
)
def test_each_config_rule_alone(config, labels, rule):
    assert [f.rule for f in config_findings(config, labels)] == [rule]


def test_a_clean_config_has_no_findings():
    config = {"User": "1000:1000", "Env": ["PATH=/opt/venv/bin:/usr/bin", "LANG=C.UTF-8"]}
    assert config_findings(config, {LOCK_LABEL: "abc", IMAGE_LABEL: "worker"}) == []
