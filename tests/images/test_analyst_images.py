"""What analysts do in the images (issue 16): install packages at run time on a worker as uid
1000 (pip from a worker plugin, distributed's PipInstall), see a failed install at the client,
and get the dask config and the dask-gateway client fix in the notebook."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import uuid
import zipfile

import pytest

from .conftest import REPO

RUNTIME_PACKAGES = "/opt/runtime-packages"


@pytest.fixture(scope="module")
def own_worker(engine, built):
    """A worker container of this module's own: run-time installs must not reach the shared
    containers the lock inventory is taken from. Yields (container, testinfra host)."""
    import testinfra

    container = engine.client.containers.run(
        built["worker"].build_reference,
        ["sleep", "infinity"],
        name=f"dask-platform-test-runtime-installs-{uuid.uuid4().hex[:8]}",
        detach=True,
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
    )
    try:
        backend = "podman" if engine.kind == "podman" else "docker"
        yield container, testinfra.get_host(f"{backend}://{container.name}")
    finally:
        container.remove(force=True)


def pure_wheel(name: str, value: str) -> tuple[str, bytes]:
    """A minimal valid pure-Python wheel: ``import <name>; <name>.VALUE == value``.
    ref: https://packaging.python.org/en/latest/specifications/binary-distribution-format/"""
    version = "1.0"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


def put_file(container, directory: str, name: str, data: bytes) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    assert container.put_archive(directory, buffer.getvalue())
    return f"{directory}/{name}"


def test_pip_install_as_the_worker_user_lands_on_sys_path(own_worker):
    """Pangeo's `python -m pip install ...` from a worker plugin, as uid 1000."""
    container, host = own_worker
    filename, data = pure_wheel("analyst_extra_pip", "from-pip")
    path = put_file(container, "/tmp", filename, data)
    installed = host.run("python -m pip install --no-index %s", path)
    assert installed.rc == 0, installed.stderr
    imported = host.run(
        "python -c %s",
        "import analyst_extra_pip as m, os; print(m.VALUE, m.__file__, os.getuid())",
    )
    assert imported.rc == 0, imported.stderr
    assert imported.stdout.split() == [
        "from-pip",
        f"{RUNTIME_PACKAGES}/analyst_extra_pip/__init__.py",
        "1000",
    ]


PIP_INSTALL_ON_A_CLUSTER = r"""
import json, sys
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import PipInstall

wheel, missing = sys.argv[1:3]
result = {}
with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                  host="127.0.0.1") as cluster, Client(cluster) as client:
    client.register_plugin(PipInstall([wheel], pip_options=["--no-index"]))
    result["value"] = client.submit(
        lambda: __import__("analyst_extra_plugin").VALUE, pure=False
    ).result(timeout=60)
    try:
        client.register_plugin(PipInstall([missing], pip_options=["--no-index"]))
        result["failed_install"] = None
    except RuntimeError as error:
        result["failed_install"] = str(error)
print(json.dumps(result))
"""


def test_distributed_pip_install_works_and_a_failure_reaches_the_client(own_worker):
    container, host = own_worker
    filename, data = pure_wheel("analyst_extra_plugin", "from-plugin")
    path = put_file(container, "/tmp", filename, data)
    missing = f"no-such-package-{uuid.uuid4().hex[:8]}"
    done = host.run("python -c %s %s %s", PIP_INSTALL_ON_A_CLUSTER, path, missing)
    assert done.rc == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["value"] == "from-plugin"
    # distributed's PipInstall raises pip's own error at registration (item 10).
    assert result["failed_install"].startswith("pip install failed with '")
    assert f"No matching distribution found for {missing}" in result["failed_install"]


def test_the_notebook_writes_the_dask_config_of_the_stacks_outputs_at_start(engine, built):
    outputs = REPO / "tests/fixtures/outputs/prod.json"
    script = "import dask.config, json; print(json.dumps(dask.config.get('gateway')))"
    logs = engine.client.containers.run(
        built["notebook"].build_reference,
        ["python", "-c", script],
        environment={"DASK_PLATFORM_OUTPUTS": "/srv/outputs.json"},
        volumes={str(outputs): {"bind": "/srv/outputs.json", "mode": "ro"}},
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    gateway = json.loads(logs.decode().strip().splitlines()[-1])
    expected = json.loads(outputs.read_text())
    assert gateway["address"] == expected["gateway_address"]
    assert gateway["proxy-address"] == expected["gateway_proxy_address"]
    assert gateway["auth"] == {
        "type": "dask_platform.oidc.client.OIDCAuth",
        "kwargs": {
            "issuer": expected["site"]["auth"]["oidc"]["issuer"],
            "client_id": expected["site"]["auth"]["oidc"]["client_id"],
        },
    }


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            "import dask_gateway.client as c; print(c.Gateway._dask_platform_fixed)",
            "True",
        ),
        (
            "import dask; from dask_gateway.auth import get_auth; "
            "dask.config.set({'gateway.auth.type': 'dask_platform.oidc.client.OIDCAuth', "
            "'gateway.auth.kwargs': {'issuer': 'https://idp.example.org', 'client_id': 'c'}}); "
            "print(type(get_auth()).__name__)",
            "OIDCAuth",
        ),
    ],
    ids=["gateway-client-fix", "oidc-auth-by-name"],
)
def test_the_notebook_carries_the_client_side_of_the_platform(check, expected, hosts):
    result = hosts["notebook"].run("python -c %s", check)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == expected
