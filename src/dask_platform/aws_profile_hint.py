"""An unknown AWS profile on a platform process names the profiles the team can use.

botocore has no hook for an unknown profile: ``Session.get_scoped_config`` raises
``ProfileNotFound(profile=name)`` itself, for ``boto3.Session(profile_name=...)``, an
``AWS_PROFILE`` naming no profile, and s3fs's ``profile=`` (aiobotocore's session is botocore's),
before any platform code runs. So this module extends that class in place when
``botocore.exceptions`` is first imported: where ``AWS_CONFIG_FILE`` is the platform's AWS config
file, the error reads::

    The config profile (osn-typo) could not be found: 'osn-typo' is not an object store of this
    platform; profiles team 'hydrology' can use: osn-renci (from AWS_CONFIG_FILE=/etc/...)

(the sentence after the colon is :func:`dask_platform.object_stores.unknown_profile_message`).
Elsewhere botocore's message is unchanged. The class stays the same object, so ``except
ProfileNotFound`` keeps working.

:func:`install` runs at every interpreter start, from a .pth: the dask_platform wheel's (client
environments, the local platform's venv workers, the notebook image) and the worker image's
(which has no dask_platform package: there this file and ``object_stores.py`` are installed as
top-level modules, ``dask_platform_aws_profile_hint`` and ``dask_platform_object_stores``). It
imports ``os`` and ``sys`` only and never botocore: it places a finder on ``sys.meta_path``.

ref: https://docs.python.org/3/reference/import.html#the-meta-path
ref: botocore/session.py (``get_scoped_config``) and botocore/exceptions.py (``BotoCoreError``)
"""

from __future__ import annotations

import os
import sys

PATCHED_MODULE = "botocore.exceptions"
HINT_KWARG = "dask_platform_hint"
"""The key of ``ProfileNotFound.kwargs`` holding the added sentence. botocore pickles its errors
as (class, kwargs) and rebuilds them with ``cls(**kwargs)``, so the sentence written on a worker
reaches the client that receives the error (where this hook is installed too: the wheel's .pth)
instead of being recomputed there, against the client's own config."""
_MARK = "_dask_platform_profile_hint"
OBJECT_STORES_MODULES = ("dask_platform.object_stores", "dask_platform_object_stores")
"""Where the sentence comes from: the package's module, or the worker image's top-level copy."""


def _hint(profile: str) -> str | None:
    import importlib

    for name in OBJECT_STORES_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        hint: str | None = module.profile_not_found_hint(profile, os.environ)
        return hint
    return None


def extend(exceptions: object) -> bool:
    """Extend ``exceptions.ProfileNotFound`` (botocore's) in place; False if it already is (the
    notebook image runs both .pth files)."""
    error_class = exceptions.ProfileNotFound  # type: ignore[attr-defined]
    if getattr(error_class, _MARK, False):
        return False
    upstream_init = error_class.__init__

    def __init__(self: object, **kwargs: object) -> None:
        if HINT_KWARG not in kwargs:
            hint = _hint(str(kwargs.get("profile")))
            if hint:
                kwargs[HINT_KWARG] = hint
        upstream_init(self, **kwargs)  # botocore's fmt ignores the extra key
        if kwargs.get(HINT_KWARG):
            args = self.args  # type: ignore[attr-defined]
            self.args = (f"{args[0]}: {kwargs[HINT_KWARG]}", *args[1:])  # type: ignore[attr-defined]

    error_class.__init__ = __init__
    setattr(error_class, _MARK, True)
    return True


class _ExtendOnImport:
    """A meta path finder: finds ``botocore.exceptions`` with the normal machinery, then
    extends it once loaded."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != PATCHED_MODULE:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self  # type: ignore[assignment]
        return spec

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)  # type: ignore[arg-type]

    def exec_module(self, module: object) -> None:
        self._loader.exec_module(module)  # type: ignore[arg-type]
        extend(module)


def install() -> None:
    """Extend botocore's ``ProfileNotFound`` when ``botocore.exceptions`` is imported (now, if
    it already is). Harmless to call again, from either copy of this module."""
    if PATCHED_MODULE in sys.modules:
        extend(sys.modules[PATCHED_MODULE])
    elif not any(getattr(finder, _MARK, False) for finder in sys.meta_path):
        finder = _ExtendOnImport()
        setattr(finder, _MARK, True)
        sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
