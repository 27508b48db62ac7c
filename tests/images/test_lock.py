"""The images' lock and the build plumbing that needs no container engine: the committed lock is
current and agrees with the client's; every check has a violating case that it must catch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dask_platform.images import IMAGES, all_images
from dask_platform.images.base import DebootstrapRecipe
from dask_platform.images.build import build_fraction
from dask_platform.images.lock import (
    LockError,
    applicable,
    client_mismatches,
    generated_project_dependencies,
    image_packages,
    images_lock_file,
    lock_is_current,
    lock_sha256,
    lock_tag,
    parse_requirements,
    project_dependencies,
    replace_generated,
    requires_python,
    target_environment,
)
from dask_platform.images.push import PushError, read_repositories, split_repository
from dask_platform.images.wheelhouse import wheel_platforms

ENV_3_11_2 = target_environment("3.11.2", "x86_64")
ENV_3_11_9 = target_environment("3.11.9", "x86_64")


def test_the_committed_lock_is_current():
    current, detail = lock_is_current()
    assert current, f"run `make images-lock`: {detail}"


def test_the_images_lock_pins_every_shared_package_to_the_clients_version():
    assert client_mismatches() == []


def test_a_client_version_change_is_caught(tmp_path):
    client = tmp_path / "uv.lock"
    text = (images_lock_file().parent.parent / "uv.lock").read_text()
    dask_version = image_packages("worker", ENV_3_11_9)["dask"]
    marker = f'name = "dask"\nversion = "{dask_version}"'
    assert marker in text
    client.write_text(text.replace(marker, 'name = "dask"\nversion = "1999.1.0"'))
    mismatches = client_mismatches(images_lock_file(), client)
    assert [(m.package, m.images, m.client) for m in mismatches] == [
        ("dask", dask_version, "1999.1.0")
    ]


def test_the_gateway_group_holds_the_projects_runtime_dependencies():
    assert generated_project_dependencies() == project_dependencies()


def test_the_lock_tag_is_twelve_hex_digits_of_the_lock_hash():
    sha = lock_sha256()
    assert lock_tag(sha) == f"lock-{sha[:12]}"
    assert len(sha) == 64


def test_the_images_python_is_one_minor_version(tmp_path):
    assert requires_python() == "3.11"
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\nrequires-python = ">=3.11"\n')
    with pytest.raises(LockError, match=r"requires-python must name one minor version"):
        requires_python(bad)


@pytest.mark.parametrize("image", all_images())
def test_every_image_has_a_group_and_a_containerfile(image):
    assert image_packages(image, ENV_3_11_9)
    assert (images_lock_file().parent / image / "Containerfile").is_file()


def test_the_worker_has_the_compute_stack_and_no_jupyter():
    worker = image_packages("worker", ENV_3_11_9)
    for package in ("dask", "distributed", "dask-gateway", "s3fs", "boto3", "xarray", "zarr"):
        assert package in worker
    assert not [name for name in worker if name.startswith(("jupyter", "ipykernel", "notebook"))]


def test_the_notebook_is_the_worker_plus_jupyter():
    worker = image_packages("worker", ENV_3_11_9)
    notebook = image_packages("notebook", ENV_3_11_9)
    assert {name: notebook[name] for name in worker} == worker
    assert {"jupyterlab", "dask-labextension"} <= set(notebook)


def test_the_gateway_speaks_the_clients_dask_gateway_version():
    gateway = image_packages("gateway", ENV_3_11_9)
    assert gateway["dask-gateway-server"] == gateway["dask-gateway"]
    assert gateway["dask-gateway"] == image_packages("worker", ENV_3_11_9)["dask-gateway"]


# --------------------------------------------------------------------------- parsing and forks

FORKED_EXPORT = """\
soupsieve==2.10 ; python_full_version < '3.11.5' and sys_platform == 'linux' \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
soupsieve==4.1.1 ; python_full_version >= '3.11.5' and sys_platform == 'linux' \\
    --hash=sha256:cccc
numpy==2.4.6 ; sys_platform == 'linux' \\
    --hash=sha256:dddd
