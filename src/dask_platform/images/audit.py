"""What every image of this platform must be, checked on a real image.

The rules follow from the platform's one promise (no AWS key is ever copied) and from running
untrusted user code on shared nodes: a non-root user; no AWS variable in the image config (a
key, or an identity redirection such as AWS_PROFILE, would reach every worker started from
it); no credential file anywhere a process would look; the OCI label naming the lock. The build
runs the audit on every image it produces and fails on any finding; tests/images runs it on the
built images and on a deliberately bad one, whose every violation must be reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import docker
import docker.errors

from dask_platform.images import IMAGE_LABEL, LOCK_LABEL

CREDENTIAL_FILES = (
    ".aws/credentials",
    ".aws/config",
    ".docker/config.json",
    ".netrc",
    ".pypirc",
    ".git-credentials",
)
"""Files, under any home directory (every /home/* and every passwd entry's), that tools read
credentials from."""

_FIND_CREDENTIALS = """
import glob, json, os, pwd
homes = {"/root", os.path.expanduser("~"), *glob.glob("/home/*")}
homes |= {p.pw_dir for p in pwd.getpwall()}
names = json.loads(os.environ["CREDENTIAL_FILES"])
found = sorted(
    os.path.join(home, name)
    for home in homes
    for name in [*names, ".aws"]
    if os.path.lexists(os.path.join(home, name))
)
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Finding:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in {"", "root", "0"}


def config_findings(config: dict[str, object], labels: dict[str, str]) -> list[Finding]:
    """Findings from the image configuration alone (user, environment, labels)."""
    findings: list[Finding] = []
    user = str(config.get("User") or "")
    if _is_root(user):
        findings.append(
            Finding("non-root-user", f"the image runs as {user or 'root (no USER)'}; set USER")
        )
    env = config.get("Env") or []
    assert isinstance(env, list)
    for entry in env:
        name = str(entry).split("=", 1)[0]
        if name.upper().startswith("AWS_"):
            findings.append(
                Finding(
                    "no-aws-variables",
                    f"{name} is set in the image; workers get AWS access from their team role",
                )
            )
    if not labels.get(LOCK_LABEL):
        findings.append(Finding("lock-label", f"label {LOCK_LABEL} (the lock's sha256) is missing"))
    if not labels.get(IMAGE_LABEL):
        findings.append(Finding("image-label", f"label {IMAGE_LABEL} is missing"))
    return findings


def credential_files(client: docker.DockerClient, reference: str) -> list[str]:
    """Credential files present in the image, found by running its own Python."""
    output = client.containers.run(
        reference,
        ["python3", "-c", _FIND_CREDENTIALS],
        environment={"CREDENTIAL_FILES": json.dumps(list(CREDENTIAL_FILES))},
        remove=True,
        network_disabled=True,
        user="0",  # root may read every home directory
    )
    text = output.decode() if isinstance(output, bytes) else str(output)
    return list(json.loads(text.strip().splitlines()[-1]))


def audit_image(client: docker.DockerClient, reference: str) -> list[Finding]:
    """Every rule on one image; an empty list means the image may ship."""
    image = client.images.get(reference)
    config = dict(image.attrs.get("Config") or {})
    findings = config_findings(config, dict(image.labels or {}))
    findings.extend(
        Finding("no-credential-files", f"{path} exists in the image")
        for path in credential_files(client, reference)
    )
    return findings
