"""The product as a wheel, run outside a checkout: it renders its IAM documents from the data
the wheel carries, and what needs a checkout (building images) says so instead of pointing
into site-packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dask_platform.images.lock import uv
from dask_platform.project import project_root

SCRIPT = """
import json, sys
import dask_platform
from dask_platform.iam import policy_dir, render_policy
from dask_platform.images import all_images, images_dir
from dask_platform.project import ProjectNotFoundError

report = {
    "package": dask_platform.__file__,
    "policy_dir": str(policy_dir()),
    "rendered": render_policy("team-scratch", bucket="b", team="t"),
    "images": list(all_images()),
}
try:
    report["images_dir"] = str(images_dir())
except ProjectNotFoundError as exc:
    report["images_dir_error"] = str(exc)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel, unpacked as site-packages would hold it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(project_root())],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("dask_platform-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_renders_policies_and_refuses_image_builds_outside_a_checkout(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DASK_PLATFORM_ROOT"}
    # The unpacked wheel comes before the editable checkout on the path.
    env["PYTHONPATH"] = str(installed)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["package"] == str(installed / "dask_platform" / "__init__.py")
    assert report["policy_dir"] == str(installed / "dask_platform" / "_iam")
    assert report["rendered"]["Version"] == "2012-10-17"
    assert report["images"] == ["worker", "notebook", "gateway", "worker-gpu"]
    assert "images_dir" not in report
    assert "no dask-platform checkout" in report["images_dir_error"]
    assert "DASK_PLATFORM_ROOT" in report["images_dir_error"]


def test_a_checkout_reads_policies_iam_itself() -> None:
    from dask_platform.iam import policy_dir

    # The editable install has no packaged copy: the reviewer's files are the ones rendered.
    assert policy_dir() == project_root() / "policies" / "iam"
    assert (policy_dir() / "team-scratch.json").is_file()
