"""Encryption of a buyer's key between its issue and its one-time reveal (core.sealing)."""

from __future__ import annotations

from core.sealing import Box, CannotOpen

__all__ = ["CannotOpen", "open_sealed", "seal"]

BOX = Box(b"payments.invoices.key-reveal.v1")

seal = BOX.seal
open_sealed = BOX.open
