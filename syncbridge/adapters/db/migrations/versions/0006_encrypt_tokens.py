"""Encrypt the stored OAuth tokens with SYNCBRIDGE_TOKEN_KEY; the downgrade decrypts them.

The key comes from :func:`syncbridge.adapters.db.migrate.upgrade` (``token_key``) or, when it
was not given (e.g. plain Alembic), from the environment as the service reads
it: in production a missing key stops here with the settings' message.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TOKENS = sa.table("oauth_tokens", sa.column("provider", sa.String), sa.column("access_token", sa.Text),
                  sa.column("refresh_token", sa.Text))


def _cipher():
    from syncbridge.adapters.tokens import TokenCipher

    key = context.config.attributes.get("token_key")
    if key is None:
        from syncbridge.config import Settings

        key = Settings.from_env().token_key
    return TokenCipher(key)


def _rewrite(change) -> None:
    bind = op.get_bind()
    for row in bind.execute(sa.select(TOKENS)).all():
        values = {name: change(row.provider, getattr(row, name)) for name in ("access_token", "refresh_token")
                  if getattr(row, name) is not None}
        if values:
            bind.execute(sa.update(TOKENS).where(TOKENS.c.provider == row.provider).values(**values))


def upgrade() -> None:
    cipher = _cipher()

    def encrypt(provider: str, value: str) -> str:
        # Already encrypted (a run interrupted after some rows): left as it is.
        return value if cipher.readable(value) else cipher.encrypt(value)

    _rewrite(encrypt)


def downgrade() -> None:
    from syncbridge.adapters.tokens import UnreadableToken

    cipher = _cipher()

    def decrypt(provider: str, value: str) -> str:
        try:
            return cipher.decrypt(value)
        except UnreadableToken:
            raise RuntimeError(f"oauth_tokens of {provider!r}: the token cannot be decrypted with "
                               "SYNCBRIDGE_TOKEN_KEY; set the key it was saved with") from None

    _rewrite(decrypt)
