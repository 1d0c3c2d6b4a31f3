"""Atlas keys at rest, for the HTTP server's OAuth mode: sealed with AES-256-GCM before they reach the state store.

The 32-byte key comes from ``ATLASCLOUD_OAUTH_SECRET`` (a Kubernetes Secret in ``deploy/``), never from the store
itself, so a copy of the store (a SQLite file, a Redis dump) holds no usable Atlas key. Each sealed value is bound
to what it belongs to (its user id, as associated data): a value moved to another user's record does not open.

``cryptography``'s AESGCM, not code of ours: authenticated encryption with a random 96-bit nonce per value.
"""

from __future__ import annotations

import base64
import binascii
import os

from atlas_mcp.errors import ConfigError

__all__ = ["Vault"]

_VERSION = "v1."  # the form of a sealed value: v1.<base64url(nonce || ciphertext || tag)>


class Vault:
    """``secret``: the 32 bytes of ATLASCLOUD_OAUTH_SECRET (checked by the settings)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ConfigError("ATLASCLOUD_OAUTH_SECRET must be 32 bytes (openssl rand -base64 32)")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(secret)

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, bound_to: str) -> str | None:
        """The plaintext, or None for a value that is not ours, was changed, or belongs to someone else."""
        from cryptography.exceptions import InvalidTag

        if not sealed.startswith(_VERSION):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            return None
