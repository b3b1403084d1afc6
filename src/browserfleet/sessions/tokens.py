"""Signing keys: per-session credentials for the CDP gateway, minted as HMACs over the session id.

Stateless to verify, so any gateway replica that shares the server secret can check one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class SigningKeys:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self._secret, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, session_id: str) -> str:
        return f"{session_id}.{self._mac(session_id)}"

    def session_id(self, token: str) -> str | None:
        """The session a token was minted for, or None if it is not genuine."""
        session_id, _, mac = token.rpartition(".")
        if not session_id or not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        return session_id
