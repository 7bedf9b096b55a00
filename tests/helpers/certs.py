"""Throw-away X.509 certificates for TLS tests: a CA, certificates it signs, written as PEM files.

    ca = CertificateAuthority.create("test CA")
    server = ca.issue("server", hosts=["127.0.0.1", "localhost"])   # SANs: IP addresses and DNS names
    client = ca.issue("client", client=True)
    paths = server.write(tmp_path / "server")                       # (cert.pem, key.pem)

EC P-256 keys (fast to generate), one day of validity.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, stem: Path) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key``; returns both paths."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        cert, key = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert.write_bytes(self.cert_pem())
        key.write_bytes(self.key_pem())
        return cert, key


@dataclass(frozen=True)
class CertificateAuthority(Issued):
    """A self-signed CA that issues server and client certificates."""

    @classmethod
    def create(cls, common_name: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (_builder(common_name, _name(common_name), key)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                       .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                    content_commitment=False, key_encipherment=False,
                                                    data_encipherment=False, key_agreement=False,
                                                    encipher_only=False, decipher_only=False), critical=True)
                       .sign(key, hashes.SHA256()))
        return cls(certificate, key)

    def issue(self, common_name: str, hosts: Sequence[str] = (), client: bool = False) -> Issued:
        """A leaf certificate for a server (``hosts`` as SANs) or, with ``client``, for a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (_builder(common_name, self.certificate.subject, key)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)
