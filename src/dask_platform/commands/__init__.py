"""CLI command groups: one module per group, each registered in dask_platform.cli."""
