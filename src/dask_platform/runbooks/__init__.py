"""The runbooks' logic: what `dask-platform outputs`, `verify-workers` and `clusters` do.

The commands (dask_platform.commands.{outputs,verify,clusters}) only parse options and print;
the checks live here so that tests and other tools call the same code. Functions that run ON a
scheduler or worker are in :mod:`.remote` and travel by value, so production workers need
nothing of this project installed.
"""
