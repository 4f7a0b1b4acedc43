"""marshmallow contracts: the only (de)serializers of messages and webhook bodies.

``load`` on receipt, ``dump`` before publish.  Every message carries
``schema_version``; a consumer rejects versions it does not know.
"""
from contracts.base import ContractError, MessageSchema
from contracts.events import CrmRecordChangedSchema

__all__ = ["ContractError", "MessageSchema", "CrmRecordChangedSchema"]
