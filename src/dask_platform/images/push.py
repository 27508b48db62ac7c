"""Push built images to the ECR repositories the Pulumi program exports.

The repositories come from a ``pulumi stack output --json`` file (``ecr_repositories``: image ->
repository URL); the registry password from ECR's ``GetAuthorizationToken`` with the operator's
own AWS credentials (boto3's usual chain - never a key in a file of this project). ECR tags are
immutable, so a tag that already exists is never pushed again: an image whose ``build-`` tag
exists is skipped as identical, and the ``lock-`` tag is pushed only with the first build of a
lock (later builds of the same lock - a Containerfile or gateway-code change - are found by
their ``build-`` tag).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import docker
import docker.errors
from botocore.exceptions import BotoCoreError, ClientError

from dask_platform.images.build import BuiltImage
from dask_platform.images.progress import Reporter

OUTPUT_KEY = "ecr_repositories"
_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class PushError(RuntimeError):
    """Pushing is impossible: no repository for an image, no registry login, a failed push."""


def read_repositories(outputs: Path, images: Iterable[str]) -> dict[str, str]:
    """image -> repository URL, for every image asked for, from a stack-outputs JSON file."""
    from dask_platform.sites.outputs import StackOutputsError, read_outputs

    try:
        document = read_outputs(outputs)
    except StackOutputsError as exc:
        raise PushError(str(exc)) from None
    repositories = document.get(OUTPUT_KEY)
    if not isinstance(repositories, dict):
        raise PushError(
            f"{outputs}: no {OUTPUT_KEY!r} output (image -> repository URL); deploy a stack "
            "with the registry component and run `pulumi stack output --json` again"
        )
    missing = sorted(set(images) - set(repositories))
    if missing:
        raise PushError(
            f"{outputs}: {OUTPUT_KEY} has no repository for {', '.join(missing)} "
            f"(it has: {', '.join(sorted(repositories)) or 'none'})"
        )
    return {image: str(repositories[image]) for image in images}


def split_repository(url: str) -> tuple[str, str]:
    """``<registry host>/<repository name>`` -> (host, name)."""
    host, _, name = url.partition("/")
    if not name:
        raise PushError(f"{url!r} is not a repository URL (<registry>/<name>)")
    return host, name


def ecr_client(registry: str) -> Any:
    match = _ECR_HOST.match(registry)
    region = match.group("region") if match else None
    return boto3.client("ecr", region_name=region)


def registry_auth(ecr: Any, registry: str) -> dict[str, str]:
    """Docker credentials for an ECR registry, valid for 12 hours."""
    match = _ECR_HOST.match(registry)
    kwargs = {"registryIds": [match.group("account")]} if match else {}
    try:
        data = ecr.get_authorization_token(**kwargs)["authorizationData"][0]
    except (BotoCoreError, ClientError, KeyError, IndexError) as exc:
        raise PushError(f"ECR login for {registry} failed: {exc}") from exc
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return {"username": username, "password": password}


def existing_tags(ecr: Any, repository: str, tags: Sequence[str]) -> set[str]:
    """Which of ``tags`` the repository already has (one call per tag: DescribeImages fails
    as a whole when any one of the images asked for does not exist)."""
    found: set[str] = set()
    for tag in tags:
        try:
            response = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
                continue
            raise PushError(f"cannot list the tags of ECR repository {repository}: {exc}") from exc
        for detail in response.get("imageDetails", []):
            found.update(set(detail.get("imageTags", [])) & {tag})
    return found


def is_loopback(registry: str) -> bool:
    """Whether a registry host[:port] is on the loopback interface."""
    if registry.startswith("["):
        host = registry[1 : registry.find("]")]
    else:
        host = registry.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _push_stream(
    client: docker.DockerClient, repository_url: str, tag: str, auth: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """The engine's push, as ``APIClient.push`` sends it, plus podman's ``tlsVerify=false`` for
    a registry on the loopback interface: Docker's daemon already treats 127.0.0.0/8 as a
    plain-HTTP registry (and ignores the parameter); podman needs to be told. Only a local
    test registry ever matches; ECR is always TLS."""
    api = client.api
    params = {"tag": tag}
    if is_loopback(split_repository(repository_url)[0]):
        params["tlsVerify"] = "false"
    encoded = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
    response = api._post(  # the SDK's push has no way to pass tlsVerify
        api._url("/images/{0}/push", repository_url),
        params=params,
        headers={"X-Registry-Auth": encoded},
        stream=True,
        timeout=None,
    )
    api._raise_for_status(response)
    yield from api._stream_helper(response, decode=True)


def _push(
    client: docker.DockerClient,
    repository_url: str,
    tag: str,
    auth: dict[str, str],
    reporter: Reporter,
) -> None:
    task = reporter.task(f"push {repository_url.rsplit('/', 1)[-1]}:{tag}", total=None)
    for chunk in _push_stream(client, repository_url, tag, auth):
        if "error" in chunk:
            raise PushError(f"pushing {repository_url}:{tag} failed: {chunk['error']}")
        reporter.log(json.dumps(chunk))
        status = chunk.get("status")
        if status:
            reporter.update(task, detail=str(status))
    reporter.done(task, "pushed")


def push_images(
    client: docker.DockerClient,
    built: Sequence[BuiltImage],
    outputs: Path,
    reporter: Reporter,
    ecr: Any | None = None,
) -> list[str]:
    """Push each image under its build tag (and its lock tag if that is new); returns refs.

    ``ecr``: a boto3 ECR client to use instead of one for each registry's region.
    """
    repositories = read_repositories(outputs, [item.image for item in built])
    pushed: list[str] = []
    for item in built:
        url = repositories[item.image]
        registry, name = split_repository(url)
        registry_api = ecr if ecr is not None else ecr_client(registry)
        lock_tag, build_tag = item.tags
        present = existing_tags(registry_api, name, [lock_tag, build_tag])
        if build_tag in present:
            reporter.note(f"{url}:{build_tag} is already in ECR (identical build); skipped")
            continue
        auth = registry_auth(registry_api, registry)
        image = client.images.get(item.image_id)
        to_push = [build_tag] + ([] if lock_tag in present else [lock_tag])
        for tag in to_push:
            image.tag(url, tag)
            try:
                _push(client, url, tag, auth, reporter)
            finally:
                try:
                    client.images.remove(f"{url}:{tag}")
                except docker.errors.APIError:
                    reporter.log(f"could not untag {url}:{tag} locally")
            pushed.append(f"{url}:{tag}")
        if lock_tag in present:
            reporter.note(
                f"{url}:{lock_tag} already names an earlier build of this lock (immutable tags); "
                f"this build is {url}:{build_tag}"
            )
    return pushed
