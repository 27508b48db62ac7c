"""OIDC authentication for dask-gateway: the client side (:mod:`.client`, a ``GatewayAuth``
that logs in with the password or device-code grant and refreshes before expiry) and the
gateway side (:mod:`.gateway`, a dask-gateway-server ``Authenticator`` validating bearer JWTs
against the issuer's JWKS). Importing this package imports neither.
"""
