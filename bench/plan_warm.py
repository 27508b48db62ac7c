"""The warm half of the plan benchmark, run as its own process by :mod:`bench.groups.plan`.

One interpreter imports everything once, evaluates each stack once to warm up, then times
``--repeat`` rounds of: evaluate the stack under Pulumi's mocks, run the policy pack's rules on
the recorded resources, lint the stack's IAM documents. Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def measure(stacks: list[str], repeat: int) -> dict[str, Any]:
    import yaml

    from dask_platform.config.sources import load_stack_file
    from dask_platform.guard import documents as iam_documents
    from dask_platform.guard.lint import lint_documents
    from dask_platform.guard.manifests import check_manifests
    from dask_platform.guard.policies import pack_config
    from dask_platform.guard.runner import run_evaluation
    from dask_platform.project import project_root
    from dask_platform.pulumi_eval import evaluate_stack

    project = str(yaml.safe_load((project_root() / "Pulumi.yaml").read_text())["name"])
    result: dict[str, Any] = {}
    for stack in stacks:
        config = load_stack_file(project_root(), stack)
        pack = pack_config(config)
        version = config.eks.kubernetes_version
        # Warm-up: one untimed round fills the import, schema, chart and linter caches.
        warm_up = evaluate_stack(stack)
        run_evaluation(warm_up, project, pack)
        lint_documents(iam_documents.from_resources(stack, warm_up.resources))
        check_manifests(warm_up, version, checkov=False)
        rounds = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            evaluation = evaluate_stack(stack)
            t1 = time.perf_counter()
            _, gate = run_evaluation(evaluation, project, pack)
            t2 = time.perf_counter()
            findings = lint_documents(iam_documents.from_resources(stack, evaluation.resources))
            t3 = time.perf_counter()
            kube = check_manifests(evaluation, version, checkov=False)
            t4 = time.perf_counter()
            rounds.append(
                {
                    "evaluate_s": t1 - t0,
                    "rules_s": t2 - t1,
                    "lint_s": t3 - t2,
                    # Render every release and validate every object; checkov (a process of its
                    # own) is measured by the cold plan only.
                    "manifests_s": t4 - t3,
                    "total_s": t4 - t0,
                    "kubernetes_objects": len(kube.objects),
                    "manifest_problems": len(kube.problems),
                    "resources": gate.resources_checked,
                    "mandatory_violations": len(gate.mandatory),
                    "lint_findings": len(findings),
                }
            )
        result[stack] = rounds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", required=True, help="A committed stack.")
    parser.add_argument("--repeat", type=int, default=5, help="Timed rounds per stack.")
    args = parser.parse_args()
    print(json.dumps(measure(args.stack, args.repeat)))


if __name__ == "__main__":
    main()
