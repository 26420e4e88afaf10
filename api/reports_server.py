"""The TLS listener of the aggregated reports API (see ``reports``).

Only the Kubernetes API server's front proxy may connect: the listener requires a client
certificate signed by the front-proxy CA, read from the ``extension-apiserver-authentication``
ConfigMap in ``kube-system`` (the API server publishes it there) unless a file is configured.
Keep that CA dedicated to the front proxy, as Kubernetes advises: uvicorn does not show the
peer's name to the app, so ``requestheader-allowed-names`` is not checked here.

The serving certificate is self-signed at start unless one is configured; the chart's
APIService says ``insecureSkipTLSVerify`` for that case (as metrics-server's does).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifq.api.authz import subject_access_reviewer
from notifq.api.reports import create_reports_app
from notifq.core.db import open_pool
from notifq.core.settings import ApiSettings

log = logging.getLogger(__name__)

AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")
CA_KEY = "requestheader-client-ca-file"


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A fresh key and a one-year self-signed certificate for ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_file, 0o600)
    return cert_file, key_file


def front_proxy_ca(api_client: Any) -> str:
    """The front-proxy CA bundle the API server publishes for aggregated API servers."""
    from kubernetes import client as k8s

    namespace, name = AUTH_CONFIGMAP
    cm = k8s.CoreV1Api(api_client).read_namespaced_config_map(name, namespace, _request_timeout=10)
    bundle = (cm.data or {}).get(CA_KEY, "")
    if not bundle.strip():
        raise RuntimeError(
            f"{namespace}/{name} has no {CA_KEY}: the API server runs without the aggregation "
            "layer (--requestheader-client-ca-file); turn reports off or configure it"
        )
    return str(bundle)


def kube_client() -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    cfg = k8s.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=cfg)
        return k8s.ApiClient(cfg)
    return k8s_config.new_client_from_config()


async def build_server(settings: ApiSettings, stack: AsyncExitStack) -> uvicorn.Server:
    """The reports listener, ready to ``serve()``; resources close with ``stack``."""
    api_client = kube_client()
    stack.callback(api_client.close)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="notifq-reports-")))
    if settings.reports_client_ca_file:
        ca_file = Path(settings.reports_client_ca_file)
    else:
        ca_file = tmp / "front-proxy-ca.crt"
        ca_file.write_text(front_proxy_ca(api_client))
    if settings.reports_cert_file and settings.reports_key_file:
        cert_file, key_file = Path(settings.reports_cert_file), Path(settings.reports_key_file)
    else:
        cert_file, key_file = self_signed(tmp, "notifq-reports")
    pool = await open_pool(settings.database_url, max_size=2, check=True)
    stack.push_async_callback(pool.close)
    app = create_reports_app(pool, subject_access_reviewer(api_client))
    config = uvicorn.Config(
        app,
        host=settings.reports_host,
        port=settings.reports_port,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        ssl_ca_certs=str(ca_file),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        log_config=None,
        access_log=False,
    )
    log.info("reports API (%s) on port %d, TLS, front-proxy clients only", "reports.notifq.dev",
             settings.reports_port)  # fmt: skip
    return uvicorn.Server(config)
