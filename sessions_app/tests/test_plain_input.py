"""The plain create_session body is validated without the serializer, to the same result."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_app.apis import CreateSessionApi
from sessions_app.inputs import plain_create_input


class _Account:
    enabled_providers = ["stripe"]


def _serializer_result(data: dict):
    serializer = CreateSessionApi.InputSerializer(data=data, context={"account": _Account()})
    return serializer.validated_data if serializer.is_valid() else None


def mostly(valid, odd):
    """Valid values four times out of five, so that both validators answer often."""
    return st.one_of(valid, valid, valid, valid, odd)


odd_texts = st.one_of(st.text(max_size=30), st.sampled_from(["", " padded ", "x" * 501, "a\x00b", "XYZ", "http://",
                                                             "not-an-email", "a@b", "ftp://shop.example/x",
                                                             "javascript:alert(1)", 7, None]))
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]), max_size=40)
amounts = mostly(st.one_of(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2),
                           st.integers(1, 10**6), st.decimals(min_value=1, max_value=9999, places=2).map(str)),
                 st.one_of(st.decimals(allow_nan=True, allow_infinity=True, places=4), st.integers(-5, 10**12),
                           st.sampled_from([" 1.5 ", "1e3", "0", "-1", "abc", "0.001", True, None, 1.5])))
currencies = mostly(st.sampled_from(["EUR", "usd", "JPY", "gbp", "KWD"]), odd_texts)
emails = mostly(st.sampled_from(["", "buyer@example.com", "a.b+c@shop.example"]), odd_texts)
urls = mostly(st.sampled_from(["", "https://shop.example/ok", "http://127.0.0.1:8000/done?x=1", "ftp://shop.example/x"]),
              odd_texts)
metadata = mostly(st.dictionaries(st.text(max_size=45), st.one_of(st.text(max_size=20), st.integers(), st.booleans(),
                                                                  st.decimals(allow_nan=False, places=2)),
                                  max_size=4),
                  st.one_of(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.lists(st.integers()))),
                            st.sampled_from([[], "x", None])))
entitlements = mostly(
    st.fixed_dictionaries({}, optional={
        "expires_in_days": st.one_of(st.none(), st.integers(1, 3650), st.integers(1, 99).map(Decimal)),
        "metadata": st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=10), st.integers()), max_size=3),
    }),
    st.one_of(st.none(), st.sampled_from(["pro", [], {"seats": 1}, {"expires_in_days": 0},
                                          {"expires_in_days": True}, {"expires_in_days": Decimal("1.5")},
                                          {"expires_in_days": Decimal("NaN")}, {"expires_in_days": 10**40},
                                          {"metadata": {"a": None}}])))
bodies = st.fixed_dictionaries({"amount": amounts}, optional={
    "entitlement": entitlements,
    "currency": currencies, "description": mostly(plain_text, odd_texts), "customer_email": emails,
    "metadata": metadata, "client_reference_id": mostly(plain_text, odd_texts), "success_url": urls,
    "cancel_url": urls,
}).flatmap(lambda body: st.one_of(st.just(body), st.just(body),
                                  st.just({**body, "mode": "test"}), st.just({k: v for k, v in body.items()
                                                                             if k != "amount"})))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_wherever_the_plain_check_answers_the_serializer_agrees(data):
    plain = plain_create_input(data)
    if plain is not None:
        assert _serializer_result(data) == plain
    # (bodies with other keys, or none of the plain shape, are the serializer's alone)


@pytest.mark.parametrize("data", [
    {"amount": "49.99"},
    {"amount": Decimal("49.99"), "currency": "EUR", "description": "Pro plan, monthly",
     "customer_email": "buyer@example.com", "metadata": {"order_id": "A-1042", "n": Decimal("2")}},
    {"amount": 1000, "currency": "jpy", "client_reference_id": "order-7", "success_url": "https://shop.example/ok",
     "cancel_url": "https://shop.example/cancel"},
    {"amount": "49.99", "entitlement": {"expires_in_days": 30, "metadata": {"plan": "pro"}}},
])
def test_the_common_bodies_take_the_plain_path(data):
    plain = plain_create_input(data)
    assert plain is not None
    assert plain == _serializer_result(data)
