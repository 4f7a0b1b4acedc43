"""The RabbitMQ connection of the consumers: every body handed over as the bytes received.

py-amqp decodes a body to text when the message names a ``content_encoding``
(its channels' ``auto_decode``); encoding that text again does not always give
the bytes back (UTF-16 with a big-endian or no byte order mark, UTF-7, ISO-2022
...).  A dead-lettered or retried message must be passed on byte for byte, so
our channels leave bodies undecoded and the consumers decode them by their
contracts' rules.
"""
from __future__ import annotations

from typing import Any

from kombu import Connection
from kombu.transport import pyamqp


class RawBodyChannel(pyamqp.Channel):
    """A py-amqp channel that never decodes a body."""

    def __init__(self, connection: Any, channel_id: int | None = None, auto_decode: bool = False,
                 on_open: Any = None) -> None:
        super().__init__(connection, channel_id, auto_decode=False, on_open=on_open)


class RawBodyConnection(pyamqp.Connection):
    """py-amqp's connection with :class:`RawBodyChannel` channels."""

    Channel = RawBodyChannel


class Transport(pyamqp.Transport):
    """kombu's py-amqp transport, bodies as bytes."""

    Connection = RawBodyConnection


class SSLTransport(pyamqp.SSLTransport):
    """kombu's py-amqp transport over TLS (``amqps://``), bodies as bytes."""

    Connection = RawBodyConnection


TRANSPORTS: dict[str, type[pyamqp.Transport]] = {"amqp": Transport, "pyamqp": Transport, "amqps": SSLTransport}


def rabbitmq_connection(url: str, **options: Any) -> Connection:
    """A kombu connection to ``url`` whose messages keep their bodies as bytes (not connected until used).

    Any other kind of URL (the in-process ``memory://`` broker) gets kombu's own
    transport, which hands bodies over as bytes anyway.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    transport = TRANSPORTS.get(scheme)
    if transport is None:
        return Connection(url, **options)
    return Connection(url, transport=transport, **options)
