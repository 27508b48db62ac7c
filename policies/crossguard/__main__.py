"""Entry point of the dask-platform CrossGuard pack: builds the PolicyPack and nothing else.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks until the Pulumi engine
is done with it, so this file is run by the engine only; the rules are in
``dask_platform.guard.rules`` and registered in ``dask_platform.guard.policies``.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from dask_platform.guard.policies import PACK_DESCRIPTION, PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    description=PACK_DESCRIPTION,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
