"""Domain errors; the API maps each to a status code."""

from __future__ import annotations


class SessionError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SessionError):
    status = 400


class NotFound(SessionError):
    status = 404


class Gone(SessionError):
    """The session existed but has ended."""

    status = 410


class Unavailable(SessionError):
    """The browser could not be started (the server's fault, not the request's)."""

    status = 503


class ConcurrencyLimited(SessionError):
    status = 429

    def __init__(self, limit: int, reset_seconds: int) -> None:
        super().__init__(
            f"You've reached the maximum number of concurrent sessions for this project ({limit}). "
            "Release a session or wait for one to end."
        )
        self.limit = limit
        self.reset_seconds = reset_seconds
