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

It also makes a store profile's ``region`` hold for that profile. botocore looks a region up in
the order instance variable (``region_name=``), ``AWS_DEFAULT_REGION``, then the profile; the EKS
pod-identity webhook, ECS and the local platform set ``AWS_DEFAULT_REGION`` (the team's own
region), which would otherwise replace every store's region and a store that checks the signing
region would refuse the request. So when ``botocore.session`` is first imported,
``Session.get_config_variable("region")`` returns the profile's ``region`` where the session's
profile is a platform object store profile (it has ``dask_platform_secret_id``) that has one and
no ``region_name`` was given (:func:`dask_platform.object_stores.store_profile_region`). Every
other session, the team's own calls included, keeps botocore's order. And a session whose
profile comes from ``AWS_PROFILE``/``AWS_DEFAULT_PROFILE`` and is a store profile gets it as if
given explicitly: botocore reads IRSA's ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE`` before a
profile's ``credential_process`` unless the profile was explicit (``disable_env_vars`` in
``create_credential_resolver``), so the store would otherwise get the team's web identity.

:func:`install` runs at every interpreter start, from a .pth: the dask_platform wheel's (client
environments, the local platform's venv workers, the notebook image) and the worker image's
(which has no dask_platform package: there this file and ``object_stores.py`` are installed as
top-level modules, ``dask_platform_aws_profile_hint`` and ``dask_platform_object_stores``). It
imports ``os`` and ``sys`` only and never botocore: it places a finder on ``sys.meta_path``.

ref: https://docs.python.org/3/reference/import.html#the-meta-path
ref: botocore/session.py (``get_scoped_config``, ``get_config_variable``),
botocore/credentials.py (``create_credential_resolver``) and
botocore/exceptions.py (``BotoCoreError``)
ref: https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html
"""

from __future__ import annotations

import os
import sys

PATCHED_MODULE = "botocore.exceptions"
SESSION_MODULE = "botocore.session"
HINT_KWARG = "dask_platform_hint"
"""The key of ``ProfileNotFound.kwargs`` holding the added sentence. botocore pickles its errors
as (class, kwargs) and rebuilds them with ``cls(**kwargs)``, so the sentence written on a worker
reaches the client that receives the error (where this hook is installed too: the wheel's .pth)
instead of being recomputed there, against the client's own config."""
_MARK = "_dask_platform_profile_hint"
OBJECT_STORES_MODULES = ("dask_platform.object_stores", "dask_platform_object_stores")
"""Where the sentence comes from: the package's module, or the worker image's top-level copy."""


def _object_stores() -> object | None:
    import importlib

    for name in OBJECT_STORES_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _hint(profile: str) -> str | None:
    module = _object_stores()
    if module is None:
        return None
    hint: str | None = module.profile_not_found_hint(profile, os.environ)  # type: ignore[attr-defined]
    return hint


def _store_region(session: object) -> str | None:
    """The region of ``session``'s profile if it is a platform store profile with one and the
    session was given no ``region_name``; None otherwise (and on any error: botocore decides)."""
    if getattr(session, "_session_instance_vars", {}).get("region") is not None:
        return None
    module = _object_stores()
    if module is None:
        return None
    try:
        profile = session.profile  # type: ignore[attr-defined]
        if profile is None:
            return None
        config = session.full_config.get("profiles", {}).get(profile)  # type: ignore[attr-defined]
        region: str | None = module.store_profile_region(config)  # type: ignore[attr-defined]
    except Exception:  # a config botocore cannot read: its own lookup reports that
        return None
    return region


def _environment_store_profile(session: object) -> str | None:
    """The profile ``AWS_PROFILE``/``AWS_DEFAULT_PROFILE`` gives ``session`` when it is a
    platform store profile and the session was given none; None otherwise (and on any error)."""
    if not (os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")):
        return None
    if getattr(session, "_session_instance_vars", {}).get("profile") is not None:
        return None
    module = _object_stores()
    if module is None:
        return None
    try:
        profile = session.get_config_variable("profile")  # type: ignore[attr-defined]
        config = session.full_config.get("profiles", {}).get(profile)  # type: ignore[attr-defined]
        if not config or module.SECRET_ID_KEY not in config:  # type: ignore[attr-defined]
            return None
    except Exception:  # a config botocore cannot read: its own lookup reports that
        return None
    return str(profile)


def extend_session(session_module: object) -> bool:
    """Make ``session_module.Session.get_config_variable("region")`` (botocore's, and so
    aiobotocore's subclass) return a store profile's region (:func:`_store_region`), and make a
    store profile named by ``AWS_PROFILE``/``AWS_DEFAULT_PROFILE`` count as given explicitly
    (:func:`_environment_store_profile`): botocore's credential chain reads IRSA's
    ``AWS_ROLE_ARN``/``AWS_WEB_IDENTITY_TOKEN_FILE`` before a profile's ``credential_process``
    unless the profile was explicit, so the store would get the team's web identity (its STS
    call sent to the store's ``endpoint_url``). False if it already does."""
    session_class = session_module.Session  # type: ignore[attr-defined]
    if getattr(session_class, _MARK, False):
        return False
    upstream = session_class.get_config_variable
    upstream_init = session_class.__init__

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        upstream_init(self, *args, **kwargs)
        profile = _environment_store_profile(self)
        if profile is not None:
            self.set_config_variable("profile", profile)  # type: ignore[attr-defined]

    def get_config_variable(self: object, logical_name: str, methods: object = None) -> object:
        if logical_name == "region" and methods is None:
            region = _store_region(self)
            if region:
                return region
        return upstream(self, logical_name, methods)

    session_class.get_config_variable = get_config_variable
    session_class.__init__ = __init__
    setattr(session_class, _MARK, True)
    return True


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


EXTENSIONS = {PATCHED_MODULE: extend, SESSION_MODULE: extend_session}
"""botocore module -> what extends it once it is loaded."""


class _Loader:
    """Loads one module with its normal loader, then extends it."""

    def __init__(self, loader: object, fullname: str) -> None:
        self._loader = loader
        self._fullname = fullname

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)  # type: ignore[attr-defined]

    def exec_module(self, module: object) -> None:
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        EXTENSIONS[self._fullname](module)


class _ExtendOnImport:
    """A meta path finder: finds the modules of :data:`EXTENSIONS` with the normal machinery,
    then extends each once loaded."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname not in EXTENSIONS:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, fullname)  # type: ignore[assignment]
        return spec


def install() -> None:
    """Extend botocore's ``ProfileNotFound`` and ``Session`` when their modules are imported
    (now, where they already are). Harmless to call again, from either copy of this module."""
    for name, extension in EXTENSIONS.items():
        if name in sys.modules:
            extension(sys.modules[name])
    if all(name in sys.modules for name in EXTENSIONS):
        return
    if not any(getattr(finder, _MARK, False) for finder in sys.meta_path):
        finder = _ExtendOnImport()
        setattr(finder, _MARK, True)
        sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
