"""A software WebAuthn authenticator for tests (test tooling, not product crypto).

It answers `navigator.credentials.create()` and `.get()` options as a platform authenticator
would, with attestation `none`, an ES256 key per credential (cryptography) and CBOR from cbor2,
and returns the browser's JSON (`PublicKeyCredential.toJSON()`). Each answer can be bent the ways
an attacker or a broken client would: another origin in the client data, another RP ID hash, no
user verification, a sign count that goes backwards, another challenge; and any answer can be
sent twice (a replay).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    credentials: list[Credential] = field(default_factory=list)

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        user_verified: bool = True,
        challenge: bytes | None = None,
    ) -> dict[str, Any]:
        """A registration response (RegistrationResponseJSON) to creation options."""
        rp = rp_id or options["rp"]["id"]
        cred = Credential(
            secrets.token_bytes(32),
            ec.generate_private_key(ec.SECP256R1()),
            options["rp"]["id"],
            unb64url(options["user"]["id"]),
        )
        client_data = self._client_data(
            "webauthn.create", challenge or unb64url(options["challenge"]), origin
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([UP | AT | (UV if user_verified else 0)])
            + cred.sign_count.to_bytes(4, "big")
            + bytes(16)  # AAGUID: none
            + len(cred.credential_id).to_bytes(2, "big")
            + cred.credential_id
            + cred.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(cred)
        return {
            "id": b64url(cred.credential_id),
            "rawId": b64url(cred.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        credential: Credential | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        sign_count: int | None = None,
        challenge: bytes | None = None,
    ) -> dict[str, Any]:
        """An assertion (AuthenticationResponseJSON) by a discoverable credential for the RP."""
        cred = credential or next(c for c in self.credentials if c.rp_id == options["rpId"])
        cred.sign_count = cred.sign_count + 1 if sign_count is None else sign_count
        rp = rp_id or options["rpId"]
        client_data = self._client_data(
            "webauthn.get", challenge or unb64url(options["challenge"]), origin
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([UP | (UV if user_verified else 0)])
            + cred.sign_count.to_bytes(4, "big")
        )
        signature = cred.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(cred.credential_id),
            "rawId": b64url(cred.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(cred.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    @staticmethod
    def _client_data(kind: str, challenge: bytes, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": b64url(challenge), "origin": origin, "crossOrigin": False}
        ).encode()
