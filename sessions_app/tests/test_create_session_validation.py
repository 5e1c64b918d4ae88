"""Every kind of bad input to POST /create_session: a 4xx with a machine-readable code, and nothing stored."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from audit.models import AuditEvent
from sessions_app.models import IdempotencyRecord, PaymentSession

pytestmark = pytest.mark.django_db


def _in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


BAD_BODIES = [
    # amount
    ("missing amount", {"currency": "EUR"}, "amount_required", "amount"),
    ("null amount", {"amount": None}, "amount_null", "amount"),
    ("negative", {"amount": "-5.00"}, "amount_not_positive", "amount"),
    ("negative number", {"amount": -5}, "amount_not_positive", "amount"),
    ("zero", {"amount": 0}, "amount_not_positive", "amount"),
    ("zero string", {"amount": "0.00"}, "amount_not_positive", "amount"),
    ("too many decimals EUR", {"amount": "1.001", "currency": "EUR"}, "amount_precision", "amount"),
    ("too many decimals as number", {"amount": 1.001}, "amount_precision", "amount"),
    ("decimals on JPY", {"amount": "1.5", "currency": "JPY"}, "amount_precision", "amount"),
    ("four decimals on KWD", {"amount": "1.0001", "currency": "KWD"}, "amount_precision", "amount"),
    ("huge", {"amount": "1000000000"}, "amount_too_large", "amount"),
    ("huge exponent", {"amount": "1e400"}, "amount_too_large", "amount"),
    ("tiny exponent", {"amount": "1e-999999999"}, "amount_precision", "amount"),
    ("tiny fraction", {"amount": "0.00001"}, "amount_precision", "amount"),
    ("bool", {"amount": True}, "amount_invalid", "amount"),
    ("object", {"amount": {"value": 5}}, "amount_invalid", "amount"),
    ("list", {"amount": [5]}, "amount_invalid", "amount"),
    ("text", {"amount": "abc"}, "amount_invalid", "amount"),
    ("NaN string", {"amount": "NaN"}, "amount_invalid", "amount"),
    ("Infinity string", {"amount": "Infinity"}, "amount_invalid", "amount"),
    ("empty string", {"amount": ""}, "amount_invalid", "amount"),
    # currency
    ("unknown currency", {"amount": "5", "currency": "XYZ"}, "currency_unsupported", "currency"),
    ("currency too long", {"amount": "5", "currency": "EURO"}, "currency_max_length", "currency"),
    ("currency not text", {"amount": "5", "currency": {"code": "EUR"}}, "currency_invalid", "currency"),
    # mode
    ("live mode with a test key", {"amount": "5", "mode": "live"}, "mode_mismatch", "mode"),
    ("unknown mode", {"amount": "5", "mode": "sandbox"}, "mode_invalid_choice", "mode"),
    # metadata
    ("too many metadata keys", {"amount": "5", "metadata": {f"k{i}": "v" for i in range(51)}}, "metadata_too_large", "metadata"),
    ("long metadata value", {"amount": "5", "metadata": {"note": "x" * 501}}, "metadata_too_large", "metadata"),
    ("long metadata key", {"amount": "5", "metadata": {"k" * 41: "v"}}, "metadata_invalid", "metadata"),
    ("nested metadata", {"amount": "5", "metadata": {"order": {"id": 1}}}, "metadata_invalid", "metadata"),
    ("list in metadata", {"amount": "5", "metadata": {"ids": [1, 2]}}, "metadata_invalid", "metadata"),
    ("metadata not an object", {"amount": "5", "metadata": ["a"]}, "metadata_invalid", "metadata"),
    ("NUL in a metadata value", {"amount": "5", "metadata": {"note": "a\u0000b"}}, "null_characters_not_allowed", "metadata"),
    ("NUL in a metadata key", {"amount": "5", "metadata": {"k\u0000": "b"}}, "null_characters_not_allowed", "metadata"),
    ("NUL in the description", {"amount": "5", "description": "a\u0000b"}, "null_characters_not_allowed", "description"),
    # URLs
    ("ftp success_url", {"amount": "5", "success_url": "ftp://example.com/done"}, "success_url_invalid", "success_url"),
    ("not a URL", {"amount": "5", "success_url": "not a url"}, "success_url_invalid", "success_url"),
    ("javascript cancel_url", {"amount": "5", "cancel_url": "javascript:alert(1)"}, "cancel_url_invalid", "cancel_url"),
    ("overlong URL", {"amount": "5", "success_url": "https://example.com/" + "a" * 2000}, "success_url_max_length", "success_url"),
    # email and text
    ("bad email", {"amount": "5", "customer_email": "not-an-email"}, "customer_email_invalid", "customer_email"),
    ("email with a newline", {"amount": "5", "customer_email": "a@b.test\nBcc: x@y.test"}, "customer_email_invalid", "customer_email"),
    ("long description", {"amount": "5", "description": "d" * 501}, "description_max_length", "description"),
    ("unknown provider", {"amount": "5", "providers": ["paypal"]}, "providers_invalid_choice", "providers"),
    # unknown parameters
    ("unknown parameter", {"amount": "5", "amuont": "6"}, "parameter_unknown", "amuont"),
    # expiry
    ("expires in 10 minutes", {"amount": "5", "expires_at": "__10min"}, "expires_at_out_of_range", "expires_at"),
    ("expires in 2 days", {"amount": "5", "expires_at": "__2days"}, "expires_at_out_of_range", "expires_at"),
    ("expired already", {"amount": "5", "expires_at": "__past"}, "expires_at_out_of_range", "expires_at"),
    ("expiry without zone", {"amount": "5", "expires_at": "2030-01-01T00:00:00"}, "expires_at_invalid", "expires_at"),
    ("expiry as text", {"amount": "5", "expires_at": "tomorrow"}, "expires_at_invalid", "expires_at"),
    ("expiry as bool", {"amount": "5", "expires_at": True}, "expires_at_invalid", "expires_at"),
    ("expiry far past the epoch", {"amount": "5", "expires_at": 10**20}, "expires_at_invalid", "expires_at"),
    # entitlement
    ("entitlement not an object", {"amount": "5", "entitlement": "pro"}, "entitlement_invalid", "entitlement"),
    ("entitlement null", {"amount": "5", "entitlement": None}, "entitlement_null", "entitlement"),
    ("entitlement unknown key", {"amount": "5", "entitlement": {"seats": 5}}, "entitlement_invalid", "entitlement"),
    ("entitlement days as text", {"amount": "5", "entitlement": {"expires_in_days": "30"}},
     "entitlement_expires_in_days_invalid", "entitlement"),
    ("entitlement days fractional", {"amount": "5", "entitlement": {"expires_in_days": 1.5}},
     "entitlement_expires_in_days_invalid", "entitlement"),
    ("entitlement days zero", {"amount": "5", "entitlement": {"expires_in_days": 0}},
     "entitlement_expires_in_days_invalid", "entitlement"),
    ("entitlement days huge", {"amount": "5", "entitlement": {"expires_in_days": 10**30}},
     "entitlement_expires_in_days_invalid", "entitlement"),
    ("entitlement days bool", {"amount": "5", "entitlement": {"expires_in_days": True}},
     "entitlement_expires_in_days_invalid", "entitlement"),
    ("entitlement metadata nested", {"amount": "5", "entitlement": {"metadata": {"a": {"b": 1}}}},
     "entitlement_metadata_invalid", "entitlement"),
    ("entitlement metadata a list", {"amount": "5", "entitlement": {"metadata": ["pro"]}},
     "entitlement_metadata_invalid", "entitlement"),
    ("entitlement metadata too many keys", {"amount": "5", "entitlement": {"metadata": {str(i): i for i in range(51)}}},
     "entitlement_metadata_too_large", "entitlement"),
]

EXPIRY_STANDINS = {
    "__10min": lambda: _in(timedelta(minutes=10)),
    "__2days": lambda: int(time.time()) + 2 * 86400,
    "__past": lambda: _in(timedelta(hours=-1)),
}


@pytest.fixture
def nothing_stored():
    sessions, audit, records = PaymentSession.objects.count(), AuditEvent.objects.count(), IdempotencyRecord.objects.count()
    yield
    assert PaymentSession.objects.count() == sessions
    assert AuditEvent.objects.count() == audit
    assert IdempotencyRecord.objects.count() == records


@pytest.mark.parametrize(("body", "code", "field"), [case[1:] for case in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_it_rejects_bad_input_with_its_code_and_stores_nothing(api, nothing_stored, body, code, field):
    # given a create request with one bad part
    if isinstance(body.get("expires_at"), str) and body["expires_at"] in EXPIRY_STANDINS:
        body = {**body, "expires_at": EXPIRY_STANDINS[body["expires_at"]]()}

    # when it is posted (with an Idempotency-Key: a refused request must not be remembered either)
    response = api.post("/create_session", json.dumps(body), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="bad-input")

    # then it is a 400 naming the code and the field
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]


@pytest.mark.parametrize(("raw", "content_type", "code"), [
    ("{not json", "application/json", "invalid_json"),
    ('{"amount": NaN}', "application/json", "invalid_json"),
    ('{"amount": Infinity}', "application/json", "invalid_json"),
    ("amount=5", "application/x-www-form-urlencoded", "invalid_json"),
    ('["amount", 5]', "application/json", "body_invalid"),
    ('"just a string"', "application/json", "body_invalid"),
    ("42", "text/plain", "body_invalid"),
    ("null", "application/json", "body_invalid"),
    ('{"amount": "5"', "text/plain", "invalid_json"),
])
def test_it_rejects_a_body_that_is_not_a_json_object(api, nothing_stored, raw, content_type, code):
    response = api.post("/create_session", raw, content_type=content_type)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code


def test_it_rejects_a_deeply_nested_body_with_a_400(api, nothing_stored):
    # The depth is bounded before parsing (core.safe_json), whatever the recursion limit.
    response = api.post("/create_session", "[" * 5000 + "]" * 5000, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "json_too_deep"


def test_it_rejects_a_body_that_is_not_utf8(api, nothing_stored):
    response = api.post("/create_session", b'{"amount": "5", "description": "\xff"}', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.fixture
def live_key(merchant):
    from keys_app.services import key_issue

    return key_issue(account=merchant, mode="live")


def test_a_live_key_cannot_create_test_sessions(client, live_key, nothing_stored):
    response = client.post("/create_session", {"amount": "5", "mode": "test"}, content_type="application/json",
                           HTTP_X_API_KEY=live_key.plaintext)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "mode_mismatch"


@pytest.mark.parametrize("expires_at", [
    lambda: _in(timedelta(hours=1)),
    lambda: int(time.time()) + 3600,
    lambda: _in(timedelta(minutes=30)),
    lambda: _in(timedelta(hours=24)),
])
def test_it_accepts_an_expiry_between_30_minutes_and_24_hours(api, expires_at):
    response = api.post("/create_session", {"amount": "5", "expires_at": expires_at()}, format="json")

    assert response.status_code == 201, response.content
    session = PaymentSession.objects.get()
    assert timedelta(minutes=29) < session.expires_at - session.created_at < timedelta(hours=24, minutes=2)


def test_it_accepts_the_full_set_of_valid_fields(api):
    body = {
        "amount": "12.34", "currency": "usd", "mode": "test", "description": "Team plan",
        "customer_email": "buyer@example.com", "client_reference_id": "order-7",
        "metadata": {"order_id": "7", "seats": 3, "gift": False, "price": 12.5},
        "success_url": "https://shop.example.com/ok", "cancel_url": "http://localhost:3000/cancel",
        "providers": ["stripe"],
    }

    response = api.post("/create_session", json.dumps(body), content_type="application/json")

    assert response.status_code == 201, response.content
    session = PaymentSession.objects.get()
    assert (session.currency, session.customer_email, session.client_reference_id) == ("USD", "buyer@example.com", "order-7")
    assert session.metadata == {"order_id": "7", "seats": 3, "gift": False, "price": "12.5"}
    assert response.json()["metadata"] == session.metadata


@pytest.mark.parametrize("amount", ["999999.99", "0.01", 1, "  7.50 ", "7.500", "1E+2"])
def test_it_accepts_amounts_at_the_edges(api, amount):
    response = api.post("/create_session", {"amount": amount}, format="json")

    assert response.status_code == 201, response.content


def test_it_refuses_an_oversized_body_before_parsing_it(api, nothing_stored, settings):
    # given a body past the upload limit (here a huge unknown field)
    body = json.dumps({"amount": "5", "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = api.post("/create_session", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("entitlement", "stored"), [
    ({"expires_in_days": 30, "metadata": {"plan": "pro", "seats": 5}},
     {"expires_in_days": 30, "metadata": {"plan": "pro", "seats": 5}}),
    ({"expires_in_days": None}, {"expires_in_days": None, "metadata": {}}),
    ({"expires_in_days": 365.0}, {"expires_in_days": 365, "metadata": {}}),
    ({}, {"expires_in_days": None, "metadata": {}}),
])
def test_it_accepts_an_entitlement_and_the_session_carries_it(api, entitlement, stored):
    response = api.post("/create_session", json.dumps({"amount": "5", "entitlement": entitlement}),
                        content_type="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["entitlement"] == stored
    assert PaymentSession.objects.get(pk=response.json()["session_id"]).entitlement == stored
