"""Webhook signature verification (pure: no database): Standard Webhooks as Polar signs."""

from __future__ import annotations

import base64
import hmac
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from functions.billing import signature as webhooks
from functions.billing.signature import (
    WebhookHeaderError,
    WebhookSignatureError,
    signing_keys,
    verify,
)
from shared.errors import AppError, PayloadTooLargeError

# The Standard Webhooks test vector (../shared/notes/platform.md).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

POLAR_SECRET = "polar_whs_f3Bq9dXk2LmN8pRsT4uVwY6zA1cE5gH7"


def vector_headers(**changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIG,
    }
    headers.update(changes)
    return headers


def test_the_standard_webhooks_test_vector_verifies() -> None:
    delivery = verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)
    assert (delivery.webhook_id, delivery.timestamp, delivery.body) == (
        VECTOR_ID,
        VECTOR_TS,
        VECTOR_BODY,
    )


def test_our_signer_reproduces_the_vector_signature() -> None:
    key = signing_keys(VECTOR_SECRET)[1]
    assert webhooks.sign(key, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def _flip(value: str, index: int) -> str:
    ch = value[index]
    return value[:index] + ("1" if ch != "1" else "2") + value[index + 1 :]


@pytest.mark.parametrize("index", range(len(VECTOR_ID)))
def test_any_changed_byte_of_the_id_fails(index: int) -> None:
    with pytest.raises(WebhookSignatureError):
        verify(
            vector_headers(**{"webhook-id": _flip(VECTOR_ID, index)}),
            VECTOR_BODY,
            VECTOR_SECRET,
            now=VECTOR_TS,
        )


@pytest.mark.parametrize("index", range(len(str(VECTOR_TS))))
def test_any_changed_digit_of_the_timestamp_fails(index: int) -> None:
    changed = _flip(str(VECTOR_TS), index)
    # The clock agrees with the changed timestamp, so only the signature can refuse it.
    with pytest.raises(WebhookSignatureError, match="no webhook signature matches"):
        verify(
            vector_headers(**{"webhook-timestamp": changed}),
            VECTOR_BODY,
            VECTOR_SECRET,
            now=int(changed),
        )


@pytest.mark.parametrize("index", range(len(VECTOR_BODY)))
def test_any_changed_byte_of_the_body_fails(index: int) -> None:
    body = bytearray(VECTOR_BODY)
    body[index] ^= 0x01
    with pytest.raises(WebhookSignatureError):
        verify(vector_headers(), bytes(body), VECTOR_SECRET, now=VECTOR_TS)


def test_a_re_serialised_body_fails() -> None:
    reserialised = json.dumps(json.loads(VECTOR_BODY), separators=(",", ":")).encode()
    assert reserialised != VECTOR_BODY and json.loads(reserialised) == json.loads(VECTOR_BODY)
    with pytest.raises(WebhookSignatureError):
        verify(vector_headers(), reserialised, VECTOR_SECRET, now=VECTOR_TS)


@pytest.mark.parametrize("offset", [301, -301, 3600, -86400])
def test_timestamps_more_than_five_minutes_off_fail(offset: int) -> None:
    with pytest.raises(WebhookSignatureError, match="5 minutes"):
        verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS + offset)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamps_within_five_minutes_pass(offset: int) -> None:
    verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS + offset)


def test_several_signatures_pass_when_one_is_valid() -> None:
    wrong = "v1," + base64.b64encode(b"\x00" * 32).decode()
    other_scheme = "v1a,c29tZXRoaW5nIGVsc2U="
    for header in (
        f"{wrong} {VECTOR_SIG}",
        f"{VECTOR_SIG} {wrong}",
        f"{other_scheme} {wrong} {VECTOR_SIG}",
        f"v1,@@@ {VECTOR_SIG}",  # one malformed entry beside a valid one
    ):
        verify(
            vector_headers(**{"webhook-signature": header}), VECTOR_BODY, VECTOR_SECRET, VECTOR_TS
        )


def test_several_signatures_fail_when_none_is_valid() -> None:
    wrong = [
        "v1," + base64.b64encode(bytes([i]) * 32).decode() for i in range(3)
    ]  # well-formed, all wrong
    with pytest.raises(WebhookSignatureError):
        verify(
            vector_headers(**{"webhook-signature": " ".join(wrong)}),
            VECTOR_BODY,
            VECTOR_SECRET,
            VECTOR_TS,
        )


