"""The environment guard (dask_platform.credentials): secrets by meaning, values a process
environment can hold, every problem named at once."""

from __future__ import annotations

import pytest

from dask_platform.credentials import (
    MAX_ENVIRONMENT_BYTES,
    MAX_VALUE_BYTES,
    ForbiddenEnvironmentError,
    InvalidEnvironmentError,
    checked_environment,
    is_secret_name,
)
from tests.examples import SECRET_HINT


@pytest.mark.parametrize(
    "name",
    [
        "JUPYTERHUB_API_TOKEN",
        "JPY_API_TOKEN",
        "GITHUB_TOKEN",
        "HF_TOKEN",
        "EARTHDATA_PASSWORD",
        "DB_PASSWD",
        "AZURE_CLIENT_SECRET",
        "OPENAI_API_KEY",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "JUPYTERHUB_CLIENT_ID",
        "JUPYTERHUB_OAUTH_CALLBACK_URL",
        "DASK_GATEWAY__AUTH__TYPE",
        "DASK_GATEWAY__AUTH__KWARGS__PASSWORD",
        "DASK_GATEWAY_ENCRYPT_KEYS",
        "aws_secret_access_key",
        "AWS_PROFILE",
    ],
)
def test_secret_carrying_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "GPG_KEY",
        "TOKENIZERS_PARALLELISM",
        "KEYBOARD",
        "MONKEY",
        "DASK_GATEWAY__ADDRESS",
    ],
)
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_notebook_environment_names_each_secret_and_says_what_to_do():
    environment = {
        "PATH": "/opt/venv/bin:/usr/bin",
        "JUPYTERHUB_API_TOKEN": "hub-token",
        "GITHUB_TOKEN": "ghp_x",
        "HOME": "/home/jovyan",
    }
    with pytest.raises(ForbiddenEnvironmentError) as caught:
        checked_environment(environment)
    assert caught.value.names == ["GITHUB_TOKEN", "JUPYTERHUB_API_TOKEN"]
    assert str(caught.value) == f"environment: GITHUB_TOKEN, JUPYTERHUB_API_TOKEN {SECRET_HINT}"


def test_aws_and_other_secrets_are_both_named():
    with pytest.raises(ForbiddenEnvironmentError) as caught:
        checked_environment({"AWS_SECRET_ACCESS_KEY": "k", "GITHUB_TOKEN": "t"}, field="env")
    assert str(caught.value) == (
        "env: AWS_SECRET_ACCESS_KEY may not be set. Workers get S3 access from their team's IAM "
        "role (no key is ever copied), so AWS key and identity variables are refused rather "
        "than passed on. Remove them; allowed: any other variable.; "
        f"env: GITHUB_TOKEN {SECRET_HINT}"
    )
    # One line: the gateway sends it as an HTTP reason, which cannot hold a newline.
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["MYSQL_PWD", "AZURE_STORAGE_CONNECTION_STRING"])
def test_secret_names_found_by_a_reviewer_are_refused(name):
    with pytest.raises(ForbiddenEnvironmentError) as caught:
        checked_environment({name: "x"}, field="environment")
    assert caught.value.names == [name]


@pytest.mark.parametrize("name", ["PWD", "OLDPWD"])
def test_the_shells_working_directory_variables_pass(name):
    assert checked_environment({name: "/home/alice"}, field="environment") == {name: "/home/alice"}


def test_scalars_become_the_strings_dask_config_reads_back():
    import dask.config

    environment = checked_environment(
        {
            "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": False,
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": 5,
            "RATIO": 0.25,
            "NAME": "x",
        }
    )
    assert environment == {
        "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False",
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "5",
        "RATIO": "0.25",
        "NAME": "x",
    }
    config = dask.config.collect_env(environment)
    assert dask.config.get("distributed.scheduler.work-stealing", config=config) is False
    assert dask.config.get("distributed.scheduler.allowed-failures", config=config) == 5


def test_none_is_an_empty_environment():
    assert checked_environment(None) == {}


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"A": None},
            "environment: A has a value of type None; a process environment holds strings "
            "(str, or bool, int, float, which are converted)",
        ),
        (
            {"A": ["x"]},
            "environment: A has a value of type list; a process environment holds strings "
            "(str, or bool, int, float, which are converted)",
        ),
        (
            {"A": {"b": 1}},
            "environment: A has a value of type dict; a process environment holds strings "
            "(str, or bool, int, float, which are converted)",
        ),
        (
            {"A=B": "1"},
            "environment: 'A=B' is not a valid variable name: '=' separates a name from its "
            "value in a process environment (letters, digits, '_', '-' or '.', not starting "
            "with a digit)",
        ),
        (
            {"": "1"},
            "environment: an empty variable name is not allowed (letters, digits, '_', '-' or "
            "'.', not starting with a digit)",
        ),
        (
            {"1ABC": "1"},
            "environment: '1ABC' is not a valid variable name (letters, digits, '_', '-' or "
            "'.', not starting with a digit)",
        ),
        (
            {"A": "x\x00y"},
            "environment: A contains a NUL byte, which no process environment can hold",
        ),
        (
            {"BIG": "x" * 200_000},
            f"environment: BIG is 200000 bytes; a value may be at most {MAX_VALUE_BYTES} bytes "
            "(put data in the team's scratch bucket, not in the environment)",
        ),
        (
            ["A"],
            "environment: must be a mapping of variable names to strings, got list",
        ),
    ],
)
def test_what_no_process_environment_holds_is_refused(environment, message):
    with pytest.raises(InvalidEnvironmentError) as caught:
        checked_environment(environment)
    assert str(caught.value) == message
    assert not isinstance(caught.value, ForbiddenEnvironmentError)


def test_the_total_size_is_bounded():
    environment = {f"V{i}": "x" * MAX_VALUE_BYTES for i in range(9)}
    with pytest.raises(InvalidEnvironmentError) as caught:
        checked_environment(environment)
    total = sum(len(k) + 1 + MAX_VALUE_BYTES for k in environment)
    assert str(caught.value) == (
        f"environment: the variables total {total} bytes; an environment may hold at most "
        f"{MAX_ENVIRONMENT_BYTES} bytes"
    )


def test_every_problem_is_in_one_error():
    with pytest.raises(InvalidEnvironmentError) as caught:
        checked_environment({"A": None, "": "1", "OK": "1"})
    assert len(caught.value.problems) == 2
    assert str(caught.value).splitlines()[0].startswith("environment: A has a value of type None")


def test_key_variables_present_names_key_variables_in_any_case_never_values() -> None:
    from dask_platform.credentials import key_variables_present

    environment = {
        "aws_secret_access_key": "lower-case still reaches some tools",
        "AWS_ACCESS_KEY_ID": "",  # empty: no key material
        "AWS_SESSION_TOKEN": "token",
        "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/team",  # the webhook's, not a key
        "PATH": "/usr/bin",
    }
    assert key_variables_present(environment) == ["AWS_SESSION_TOKEN", "aws_secret_access_key"]
