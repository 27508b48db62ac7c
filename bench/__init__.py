"""Benchmarks of dask-platform, measured side by side in one run and reported as ratios.

``python -m bench`` (what ``make bench`` runs) measures each group - image sizes, time to
workers, the cost of keyless credentials, the offline plan, the test suite - writes
``bench/results/<group>.json`` (with the date, the machine and the git commit) and rewrites the
table in ``bench/README.md``. The machines this runs on are shared and noisy, so every figure is
compared with a baseline taken in the same run; the ratios are what to read.

Tests never assert timings; these files remember them. Importing any module of this package
starts nothing.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
