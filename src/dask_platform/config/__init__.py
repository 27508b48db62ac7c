"""The stack configuration (``Pulumi.<stack>.yaml``), split by job:

- :mod:`~dask_platform.config.types`: constrained value types and the strict base model;
- :mod:`~dask_platform.config.models`: the pydantic models, one module per section;
- :mod:`~dask_platform.config.errors`: the one way a problem is reported (key path first);
- :mod:`~dask_platform.config.rules`: rules that span sections, checked on the raw mapping, and
  :func:`~dask_platform.config.rules.validate_stack_config`, which reports them with the
  field errors;
- :mod:`~dask_platform.config.sources`: reading stack files and the running program's config.
"""
