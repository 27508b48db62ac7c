"""Fixtures for the policy tests: the committed stacks evaluated once per session, and the real
CrossGuard pack process (its own entry point, as the engine starts it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.pulumi_mocks import Evaluation

from .policy_harness import PACK_DIR, PackClient

_EVALUATIONS: dict[str, Evaluation] = {}


@pytest.fixture(scope="session")
def evaluated() -> Callable[[str], Evaluation]:
    """evaluated(stack) -> the stack's Evaluation, computed once per session."""

    def get(stack: str) -> Evaluation:
        if stack not in _EVALUATIONS:
            _EVALUATIONS[stack] = evaluate_stack(stack)
        return _EVALUATIONS[stack]

    return get


@pytest.fixture(scope="session")
def pack() -> Iterator[PackClient]:
    """The pack's own entry point, started as the engine starts it; it prints its port."""
    # Unbuffered, as Pulumi's Python policy host runs it: the pack writes its port to stdout
    # without flushing, so a buffered pipe would hold it back.
    process = subprocess.Popen(
        [sys.executable, "-u", str(PACK_DIR / "__main__.py")],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.isdigit():
            process.kill()
            _, stderr = process.communicate(timeout=30)
            pytest.fail(f"the pack did not start: {line!r}\n{stderr.decode()[-3000:]}")
        client = PackClient(int(line))
        yield client
        client.channel.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
