"""Our WebAuthn relying party: every verification is py_webauthn's (Duo Labs); this module only
says what we expect of a ceremony and turns the library's answers into ours.

What we expect: the RP ID is the host of CAO_PUBLIC_URL; the client data's origin is one the
settings allow (CAO_PUBLIC_URL's origin, and http://localhost:<port> outside production), and
it is checked here first so the library is then given that one origin to compare exactly; user
verification is required; attestation is `none` (we need no statement about the authenticator's
make, and asking for one would only collect data); the sign count never goes backwards (the
library refuses a count that is not greater than the stored one, unless both are 0, which
authenticators without a counter send).

Credentials arrive as the browser's JSON (RegistrationResponseJSON, AuthenticationResponseJSON,
what `PublicKeyCredential.toJSON()` gives); options leave as the JSON the browser's
`PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON` take.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import webauthn
from webauthn.helpers import (
    base64url_to_bytes,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from shared.settings import Settings

RP_NAME = "CloudAgencyOps"
TIMEOUT_MS = 300_000  # the challenge lives 5 minutes (cao.put_challenge)
CHALLENGE_BYTES = 32
TRANSPORTS = frozenset({"ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"})


class CeremonyError(Exception):
    """A credential that does not verify: malformed, another origin or RP ID, a stale challenge,
    no user verification, a bad signature, a sign count that went backwards."""


@dataclass(frozen=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]


def _load(credential: dict[str, Any], parse: Any) -> Any:
    try:
        return parse(json.dumps(credential))
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise CeremonyError("the credential is not WebAuthn JSON") from exc


def registration_credential(credential: dict[str, Any]) -> RegistrationCredential:
    loaded: RegistrationCredential = _load(credential, parse_registration_credential_json)
    return loaded


def authentication_credential(credential: dict[str, Any]) -> AuthenticationCredential:
    loaded: AuthenticationCredential = _load(credential, parse_authentication_credential_json)
    return loaded


def client_challenge(client_data_json: bytes) -> bytes:
    """The challenge the client says it signed (to find the stored one, single use)."""
    try:
        return parse_client_data_json(client_data_json).challenge
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise CeremonyError("clientDataJSON is malformed") from exc


def _origin(settings: Settings, client_data_json: bytes) -> str:
    try:
        origin = parse_client_data_json(client_data_json).origin
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise CeremonyError("clientDataJSON is malformed") from exc
    if not settings.allows_origin(origin):
        raise CeremonyError("the credential was made for another origin")
    return origin


def registration_options(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    email: str,
    name: str,
    challenge: bytes,
    exclude: list[bytes],
) -> dict[str, Any]:
    options = webauthn.generate_registration_options(
        rp_id=settings.rp_id,
        rp_name=RP_NAME,
        user_id=user_id.bytes,
        user_name=email,
        user_display_name=name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
    )
    loaded: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return loaded


def verify_registration(
    settings: Settings, credential: RegistrationCredential, challenge: bytes
) -> NewCredential:
    origin = _origin(settings, credential.response.client_data_json)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise CeremonyError("the passkey did not verify") from exc
    transports = sorted({str(t.value) for t in credential.response.transports or []} & TRANSPORTS)
    return NewCredential(
        verified.credential_id, verified.credential_public_key, verified.sign_count, transports
    )


def authentication_options(settings: Settings, challenge: bytes) -> dict[str, Any]:
    """Discoverable credentials: no allow-list, the authenticator offers the user's passkeys."""
    options = webauthn.generate_authentication_options(
        rp_id=settings.rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    loaded: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return loaded


def verify_authentication(
    settings: Settings,
    credential: AuthenticationCredential,
    *,
    challenge: bytes,
    user_id: uuid.UUID,
    public_key: bytes,
    sign_count: int,
) -> int:
    """The new sign count of a verified assertion."""
    origin = _origin(settings, credential.response.client_data_json)
    handle = credential.response.user_handle
    if handle is not None and handle != user_id.bytes:
        raise CeremonyError("the assertion names another user")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.rp_id,
            expected_origin=origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise CeremonyError("the assertion did not verify") from exc
    return verified.new_sign_count


def raw_id(credential: AuthenticationCredential | RegistrationCredential) -> bytes:
    return credential.raw_id


def decode_id(value: str) -> bytes:
    try:
        return base64url_to_bytes(value)
    except ValueError as exc:
        raise CeremonyError("not base64url") from exc
