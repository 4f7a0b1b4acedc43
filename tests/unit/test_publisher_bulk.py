"""The messages of publish_many and of publish without headers: properties serialized from a template, byte for byte what py-amqp makes."""
from __future__ import annotations

import pytest
from amqp import Message
from amqp.serialization import GenericContent

from producers.publisher import _JsonMessage


@pytest.mark.parametrize("message_id", ["", "dailyup-00000001", "Müller-ß-" * 20, "x" * 255])
def test_properties_are_serialized_as_py_amqp_does(message_id):
    message = _JsonMessage(b'{"n":1}', message_id)

    assert message._serialize_properties() == GenericContent._serialize_properties(message)
    # The same properties as a message of Publisher.publish.
    assert message.properties == Message(b"", content_type="application/json", content_encoding="utf-8",
                                         application_headers={}, delivery_mode=2, priority=0,
                                         message_id=message_id).properties


def test_a_message_id_too_long_for_amqp_is_refused_as_py_amqp_refuses_it():
    with pytest.raises(Exception) as ours:
        _JsonMessage(b"{}", "x" * 256)._serialize_properties()
    with pytest.raises(Exception) as theirs:
        GenericContent._serialize_properties(_JsonMessage(b"{}", "x" * 256))
    assert type(ours.value) is type(theirs.value)
