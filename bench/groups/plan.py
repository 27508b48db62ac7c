"""The offline plan: evaluate each committed stack under Pulumi's mocks and run the policy gate.

Cold: ``dask-platform plan --stack S --no-resources --no-documents`` as a new process each time
(interpreter start, imports, evaluation, rules, IAM lint, manifests, checkov) - what CI and a
reviewer run. Warm: the same work but checkov repeated in one process that has already
imported everything (:mod:`bench.plan_warm`), split into evaluation, rules, lint and manifests.
Cold and warm rounds of a stack alternate with the other stacks' so machine noise spreads over
all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import REPO_DIR
from bench.report import Row, fmt_ratio
from bench.runner import Context
from bench.stats import ratio, summary

TITLE = "Offline plan and policy gate"


class PlanBenchError(RuntimeError):
    pass


def _cold(stack: str) -> float:
    cli = Path(sys.executable).parent / "dask-platform"
    started = time.perf_counter()
    done = subprocess.run(
        [str(cli), "plan", "--stack", stack, "--no-resources", "--no-documents"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise PlanBenchError(
            f"`dask-platform plan --stack {stack}` exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-2000:]}"
        )
    return seconds


def _warm(stacks: list[str], repeat: int) -> dict[str, list[dict[str, Any]]]:
    argv = [sys.executable, "-m", "bench.plan_warm", "--repeat", str(repeat)]
    for stack in stacks:
        argv += ["--stack", stack]
    done = subprocess.run(argv, cwd=REPO_DIR, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PlanBenchError(f"bench.plan_warm exited {done.returncode}:\n{done.stderr[-2000:]}")
    data: dict[str, list[dict[str, Any]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def run(context: Context) -> dict[str, Any]:
    from dask_platform.config.sources import list_stacks

    stacks = list_stacks(REPO_DIR)
    repeat = context.repetitions(full=5, quick=2)
    cold: dict[str, list[float]] = {stack: [] for stack in stacks}
    with context.task("cold `dask-platform plan` processes", total=repeat * len(stacks)) as step:
        for round_ in range(repeat):
            # Rotate the order so neither stack always runs first after the warm process.
            for stack in stacks[round_ % len(stacks) :] + stacks[: round_ % len(stacks)]:
                cold[stack].append(_cold(stack))
                step(f"{stack}: {cold[stack][-1]:.1f}s")
    with context.task("warm rounds in one process", total=None):
        warm = _warm(stacks, repeat)
    figures: dict[str, Any] = {}
    for stack in stacks:
        rounds = warm[stack]
        warm_total = summary([r["total_s"] for r in rounds])
        cold_total = summary(cold[stack])
        figures[stack] = {
            "cold_process_s": cold_total,
            "warm_total_s": warm_total,
            "warm_evaluate_s": summary([r["evaluate_s"] for r in rounds]),
            "warm_rules_s": summary([r["rules_s"] for r in rounds]),
            "warm_lint_s": summary([r["lint_s"] for r in rounds]),
            "warm_manifests_s": summary([r["manifests_s"] for r in rounds]),
            "kubernetes_objects": rounds[0]["kubernetes_objects"],
            "resources": rounds[0]["resources"],
            "mandatory_violations": rounds[0]["mandatory_violations"],
            "lint_findings": rounds[0]["lint_findings"],
            "cold_to_warm": ratio(cold_total["median"], warm_total["median"]),
        }
    if len(stacks) >= 2:
        first, *rest = stacks
        figures["ratios_to_first_stack"] = {
            stack: ratio(
                figures[stack]["cold_process_s"]["median"],
                figures[first]["cold_process_s"]["median"],
            )
            for stack in rest
        }
    return {
        "parameters": {"stacks": stacks, "repeat": repeat},
        "figures": figures,
        "notes": [
            "Cold = a new `dask-platform plan --stack S --no-resources --no-documents` process "
            "(lint on, "
            "so checkov's kubernetes checks run too, as a process of their own); warm = the same "
            "evaluation, rules, IAM lint and manifests (render every release, validate every "
            "object; no checkov) repeated in one process after a warm-up evaluation. The "
            "difference is interpreter start, imports (Pulumi SDK, provider SDKs, policy_sentry, "
            "parliament, cloudsplaining) and checkov.",
        ],
    }


def _s(item: Mapping[str, Any]) -> str:
    return f"{item['median']:.2f} s [{item['min']:.2f}-{item['max']:.2f}]"


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    result = []
    for stack in document["parameters"]["stacks"]:
        item = figures[stack]
        result.append(
            Row(
                f"`{stack}`: cold process, median [min-max]",
                f"{_s(item['cold_process_s'])}; {item['resources']} resources, "
                f"{item['mandatory_violations']} violations, {item['lint_findings']} findings",
                "",
            )
        )
        manifests = item.get("warm_manifests_s")  # results before the manifests check lack it
        result.append(
            Row(
                f"`{stack}`: warm (evaluate + rules + lint"
                + (" + manifests)" if manifests else ")"),
                f"{_s(item['warm_total_s'])} = {item['warm_evaluate_s']['median']:.2f} + "
                f"{item['warm_rules_s']['median'] * 1000:.0f} ms + "
                f"{item['warm_lint_s']['median'] * 1000:.0f} ms"
                + (f" + {manifests['median']:.2f}" if manifests else ""),
                f"cold/warm **{fmt_ratio(item['cold_to_warm'])}**",
            )
        )
    for stack, value in (figures.get("ratios_to_first_stack") or {}).items():
        first = document["parameters"]["stacks"][0]
        result.append(Row(f"`{stack}` / `{first}` (cold)", "", fmt_ratio(value)))
    return result