"""


def test_a_fork_on_the_python_patch_level_picks_one_version_per_python():
    requirements = parse_requirements(FORKED_EXPORT)
    assert [r.name for r in requirements] == ["soupsieve", "soupsieve", "numpy"]
    old = applicable(requirements, ENV_3_11_2)
    new = applicable(requirements, ENV_3_11_9)
    assert (old["soupsieve"].version, new["soupsieve"].version) == ("2.10", "4.1.1")
    assert old["soupsieve"].hashes == ("sha256:aaaa", "sha256:bbbb")
    assert old["soupsieve"].pinned_with_hashes == (
        "soupsieve==2.10 --hash=sha256:aaaa --hash=sha256:bbbb"
    )


def test_two_applicable_versions_of_one_package_are_an_error():
    requirements = parse_requirements("a==1 --hash=sha256:aa\na==2 --hash=sha256:bb\n")
    with pytest.raises(LockError, match="two locked versions of a"):
        applicable(requirements, ENV_3_11_9)


def test_an_unpinned_requirement_is_refused():
    with pytest.raises(LockError, match="not a pinned requirement"):
        parse_requirements("dask>=2026.1 --hash=sha256:aa\n")


def test_generated_blocks_are_replaced_and_a_missing_block_is_an_error():
    text = "a = 1\n# BEGIN GENERATED: pins - note\nold = []\n# END GENERATED: pins\nb = 2\n"
    updated = replace_generated(text, "pins", "new", ["x==1", "y==2"])
    assert updated == (
        'a = 1\n# BEGIN GENERATED: pins - note\nnew = [\n    "x==1",\n    "y==2",\n]\n'
        "# END GENERATED: pins\nb = 2\n"
    )
    with pytest.raises(LockError, match="GENERATED: other"):
        replace_generated(text, "other", "new", [])


# --------------------------------------------------------------------------- build plumbing


def test_wheel_platforms_cover_every_manylinux_tag_bookworm_can_load():
    tags = wheel_platforms("x86_64")
    assert "manylinux_2_36_x86_64" in tags
    assert "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags
    assert all(tag.endswith("_aarch64") for tag in wheel_platforms("aarch64"))


@pytest.mark.parametrize(
    ("line", "fraction"),
    [
        ("[1/2] STEP 1/3: FROM base AS build", 0.0),
        ("[2/2] STEP 2/5: COPY --from=build /opt/venv /opt/venv", 0.6),
        ("Step 3/5 : RUN pip install", 0.4),
        ("Successfully built 0123", None),
    ],
)
def test_build_progress_from_podman_and_docker_lines(line, fraction):
    assert build_fraction(line) == (None if fraction is None else pytest.approx(fraction))


def test_the_base_recipe_key_follows_its_content():
    recipe = DebootstrapRecipe(architecture="x86_64")
    assert recipe.key == DebootstrapRecipe(architecture="x86_64").key
    assert recipe.key != DebootstrapRecipe(architecture="aarch64").key
    assert recipe.key != DebootstrapRecipe(architecture="x86_64", extra_packages=("python3",)).key
    assert "python3.11-venv" in recipe.packages
    assert recipe.reference.endswith(f":bookworm-py3.11-{recipe.key}")


# --------------------------------------------------------------------------- push inputs


def _outputs(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    return path


def test_repositories_come_from_the_stack_outputs(tmp_path):
    url = "123456789012.dkr.ecr.us-west-2.amazonaws.com/dask-platform/worker"
    outputs = _outputs(tmp_path, {"ecr_repositories": {"worker": url, "notebook": url + "x"}})
    assert read_repositories(outputs, ["worker"]) == {"worker": url}
    assert split_repository(url) == (
        "123456789012.dkr.ecr.us-west-2.amazonaws.com",
        "dask-platform/worker",
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"region": "us-west-2"}, "no 'ecr_repositories' output"),
        ({"ecr_repositories": {"worker": "r/w"}}, "no repository for gateway, notebook"),
        ([], "must be a JSON object of stack outputs"),
    ],
)
def test_bad_stack_outputs_are_one_clear_error(tmp_path, document, message):
    with pytest.raises(PushError, match=message):
        read_repositories(_outputs(tmp_path, document), IMAGES)


def test_an_unreadable_outputs_file_is_one_clear_error(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text("{not json")
    with pytest.raises(
        PushError, match=r"outputs\.json: not JSON \(.*\); expected `pulumi stack output"
    ):
        read_repositories(path, IMAGES)


def test_the_programs_own_outputs_feed_the_push(tmp_path):
    """What the bootstrap program (infra/bootstrap) exports for prod, evaluated under mocks: it
    names a repository for every image."""
    import json

    from dask_platform.pulumi_eval import evaluate_stack

    bootstrap = Path(__file__).parents[2] / "infra" / "bootstrap"
    outputs = tmp_path / "outputs.bootstrap.json"
    outputs.write_text(json.dumps(evaluate_stack("prod", bootstrap).outputs))
    repositories = read_repositories(outputs, all_images())
    assert all(url.endswith(f"/dask-platform/{image}") for image, url in repositories.items())
