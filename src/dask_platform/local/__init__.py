"""The embedded local platform: the whole keyless-S3 path on one machine.

Real parts stand in for the cloud (docs/explanation/design.md): an AWS emulator (moto in server
mode with IAM enforcement), an OIDC issuer playing the EKS issuer and kubelet token projection,
and a real dask-gateway-server loading the same gateway config file as EKS. Importing any module
of this package starts nothing; `dask-platform local up` (dask_platform.local.platform) does.
"""
