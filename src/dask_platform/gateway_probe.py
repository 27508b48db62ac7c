"""Is a dask-gateway there? A check of the gateway and proxy addresses that answers in seconds,
naming the address and what answered there - instead of dask-gateway's 61 s ``Timed out trying
to connect to gateway://...`` when the proxy address is wrong.

* the gateway address must answer ``GET <address>/api/health`` with dask-gateway's health JSON;
* the proxy address must behave like dask-gateway's proxy: it routes raw TLS by SNI
  (``daskgateway-<cluster>``) and closes a connection whose SNI names no cluster without a
  byte. An HTTP server answers plain text; a relay that terminates TLS answers a ServerHello (it
  cannot carry ``gateway://`` connections: the scheduler's own certificate must reach the
  client); a port with no listener refuses; a silent listener answers nothing.

ref: https://gateway.dask.org/install-kube.html (the proxy's TLS passthrough by SNI)
ref: dask-gateway-server's proxy (``dask-gateway-proxy``: SNI routing, ``daskgateway-`` prefix)
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlparse

import requests

PROBE_TIMEOUT_SECONDS = 5.0
"""How long one probe waits for a connection or an answer (a gateway answers in milliseconds)."""
PROBE_SERVER_NAME = "daskgateway-address-probe"
"""SNI of the proxy probe: the proxy's prefix with a name no cluster has."""


class GatewayAddressError(ConnectionError):
    """The gateway or proxy address does not lead to dask-gateway; the message says why."""


@dataclass(frozen=True)
class ProxyAnswer:
    ok: bool
    what: str


def _host_port(proxy_address: str) -> tuple[str, int]:
    parsed = urlparse(proxy_address if "://" in proxy_address else f"gateway://{proxy_address}")
    if not parsed.hostname or parsed.port is None:
        raise GatewayAddressError(
            f"proxy address {proxy_address!r}: expected gateway://<host>:<port>"
        )
    return parsed.hostname, parsed.port


def probe_proxy(proxy_address: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> ProxyAnswer:
    """Send a TLS ClientHello with an SNI no cluster has; classify the answer (no exception for
    a wrong answer: ``ok`` is False and ``what`` says what answered)."""
    host, port = _host_port(proxy_address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return ProxyAnswer(False, f"no answer to a TCP connection within {timeout:g}s")
    except OSError as exc:
        return ProxyAnswer(False, f"the connection failed ({exc.strerror or exc})")
    with sock:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=PROBE_SERVER_NAME)
        # Writes the ClientHello to `outgoing`, then wants the server's answer.
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        try:
            sock.sendall(outgoing.read())
            data = sock.recv(4096)
        except TimeoutError:
            return ProxyAnswer(
                False,
                f"something accepted the connection but answered nothing within {timeout:g}s",
            )
        except ConnectionResetError:
            data = b""
    if not data:
        return ProxyAnswer(True, "the dask-gateway proxy (TLS passed through by SNI)")
    if data.startswith(b"HTTP/"):
        status = data.split(b"\r\n", 1)[0].decode("latin-1")
        return ProxyAnswer(False, f"an HTTP server answered ({status!r}), not the proxy")
    if data[0] == 0x16:  # a TLS handshake record: the endpoint terminates TLS itself
        return ProxyAnswer(
            False,
            "a TLS endpoint that terminates TLS itself answered (a load balancer or relay with "
            "its own certificate?); gateway:// needs TCP passthrough to the proxy, which "
            "routes the scheduler's own TLS by SNI",
        )
    text = data[:200].decode("latin-1")
    if text.isprintable() or text.lstrip().startswith("<"):
        first = text.strip().splitlines()[0][:80] if text.strip() else text
        return ProxyAnswer(False, f"a plain-text service answered ({first!r}), not the proxy")
    return ProxyAnswer(False, f"an unknown service answered ({data[:32]!r})")


def check_gateway(
    address: str, timeout: float = PROBE_TIMEOUT_SECONDS, http_proxy: str | None = None
) -> None:
    """Raise :class:`GatewayAddressError` unless ``address`` answers dask-gateway's health.

    ``http_proxy``: the HTTP proxy the dask-gateway client itself uses for ``address`` (its
    ``gateway.http-client.proxy`` setting, resolved), so the check takes the client's path.
    """
    url = f"{address.rstrip('/')}/api/health"
    session = requests.Session()
    session.trust_env = False
    if http_proxy:
        session.proxies = {"http": http_proxy, "https": http_proxy}
    try:
        with session:
            response = session.get(url, timeout=timeout)
    except requests.Timeout:
        raise GatewayAddressError(
            f"gateway address {address}: no answer within {timeout:g}s"
        ) from None
    except requests.RequestException as exc:
        found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
        reason = found.group(0) if found else type(exc).__name__
        raise GatewayAddressError(
            f"gateway address {address}: the connection failed ({reason})"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    # ref: dask-gateway-server's /api/health: {"status": "pass" | "warn" | "fail", ...}
    if not (isinstance(body, dict) and body.get("status") in ("pass", "warn", "fail")):
        server = response.headers.get("Server", "").strip() or "a server without a name"
        raise GatewayAddressError(
            f"gateway address {address}: {server} answered {url} with HTTP "
            f"{response.status_code}, not dask-gateway's health report"
        )


def check_proxy(proxy_address: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Raise :class:`GatewayAddressError` unless ``proxy_address`` behaves like the proxy."""
    answer = probe_proxy(proxy_address, timeout)
    if not answer.ok:
        raise GatewayAddressError(f"proxy address {proxy_address}: {answer.what}")


def check_addresses(
    address: str, proxy_address: str, timeout: float = PROBE_TIMEOUT_SECONDS
) -> None:
    """Both checks: the gateway address, then the proxy address."""
    check_gateway(address, timeout)
    check_proxy(proxy_address, timeout)
