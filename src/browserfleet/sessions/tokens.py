"""Signing keys: per-session credentials for the CDP gateway, minted as HMACs over the session id.

Stateless to verify, so any gateway replica that shares the server secret can check one. Tokens are
ASCII; anything else handed in (non-ASCII text, surrogates from undecodable bytes, huge strings) is
simply not genuine: verifying never raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAX_TOKEN_LENGTH = 512  # a genuine token is ~100 characters


def _plausible(token: str) -> bool:
    # hmac.compare_digest raises TypeError on non-ASCII str, and encoding a lone surrogate raises too.
    return token.isascii() and len(token) <= MAX_TOKEN_LENGTH


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
        if not _plausible(token):
            return None
        session_id, _, mac = token.rpartition(".")
        if not session_id or not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        return session_id


class ViewTokens:
    """Expiring tokens for live view and DevTools URLs: `<session>.<expires unix s>.<mode>.<mac>`.

    `mode` is `rw` (interactive) or `ro` (read-only); both it and the expiry are under the MAC, so a
    holder can neither extend a token nor turn a read-only one interactive.
    """

    def __init__(self, secret: str, purpose: str = "view") -> None:
        # The purpose is under the key: a live-view token opens no recording, and a media token no viewer.
        self._secret = f"{purpose}:{secret}".encode()

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, session_id: str, expires: int, read_only: bool = False) -> str:
        body = f"{session_id}.{expires}.{'ro' if read_only else 'rw'}"
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, now: float) -> tuple[str, bool] | None:
        """(session id, read-only) for a genuine unexpired token, else None."""
        if not _plausible(token):
            return None
        body, _, mac = token.rpartition(".")
        session_id, _, rest = body.partition(".")
        expires, _, mode = rest.partition(".")
        # isdigit() alone takes "²" and "٣"; an ASCII token's digits are 0-9.
        if not (session_id and expires.isdigit() and len(expires) <= 12 and mode in ("rw", "ro")):
            return None
        if not hmac.compare_digest(mac, self._mac(body)) or int(expires) < now:
            return None
        return session_id, mode == "ro"
