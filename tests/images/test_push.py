"""`images build --push` for real: ECR's API is the AWS emulator (moto server), the registry is a
real distribution registry (Debian's docker-registry) that only accepts the password ECR's
GetAuthorizationToken returned, and the push goes through the engine's API like any other."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dask_platform.images.build import BuiltImage
from dask_platform.images.progress import Reporter
from dask_platform.images.push import PushError, is_loopback, push_images
from dask_platform.local.emulator import Emulator

REPOSITORY = "dask-platform/worker"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt: fine on Python 3.11
        import crypt

    # bcrypt ($2b$) is the one scheme the registry's htpasswd accepts, not a weak hash.
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emulator").start() as aws:
        yield aws


@pytest.fixture
def registry(tmp_path: Path, emulator: Emulator) -> Iterator[tuple[str, tuple[str, str]]]:
    """A registry on 127.0.0.1 whose only user is ECR's: AWS / <account>-auth-token."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (scripts/install-system-deps installs it)")
    credentials = ("AWS", f"{emulator.account_id}-auth-token")
    (tmp_path / "htpasswd").write_text(f"{credentials[0]}:{bcrypt_hash(credentials[1])}\n")
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "blobs")}},
                "http": {"addr": address},
                "auth": {"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}},
            }
        )
    )
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://{address}/v2/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield address, credentials
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture
def small_image(engine) -> Iterator[BuiltImage]:
    """A one-file image standing in for a built one (the push path does not care what is in
    it, and a real worker would spend a minute compressing layers)."""
    data = b"FROM scratch\nCOPY marker /marker\nLABEL org.dask-platform.image=worker\n"
    marker = uuid.uuid4().hex.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in (("Containerfile", data), ("marker", marker)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    key = uuid.uuid4().hex
    reference = f"localhost/dask-platform/push-test:build-{key[:12]}"
    image, _ = engine.client.images.build(
        fileobj=buffer, custom_context=True, dockerfile="Containerfile", tag=reference, rm=True
    )
    try:
        yield BuiltImage(
            image="worker",
            reference="localhost/dask-platform/push-test:lock-0123456789ab",
            build_reference=reference,
            image_id=str(image.id),
            build_key=key,
            lock_sha256="0123456789ab" + "0" * 52,
            reused=False,
            seconds=0.0,
        )
    finally:
        engine.client.images.remove(str(image.id), force=True)


def test_push_logs_in_through_ecr_and_pushes_both_tags_once(
    engine, emulator, registry, small_image, tmp_path
):
    address, credentials = registry
    url = f"{address}/{REPOSITORY}"
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"ecr_repositories": {"worker": url}}))
    ecr = emulator.client("ecr")
    ecr.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    lock_tag, build_tag = small_image.tags

    with Reporter(log_file=tmp_path / "push.log") as reporter:
        pushed = push_images(engine.client, [small_image], outputs, reporter, ecr=ecr)
    assert pushed == [f"{url}:{build_tag}", f"{url}:{lock_tag}"]

    # The registry refuses anyone without ECR's password: the push used the token.
    assert requests.get(f"http://{address}/v2/", timeout=5).status_code == 401
    listing = requests.get(
        f"http://{address}/v2/{REPOSITORY}/tags/list", auth=credentials, timeout=5
    ).json()
    assert sorted(listing["tags"]) == sorted([build_tag, lock_tag])

    # Once ECR knows the build tag, pushing the same build again is a no-op (immutable tags).
    manifest = requests.get(
        f"http://{address}/v2/{REPOSITORY}/manifests/{build_tag}",
        auth=credentials,
        headers={"Accept": MANIFEST_TYPES},
        timeout=5,
    ).text
    ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageTag=build_tag)
    with Reporter(log_file=tmp_path / "push.log") as reporter:
        assert push_images(engine.client, [small_image], outputs, reporter, ecr=ecr) == []


def test_push_without_the_repository_in_the_outputs_is_one_clear_error(
    engine, small_image, tmp_path
):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"ecr_repositories": {"notebook": "r.example/x"}}))
    with (
        Reporter(log_file=tmp_path / "push.log") as reporter,
        pytest.raises(PushError, match="no repository for worker"),
    ):
        push_images(engine.client, [small_image], outputs, reporter)


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("123456789012.dkr.ecr.us-west-2.amazonaws.com", False),
        ("10.0.0.5:5000", False),
    ],
)
def test_only_a_loopback_registry_is_plain_http(registry, loopback):
    assert is_loopback(registry) is loopback
