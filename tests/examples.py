"""AWS's documented example key pair, for the fixtures that must be caught carrying a key.

Built from parts so that no string in the repository has the shape of an access key id: secret
scanners (and the repository's own pre-submit check, `git grep 'AKIA[0-9A-Z]{16}'`) then report
only real mistakes. These are the values from AWS's documentation, not credentials.
ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html
"""

EXAMPLE_ACCESS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"

# YAML fixtures name them by placeholder; their loaders substitute.
PLACEHOLDERS = {
    "${EXAMPLE_ACCESS_KEY_ID}": EXAMPLE_ACCESS_KEY_ID,
    "${EXAMPLE_SECRET_ACCESS_KEY}": EXAMPLE_SECRET_ACCESS_KEY,
}


def with_example_keys(text: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


# The exact hint a refused secret-carrying variable gets (asserted word for word by the unit and
# the integration tests of dask_platform.credentials, so that a change of wording is seen).
SECRET_HINT = (
    "may not be set: they carry secrets (names containing TOKEN, SECRET, PASSWORD, PASSWD, "
    "CREDENTIAL, CONNECTION_STRING or ending in _KEY, _PWD, and JupyterHub's and Dask "
    "Gateway's own auth variables), "
    "and cluster options are stored by the gateway and seen by every process of the cluster. "
    'Pass only the configuration the workers need, e.g. environment={"MY_SETTING": "value"} '
    "instead of dict(os.environ); S3 access comes from the team's IAM role, and a secret a "
    "worker must use belongs in AWS Secrets Manager, read with that role."
)
