"""Policy as code: the rules of the CrossGuard pack (``policies/crossguard``), the offline gate
that runs them over a stack evaluated under mocks (``dask-platform plan``), and the IAM/image
linters.

Modules: ``rules`` (the validators), ``policies`` (policy objects + pack config), ``runner`` (the
offline gate), ``documents`` (every IAM document of a stack), ``lint`` (parliament,
cloudsplaining, checkov), ``report`` (rich output for the plan). Importing any of them starts
nothing; the pack's entry point is the only place a ``PolicyPack`` is constructed.
"""
