"""The dask-gateway release the Pulumi program declares (under Pulumi mocks), rendered by Helm's
library: the proxy Service is an internal NLB, the gateway API is TLS in production with the
scheduler proxy a TLS passthrough on its own port, the exported addresses match the Service's
ports and scheme, and JupyterHub auth gets the Secret it mounts."""

from __future__ import annotations

import yaml
from pulumi.runtime import rpc

from dask_platform.config.sources import load_stack_file
from dask_platform.gateway_pods import render_gateway
from dask_platform.gateway_settings import JUPYTERHUB_TOKEN_KEY, JUPYTERHUB_TOKEN_SECRET
from dask_platform.pulumi_eval import evaluate_stack
from tests.unit.conftest import REPO, evaluated

INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"
SSL_CERT = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
SSL_PORTS = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"


def release_values(stack: str) -> dict:
    (release,) = [
        r
        for r in evaluated(stack).of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "dask-gateway"
    ]
    return release.inputs["values"]


def proxy_service(stack: str) -> dict:
    rendered = render_gateway(load_stack_file(REPO, stack), release_values(stack))
    (service,) = [
        o
        for o in rendered.manifests
        if o["kind"] == "Service" and o["metadata"]["name"].startswith("traefik-")
    ]
    return service


def ports(service: dict) -> dict[str, int]:
    return {p["name"]: p["port"] for p in service["spec"]["ports"]}


def test_the_proxy_load_balancer_is_internal(stack):
    service = proxy_service(stack)
    annotations = service["metadata"]["annotations"]
    assert service["spec"]["type"] == "LoadBalancer"
    # The in-tree AWS controller reads these two; "aws-load-balancer-scheme" is only read by
    # the AWS Load Balancer Controller, which this platform does not install.
    assert annotations[INTERNAL] == "true"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert "service.beta.kubernetes.io/aws-load-balancer-scheme" not in annotations
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    # Only nodes running a proxy pod are NLB targets, never Karpenter's spot worker nodes.
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_production_gateway_api_is_tls_and_the_scheduler_port_passes_tls_through():
    config = load_stack_file(REPO, "prod")
    service = proxy_service("prod")
    annotations = service["metadata"]["annotations"]
    assert config.gateway.tls is not None
    assert annotations[SSL_CERT] == config.gateway.tls.certificate_arn
    # Only the web port is a TLS listener; the scheduler port stays TCP so the client's TLS
    # reaches Traefik's SNI routing and the scheduler.
    assert annotations[SSL_PORTS] == "web"
    assert ports(service) == {"web": 443, "tcp": 8786}
    outputs = evaluated("prod").outputs
    # The certificate's name, not the NLB's: clients verify the certificate against it.
    assert outputs["gateway_address"] == "https://dask.earth.example.org"
    assert outputs["gateway_proxy_address"] == "gateway://dask.earth.example.org:8786"


def test_dev_gateway_api_is_plain_http_on_port_80():
    service = proxy_service("dev")
    assert SSL_CERT not in service["metadata"]["annotations"]
    assert ports(service) == {"web": 80, "tcp": 8786}
    outputs = evaluated("dev").outputs
    host = "gateway-proxy.elb.us-west-2.amazonaws.com"
    assert outputs["gateway_address"] == f"http://{host}"
    assert outputs["gateway_proxy_address"] == f"gateway://{host}:8786"


def test_exported_addresses_match_the_rendered_service(stack):
    service = proxy_service(stack)
    outputs = evaluated(stack).outputs
    port = ports(service)
    scheme = "https" if SSL_CERT in service["metadata"]["annotations"] else "http"
    default = {"https": 443, "http": 80}[scheme]
    address = outputs["gateway_address"]
    assert address.startswith(f"{scheme}://")
    assert address.endswith("" if port["web"] == default else f":{port['web']}")
    assert outputs["gateway_proxy_address"].endswith(f":{port['tcp']}")
    # The controller routes scheduler traffic to the "tcp" entrypoint, not the web one.
    rendered = render_gateway(load_stack_file(REPO, stack), release_values(stack))
    assert "proxy_tcp_entrypoint" not in rendered.controller_files["dask_gateway_config.py"]


def test_jupyterhub_auth_gets_its_secret_and_the_values_only_name_it(tmp_path):
    """A stack with `auth.type: jupyterhub`: the program creates the Secret the API pod mounts
    from the Pulumi secret; the values carry its name, never the token."""
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "dask-platform", "runtime": "python", "main": str(REPO / "infra")})
    )
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    document["config"]["dask-platform:gateway"]["auth"] = {
        "type": "jupyterhub",
        "jupyterhub_api_url": "http://hub.jupyterhub.svc.cluster.local:8081/hub/api",
    }
    document["config"]["dask-platform:gateway_jupyterhub_api_token"] = {"secure": "AAABAHg="}
    # dev, in the same account and region, owns the instance metadata defaults.
    document["config"]["dask-platform:ecs"]["imdsv2_account_default"] = False
    (tmp_path / "Pulumi.hub.yaml").write_text(yaml.safe_dump(document))
    evaluation = evaluate_stack("hub", tmp_path)

    (secret,) = evaluation.of_type("kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["name"] == JUPYTERHUB_TOKEN_SECRET
    assert secret.inputs["metadata"]["namespace"] == "dask-gateway"
    # Recorded as Pulumi sends it: wrapped as a secret (encrypted in state).
    string_data = secret.inputs["stringData"]
    assert string_data[rpc._special_sig_key] == rpc._special_secret_sig
    token = string_data["value"][JUPYTERHUB_TOKEN_KEY]
    assert token == "[secret: not decrypted by the offline plan]"

    (release,) = [
        r
        for r in evaluation.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "dask-gateway"
    ]
    values = release.inputs["values"]
    assert values["gateway"]["auth"]["jupyterhub"] == {
        "apiTokenFromSecretName": JUPYTERHUB_TOKEN_SECRET,
        "apiTokenFromSecretKey": JUPYTERHUB_TOKEN_KEY,
        "apiUrl": "http://hub.jupyterhub.svc.cluster.local:8081/hub/api",
    }
    assert token not in str(values)

    # The rendered API pod reads the token from exactly that Secret and key.
    (deployment,) = [
        o
        for o in render_gateway(load_stack_file(REPO, "dev"), values).manifests
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("api-")
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (env,) = [e for e in container["env"] if e["name"] == "JUPYTERHUB_API_TOKEN"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": JUPYTERHUB_TOKEN_SECRET,
        "key": JUPYTERHUB_TOKEN_KEY,
    }
