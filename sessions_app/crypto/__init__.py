"""Crypto payments: receiving addresses from a watch-only xpub, locked quotes, on-chain verification."""
