"""The local cluster's keys and certificates, made with the openssl command line.

One CA signs the API server's serving certificate (so clients verify it, and the controller-manager
publishes it to pods as kube-root-ca.crt) and the client certificates the node needs; the
service-account tokens are signed with an RSA key of their own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import require

CA = "ca"
SERVICE_ACCOUNT = "sa"


def _openssl(*args: str) -> None:
    openssl = require("openssl", "apt-get install openssl")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"openssl {args[0]} failed: {result.stderr.strip()[-1000:]}")


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    path.chmod(0o600)


def make_ca(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    _key(pki / f"{CA}.key")
    _openssl(
        "req", "-x509", "-new", "-key", str(pki / f"{CA}.key"), "-subj", "/CN=stockpipe-local-ca",
        "-days", "3650", "-out", str(pki / f"{CA}.crt"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def make_service_account_key(pki: Path) -> None:
    _key(pki / f"{SERVICE_ACCOUNT}.key")
    _openssl("pkey", "-in", str(pki / f"{SERVICE_ACCOUNT}.key"), "-pubout", "-out", str(pki / f"{SERVICE_ACCOUNT}.pub"))


def issue(
    pki: Path,
    name: str,
    common_name: str,
    *,
    organization: str | None = None,
    server_names: Iterable[str] = (),
    server_ips: Iterable[str] = (),
    client: bool = False,
) -> tuple[Path, Path]:
    """A leaf certificate signed by the local CA: (certificate, key)."""
    key, csr, crt, ext = (pki / f"{name}{suffix}" for suffix in (".key", ".csr", ".crt", ".ext"))
    _key(key)
    subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    alt_names = [f"DNS:{dns}" for dns in server_names] + [f"IP:{ip}" for ip in server_ips]
    usages = (["serverAuth"] if alt_names else []) + (["clientAuth"] if client else [])
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    if alt_names:
        lines.append(f"subjectAltName={','.join(alt_names)}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / f"{CA}.crt"), "-CAkey", str(pki / f"{CA}.key"),
        "-CAcreateserial", "-days", "365", "-extfile", str(ext), "-out", str(crt),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return crt, key