MALFORMED = [
    ("webhook-id", ""),
    ("webhook-id", "has space"),
    ("webhook-id", "x" * 201),
    ("webhook-id", "é-non-ascii"),
    ("webhook-id", "msg_1\n"),
    ("webhook-timestamp", "1614265330\n"),
    ("webhook-timestamp", ""),
    ("webhook-timestamp", "abc"),
    ("webhook-timestamp", "1614265330.5"),
    ("webhook-timestamp", "-1614265330"),
    ("webhook-timestamp", "1e9"),
    ("webhook-timestamp", "nan"),
    ("webhook-timestamp", "9" * 40),
    ("webhook-signature", ""),
    ("webhook-signature", "garbage"),
    ("webhook-signature", "v1,"),
    ("webhook-signature", "v1,not base64!!"),
    ("webhook-signature", "v1,c2hvcnQ="),  # valid base64, wrong length
    ("webhook-signature", ","),
    ("webhook-signature", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ("webhook-signature", " ".join([VECTOR_SIG] * 11)),
    ("webhook-signature", "v1," + "A" * 5000),
]


@pytest.mark.parametrize(("header", "value"), MALFORMED)
def test_malformed_headers_are_a_4xx_error(header: str, value: str) -> None:
    with pytest.raises(AppError) as err:
        verify(vector_headers(**{header: value}), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)
    assert 400 <= err.value.status < 500


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_a_400(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]
    with pytest.raises(WebhookHeaderError):
        verify(headers, VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)


def test_an_oversize_body_is_refused_before_any_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hashing(*args: object, **kwargs: object) -> object:
        raise AssertionError("hashed an oversize body")

    monkeypatch.setattr(hmac, "new", no_hashing)  # the standardwebhooks package hashes with it
    body = b"{" + b" " * webhooks.MAX_BODY_BYTES + b"}"
    with pytest.raises(PayloadTooLargeError):
        verify(vector_headers(), body, VECTOR_SECRET, now=VECTOR_TS)


def test_a_declared_length_over_the_bound_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLargeError):
        webhooks.check_size(str(webhooks.MAX_BODY_BYTES + 1))
    with pytest.raises(WebhookHeaderError):
        webhooks.check_size("12abc")
    webhooks.check_size(str(webhooks.MAX_BODY_BYTES))


def test_a_polar_secret_keys_the_hmac_with_its_raw_utf8_bytes() -> None:
    # Polar's own SDK hands standardwebhooks base64(secret): the key is the secret's bytes.
    body = b'{"type":"subscription.active"}'
    polar = Webhook(base64.b64encode(POLAR_SECRET.encode()).decode())
    sig = polar.sign("msg_1", datetime.fromtimestamp(VECTOR_TS, tz=UTC), body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(VECTOR_TS), "webhook-signature": sig}
    verify(headers, body, POLAR_SECRET, now=VECTOR_TS)
    # ...and the same signature is refused under any other secret.
    with pytest.raises(WebhookSignatureError):
        verify(headers, body, POLAR_SECRET + "x", now=VECTOR_TS)


def test_a_whsec_secret_keys_the_hmac_with_its_base64_decoded_bytes() -> None:
    assert signing_keys(VECTOR_SECRET) == (
        VECTOR_SECRET.encode(),
        base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )
    # The vector itself is signed with the decoded key; the raw bytes of "whsec_..." also work.
    raw_sig = webhooks.sign(VECTOR_SECRET.encode(), VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert raw_sig != VECTOR_SIG
    verify(vector_headers(**{"webhook-signature": raw_sig}), VECTOR_BODY, VECTOR_SECRET, VECTOR_TS)


def test_a_secret_that_is_not_base64_has_only_the_raw_key() -> None:
    assert signing_keys("polar_whs_not-base64!") == (b"polar_whs_not-base64!",)


@pytest.mark.parametrize(
    "error", [ValueError("x"), UnicodeDecodeError("utf-8", b"", 0, 1, "x"), RecursionError()]
)
def test_any_exception_of_the_standardwebhooks_package_is_a_bad_signature(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def raising(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(Webhook, "verify", raising)
    with pytest.raises(WebhookSignatureError, match="no webhook signature matches"):
        verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS)


def test_the_package_verifies_against_the_given_clock_not_its_own() -> None:
    # The vector is from 2021: the package's own clock check would refuse it.
    delivery = verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=VECTOR_TS + 299)
    assert delivery.timestamp == VECTOR_TS
    with pytest.raises(WebhookSignatureError, match="5 minutes"):
        verify(vector_headers(), VECTOR_BODY, VECTOR_SECRET, now=datetime.now(UTC).timestamp())
