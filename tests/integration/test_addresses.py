"""A wrong gateway or proxy address fails within seconds, naming the address and what answered
there - for a plain dask-gateway client (the client environment's fix) and for the multi-site
client, which checks its outputs file's addresses before use. Real listeners on 127.0.0.1: the
local gateway, its internal API server, a plain HTTP server and a TLS-terminating relay."""

from __future__ import annotations

import datetime
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dask_platform.gateway_probe import GatewayAddressError
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.processes import free_port
from dask_platform.sites import MultiSiteCluster, SiteCatalog, SitesUnavailableError


class _NotAGateway(http.server.BaseHTTPRequestHandler):
    server_version = "NotAGateway/1.0"
    sys_version = ""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.crt", directory / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A listener that terminates TLS itself (as a TLS load balancer would)."""
    cert_file, key_file = _self_signed(tmp_path_factory.mktemp("relay"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def _api_port(platform: LocalPlatform) -> int:
    overlay = json.loads((platform.site_dir(platform.sites[0]) / "overlay.json").read_text())
    return int(overlay["api_port"])


def _gateway(platform: LocalPlatform, address: str, proxy_address: str) -> Any:
    from dask_gateway import BasicAuth, Gateway

    gateway = Gateway(
        address,
        proxy_address=proxy_address,
        auth=BasicAuth("alice", platform.passwords()["alice"]),
    )
    return gateway


def _running(platform: LocalPlatform) -> set[str]:
    outputs = platform.outputs()
    gateway = _gateway(platform, outputs["gateway_address"], outputs["gateway_proxy_address"])
    return {c.name for c in gateway.list_clusters()}


@pytest.mark.timeout(120)
def test_a_proxy_address_that_is_an_http_server_fails_naming_it(
    platform: LocalPlatform,
) -> None:
    proxy = f"gateway://127.0.0.1:{_api_port(platform)}"
    gateway = _gateway(platform, platform.outputs()["gateway_address"], proxy)
    before = _running(platform)
    with pytest.raises(GatewayAddressError) as caught:
        gateway.new_cluster()
    assert str(caught.value) == (
        f"proxy address {proxy}: an HTTP server answered ('HTTP/1.0 400 Bad Request'), "
        "not the proxy"
    )
    assert _running(platform) == before  # the cluster it had started is stopped


@pytest.mark.timeout(120)
def test_a_relay_that_terminates_tls_fails_naming_it(
    platform: LocalPlatform, tls_relay: str
) -> None:
    proxy = f"gateway://{tls_relay}"
    gateway = _gateway(platform, platform.outputs()["gateway_address"], proxy)
    with pytest.raises(GatewayAddressError) as caught:
        gateway.new_cluster()
    assert str(caught.value) == (
        f"proxy address {proxy}: a TLS endpoint that terminates TLS itself answered (a load "
        "balancer or relay with its own certificate?); gateway:// needs TCP passthrough to "
        "the proxy, which routes the scheduler's own TLS by SNI"
    )


@pytest.mark.parametrize("kind", ["http-server", "nothing-listens"])
def test_a_wrong_gateway_address_fails_naming_it(
    kind: str, platform: LocalPlatform, http_server: str
) -> None:
    if kind == "http-server":
        address = f"http://{http_server}"
        expected = (
            f"gateway address {address}: NotAGateway/1.0 answered {address}/api/health with "
            "HTTP 404, not dask-gateway's health report"
        )
    else:
        address = f"http://127.0.0.1:{free_port()}"
        expected = (
            f"gateway address {address}: the connection failed ([Errno 111] Connection refused)"
        )
    gateway = _gateway(platform, address, platform.outputs()["gateway_proxy_address"])
    with pytest.raises(GatewayAddressError) as caught:
        gateway.list_clusters()
    assert str(caught.value) == expected


@pytest.mark.timeout(120)
def test_the_multisite_client_checks_its_outputs_file_before_use(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    from dask_gateway import BasicAuth

    outputs = dict(platform.outputs())
    proxy = f"gateway://127.0.0.1:{_api_port(platform)}"
    outputs["gateway_proxy_address"] = proxy
    outputs_file = tmp_path / "local.json"
    outputs_file.write_text(json.dumps(outputs))
    catalog = SiteCatalog.from_outputs([outputs_file])
    multi = MultiSiteCluster(
        catalog, auth=BasicAuth("alice", platform.passwords()["alice"]), timeout=60
    )
    before = _running(platform)
    with pytest.raises(SitesUnavailableError) as caught, pytest.warns(RuntimeWarning):
        multi.new_cluster(workers=1, adapt=False)
    site = outputs["site"]["name"]
    assert caught.value.failures == {
        site: (
            f"{outputs_file}: proxy address {proxy}: an HTTP server answered "
            "('HTTP/1.0 400 Bad Request'), not the proxy"
        )
    }
    assert _running(platform) == before  # nothing was started
