"""IAM and image linters through their Python APIs (checkov through its CLI, isolated).

* parliament (community auditors on): every finding fails, except the few listed in
  :data:`ACCEPTED_PARLIAMENT_FINDINGS`, each narrowed to the document kind and detail it is about
  and carrying the reason a reviewer accepted it.
* cloudsplaining: on identity policies, any privilege escalation, data exfiltration, resource
  exposure (permissions management without constraints), credentials exposure or service
  wildcard fails. (Its CLI exits 0 on findings, hence the API.)
* checkov on ``images/*/Containerfile``: run as ``uv tool run --from checkov==<pin>`` because
  checkov's own pins (boto3, pulumi, s3fs, ...) cannot share this project's lock; with
  ``--skip-download`` so nothing is fetched from Bridgecrew. checkov only recognises files named
  like ``Dockerfile``, so each Containerfile is scanned as a renamed copy (with the global ARG
  defaults written into its FROM lines, see :func:`resolve_from_args`) and reported under its
  real path.
* checkov's kubernetes checks on every object a stack applies (the rendered Helm releases and
  the program's own objects, :mod:`dask_platform.guard.manifests`): every failure fails, except
  those a waiver of ``policies/checkov-kubernetes-waivers.yaml`` covers (check id, resource ids,
  reason), the one reviewed list.

One module per linter: :mod:`.iam` (parliament, cloudsplaining), :mod:`.checkov` (running it),
:mod:`.containerfiles` and :mod:`.checkov_kubernetes`; :class:`LintFinding` is in :mod:`.findings`.
"""

from dask_platform.guard.lint.checkov import (
    CHECKOV_SKIPS,
    CHECKOV_VERSION,
    CheckovUnavailable,
    checkov_command,
    run_checkov,
    uv_binary,
)
from dask_platform.guard.lint.checkov_kubernetes import (
    KUBERNETES_WAIVERS_FILE,
    CheckovResult,
    CheckovWaiver,
    checkov_kubernetes_findings,
    checkov_kubernetes_results,
    kubernetes_waivers,
    waive,
)
from dask_platform.guard.lint.containerfiles import (
    CONTAINERFILE_GLOB,
    checkov_findings,
    containerfiles,
    resolve_from_args,
)
from dask_platform.guard.lint.findings import (
    LintFinding,
)
from dask_platform.guard.lint.iam import (
    ACCEPTED_CLOUDSPLAINING_FINDINGS,
    ACCEPTED_PARLIAMENT_FINDINGS,
    CLOUDSPLAINING_CHECKS,
    AcceptedFinding,
    cloudsplaining_findings,
    lint_documents,
    parliament_findings,
)

__all__ = [
    "ACCEPTED_CLOUDSPLAINING_FINDINGS",
    "ACCEPTED_PARLIAMENT_FINDINGS",
    "CHECKOV_SKIPS",
    "CHECKOV_VERSION",
    "CLOUDSPLAINING_CHECKS",
    "CONTAINERFILE_GLOB",
    "KUBERNETES_WAIVERS_FILE",
    "AcceptedFinding",
    "CheckovResult",
    "CheckovUnavailable",
    "CheckovWaiver",
    "LintFinding",
    "checkov_command",
    "checkov_findings",
    "checkov_kubernetes_findings",
    "checkov_kubernetes_results",
    "cloudsplaining_findings",
    "containerfiles",
    "kubernetes_waivers",
    "lint_documents",
    "parliament_findings",
    "resolve_from_args",
    "run_checkov",
    "uv_binary",
    "waive",
]
