"""Sealed secrets: each box keeps the label its stored ciphertexts were sealed under."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from events_app import secrets_box as events_box
from invoices_app import secrets_box as invoices_box


def _sealed_as_before(info: bytes, plaintext: str) -> str:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(raw)).encrypt(plaintext.encode()).decode()


def test_the_labels_are_the_ones_stored_secrets_were_sealed_under():
    assert events_box.BOX.info == b"payments.events.webhook-secret.v1"
    assert invoices_box.BOX.info == b"payments.invoices.key-reveal.v1"


def test_values_sealed_before_still_open():
    assert events_box.unseal(_sealed_as_before(b"payments.events.webhook-secret.v1", "whsec_x")) == "whsec_x"
    assert invoices_box.open_sealed(_sealed_as_before(b"payments.invoices.key-reveal.v1", "ek_x")) == "ek_x"


def test_a_box_opens_its_own_and_not_the_others():
    assert events_box.unseal(events_box.seal("a")) == "a"
    assert invoices_box.open_sealed(invoices_box.seal("b")) == "b"
    with pytest.raises(events_box.CannotOpen):
        events_box.unseal(invoices_box.seal("b"))
    with pytest.raises(invoices_box.CannotOpen):
        invoices_box.open_sealed(events_box.seal("a"))
    with pytest.raises(events_box.CannotOpen):
        events_box.unseal("not a token")
