"""The podman command of image-based local workers: the team's token directory and the platform
AWS config mounted where EKS mounts them, and the variables rewritten to those paths."""

from __future__ import annotations

from dask_platform.local.containers import container_command


def test_the_platform_aws_config_is_mounted_where_eks_mounts_it() -> None:
    argv, env = container_command(
        "podman",
        "localhost/dask-platform/worker:lock-x",
        "dask-c-worker",
        ["dask", "worker"],
        {
            "AWS_CONFIG_FILE": "/state/aws/config",
            "AWS_WEB_IDENTITY_TOKEN_FILE": "/state/tokens/dask-hydrology/token",
            "PATH": "/host/bin",
        },
        "/state/clusters/c",
        "/state",
    )
    volumes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--volume"]
    assert volumes == [
        "/state/clusters/c:/state/clusters/c:rw",
        "/state/tokens/dask-hydrology:/var/run/secrets/eks.amazonaws.com/serviceaccount:ro",
        "/state/aws:/etc/dask-platform/aws:ro",
    ]
    assert env["AWS_CONFIG_FILE"] == "/etc/dask-platform/aws/config"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == (
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    )
    assert argv[argv.index("AWS_CONFIG_FILE") - 1 :][:2] == ["--env", "AWS_CONFIG_FILE"]


def test_without_a_config_file_nothing_more_is_mounted() -> None:
    argv, env = container_command("podman", "img", "n", ["dask", "worker"], {}, "/w", "/state")
    volumes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--volume"]
    assert volumes == ["/w:/w:rw"]
    assert "AWS_CONFIG_FILE" not in env
