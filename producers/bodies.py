"""The bytes of a received message, exactly as they were published."""
from __future__ import annotations

from kombu.message import Message


def received_body(message: Message) -> bytes:
    """The body of ``message`` byte for byte, whatever its content type and encoding.

    py-amqp hands a body over as text when it could decode it (strictly) by the
    message's ``content_encoding``, else as the bytes received; the in-process
    broker hands over bytes.  Text is encoded back by that same encoding, which
    gives the bytes that were decoded.  Dead-lettering, retries and the archive
    all take a body through here, so a message they pass on is the one that came in.
    """
    body = message.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode(message.content_encoding or "utf-8")
    raise TypeError(f"a received message body is bytes or text, not {type(body).__name__}")
