"""Which providers a session offers: the merchant's enabled ones, or a subset the API names."""

from __future__ import annotations

import pytest
from django.test import Client

from sessions_app.providers import get_provider, provider_names
from sessions_app.providers.base import Provider

XPUB = ("xpub6DyUKdwoLWmUJ4Tn9Bbsdtx7B5Ws18mEN19e5HT52ikE53FiUheSQXrZUNPovqfyKmw4579A1Mm3GXXKM39N64uooBfJ4tNAzFsEbodRTx4")


def test_every_registered_provider_implements_the_one_interface():
    for name in provider_names():
        provider = get_provider(name)
        assert isinstance(provider, Provider)
        assert provider.name == name


def test_a_session_offers_the_merchants_enabled_providers_by_default(api):
    assert api.patch("/account", {"enabled_providers": ["onecom", "stripe"]}, format="json").status_code == 200

    created = api.post("/create_session", {"amount": "10.00"}, format="json")

    assert created.json()["providers"] == ["stripe", "onecom"]


def test_a_session_may_name_a_subset_of_the_enabled_providers(api):
    api.patch("/account", {"enabled_providers": ["stripe", "onecom"]}, format="json")

    created = api.post("/create_session", {"amount": "10.00", "providers": ["onecom"]}, format="json")

    assert created.status_code == 201
    assert created.json()["providers"] == ["onecom"]


def test_a_provider_the_merchant_has_not_enabled_is_refused(api):
    response = api.post("/create_session", {"amount": "10.00", "providers": ["onecom"]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "provider_not_enabled", "field": "providers",
                                         "message": response.json()["error"]["message"]}


@pytest.mark.parametrize("providers, code", [
    (["paypal"], "enabled_providers_invalid_choice"),
    ([], "enabled_providers_empty"),
    (["web3"], "web3_not_configured"),
])
def test_enabling_providers_is_validated(api, providers, code):
    response = api.patch("/account", {"enabled_providers": providers}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_web3_can_be_enabled_once_xpub_and_asset_are_set(api):
    response = api.patch("/account", {"web3_xpub": XPUB, "web3_asset": {"type": "native", "symbol": "ETH",
                                                                         "decimals": 18},
                                      "enabled_providers": ["stripe", "web3"]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["enabled_providers"] == ["stripe", "web3"]
    assert response.json()["web3_asset"] == {"type": "native", "symbol": "ETH", "decimals": 18}


@pytest.mark.parametrize("body, code", [
    ({"web3_xpub": "xprv9zz7v8notakey"}, "web3_xpub_private"),
    ({"web3_xpub": "hello"}, "web3_xpub_invalid"),
    ({"web3_asset": {"type": "erc20", "symbol": "EURC", "decimals": 6, "address": "0x12"}}, "web3_asset_invalid"),
    ({"web3_asset": {"type": "native", "symbol": "ETH", "decimals": 99}}, "web3_asset_invalid"),
    ({"web3_asset": "ETH"}, "web3_asset_invalid"),
])
def test_bad_web3_setup_is_refused_with_a_code(api, body, code):
    response = api.patch("/account", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_the_xpub_of_another_depth_is_refused(api):
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins

    seed = Bip39SeedGenerator("test test test test test test test test test test test junk").Generate()
    account_level = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PublicKey().ToExtended()

    response = api.patch("/account", {"web3_xpub": account_level}, format="json")

    assert response.json()["error"]["code"] == "web3_xpub_depth"


def test_webhook_endpoints_need_no_csrf_token(db):
    client = Client(enforce_csrf_checks=True)

    for provider in ("stripe", "onecom", "web3"):
        response = client.post(f"/webhooks/{provider}", "{}", content_type="application/json")
        assert response.status_code in (400, 503), (provider, response.content)
