"""Unit-test fixtures: every committed stack evaluated once under Pulumi mocks."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from dask_platform.config.models import StackConfig
from dask_platform.config.sources import list_stacks, load_stack_file
from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.pulumi_mocks import Evaluation

REPO = Path(__file__).resolve().parents[2]
STACKS = list_stacks(REPO)
BOOTSTRAP = REPO / "infra" / "bootstrap"
BOOTSTRAP_STACKS = list_stacks(BOOTSTRAP)


@cache
def evaluated(stack: str) -> Evaluation:
    return evaluate_stack(stack, REPO)


@cache
def evaluated_bootstrap(stack: str) -> Evaluation:
    return evaluate_stack(stack, BOOTSTRAP)


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def evaluation(stack) -> Evaluation:
    return evaluated(stack)


@pytest.fixture
def config(stack) -> StackConfig:
    return load_stack_file(REPO, stack)


def document(value: str | dict) -> dict:
    """IAM documents are recorded as JSON strings (as the provider receives them)."""
    return json.loads(value) if isinstance(value, str) else value
