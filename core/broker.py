"""Kombu's Redis transport, keeping one publishing client per channel.

Kombu builds a new `redis.Redis` for every message it publishes, which costs more CPU than
the LPUSH it wraps (see core/cache.py for the same cost in Django's cache). A client
is safe to share: its connection pool hands each command its own connection.
"""

from __future__ import annotations

from kombu.transport import redis


class Channel(redis.Channel):
    _publishing_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._publishing_client is None:
            self._publishing_client = super()._create_client()
        return self._publishing_client


class Transport(redis.Transport):
    Channel = Channel
