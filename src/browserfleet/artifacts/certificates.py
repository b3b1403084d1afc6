"""CA certificates (`/v1/certificates`): what an upload must be, and the certificates a session trusts.

An upload is one X.509 certificate, PEM or DER, that is a CA's (basicConstraints CA:TRUE, and a keyUsage
allowing certificate signing if it has one) and is valid now; anything else is an `InvalidRequest` that
says which. It is kept as normalised PEM text in the store (`Certificate.pem`: certificates are public
and a few KiB, so no blob). `trusted` loads a create's `proxySettings.caCertificates` for its browser,
which adds them to its trust store once it is taken (`browsers/trust.py`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from browserfleet.browsers.spec import TrustedCa
from browserfleet.errors import InvalidRequest, NotFound
from browserfleet.store.models import Certificate
from browserfleet.store.repo import Store

MAX_BYTES = 64 * 1024  # a certificate is a few KiB; a bundle of a whole store is not one certificate


@dataclass(frozen=True)
class ParsedCa:
    pem: str
    der: bytes
    subject: str
    sha256: str  # of the DER


def parse(data: bytes, now: datetime | None = None) -> ParsedCa:
    """The CA certificate `data` holds (PEM or DER), or an InvalidRequest saying what it is instead."""
    certificate = _load(data)
    try:  # parsed lazily: a malformed field shows only when it is read
        _check_ca(certificate, now or datetime.now(UTC))
        der = certificate.public_bytes(Encoding.DER)
        return ParsedCa(
            pem=certificate.public_bytes(Encoding.PEM).decode("ascii"),
            der=der,
            subject=certificate.subject.rfc4514_string(),
            sha256=hashlib.sha256(der).hexdigest(),
        )
    except InvalidRequest:
        raise
    except Exception as exc:  # ValueError, UnsupportedGeneralNameType, DuplicateExtension…
        raise InvalidRequest(f"The certificate cannot be read: {exc}") from None


def _load(data: bytes) -> x509.Certificate:
    if not data.strip():
        raise InvalidRequest("The file is empty: upload a CA certificate (PEM or DER)")
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" in data:
            raise InvalidRequest("The file holds a private key: upload the CA certificate alone, never a key")
        try:
            found = x509.load_pem_x509_certificates(data)
        except Exception:  # as below
            raise InvalidRequest(
                "The file is PEM but holds no readable certificate (-----BEGIN CERTIFICATE-----)"
            ) from None
        if len(found) != 1:
            raise InvalidRequest(f"The file holds {len(found)} certificates: upload one at a time")
        return found[0]
    try:
        return x509.load_der_x509_certificate(data)
    except Exception:  # cryptography's parse errors are of several classes (ValueError, InvalidVersion…)
        raise InvalidRequest("The file is not an X.509 certificate (PEM or DER)") from None


def _check_ca(certificate: x509.Certificate, now: datetime) -> None:
    try:
        extensions = certificate.extensions
    except Exception as exc:  # of several classes, as in parse
        raise InvalidRequest(f"The certificate's extensions cannot be read: {exc}") from None
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise InvalidRequest(
            "The certificate is not a CA certificate: it has no basicConstraints extension (a CA's says "
            "CA:TRUE). Upload the CA that issued your certificates"
        ) from None
    if not constraints.ca:
        raise InvalidRequest(
            "The certificate is not a CA certificate (basicConstraints CA:FALSE, e.g. a server's own "
            "certificate): upload the CA that issued it"
        )
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise InvalidRequest("The certificate's keyUsage does not allow signing certificates (keyCertSign)")
    if (ends := certificate.not_valid_after_utc) < now:
        raise InvalidRequest(f"The CA certificate expired on {ends:%Y-%m-%d %H:%M} UTC")
    if (starts := certificate.not_valid_before_utc) > now:
        raise InvalidRequest(f"The CA certificate is not valid before {starts:%Y-%m-%d %H:%M} UTC")


def _uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


async def trusted(store: Store, project_id: str, ids: list[str]) -> tuple[TrustedCa, ...]:
    """The project's certificates named by `ids` (each once, in order); NotFound names the first that is
    not one of them (unknown, deleted, another project's)."""
    found: list[TrustedCa] = []
    for certificate_id in dict.fromkeys(ids):
        row = await store.resource(Certificate, certificate_id, project_id) if _uuid(certificate_id) else None
        if row is None:
            raise NotFound(f"Certificate {certificate_id[:100]} not found (proxySettings.caCertificates)")
        der = x509.load_pem_x509_certificate(row.pem.encode("ascii")).public_bytes(Encoding.DER)
        found.append(TrustedCa(row.id, der))
    return tuple(found)
