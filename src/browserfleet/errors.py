"""The one exception hierarchy: what went wrong, in the domain's words, with no HTTP in it.

Every package raises these (or lets them through); `api/errors.py` alone turns them into status codes
and the contract's error body, for the REST API, the gateway and the inspector alike. `message` is
always safe to show a client; anything only an operator should read goes in `detail` (logged).
"""

from __future__ import annotations


class BrowserfleetError(Exception):
    """Base of every error browserfleet raises on purpose."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


# -- the request's fault --------------------------------------------------------------------------


class InvalidRequest(BrowserfleetError):
    """The request is malformed or asks for something that cannot be."""


class Unauthenticated(BrowserfleetError):
    """No credential, or one that is not valid (a key, a signing key, a token)."""


class Forbidden(BrowserfleetError):
    """A valid credential that does not allow this (a read-only token asking for control)."""


class NotFound(BrowserfleetError):
    """No such thing, or not the caller's (another project's things are never acknowledged)."""


class Gone(BrowserfleetError):
    """The session existed but has ended."""


class Conflict(BrowserfleetError):
    """The request clashes with the current state of the thing it names."""


class TooLarge(BrowserfleetError):
    """A body, file or message over its limit."""


class Inapplicable(BrowserfleetError):
    """The request is valid and names something that exists, but what it asks does not apply to it (the
    recording of a session that was not recorded)."""


class ConcurrencyLimited(BrowserfleetError):
    """The project runs as many sessions as it may."""

    def __init__(self, limit: int, reset_seconds: int) -> None:
        super().__init__(
            f"You've reached the maximum number of concurrent sessions for this project ({limit}). "
            "Release a session or wait for one to end."
        )
        self.limit = limit
        self.reset_seconds = reset_seconds


class RateLimited(BrowserfleetError):
    """Too many session creations in the project's rolling minute (`reset_seconds`: until one more is
    allowed)."""

    def __init__(self, limit: int, reset_seconds: int) -> None:
        super().__init__(
            f"You've reached the maximum number of session creations per minute for this project ({limit}). "
            f"Retry in {reset_seconds} s."
        )
        self.limit = limit
        self.reset_seconds = reset_seconds


class NotOffered(BrowserfleetError):
    """A feature of the hosted service that a self-hosted server does not have (`search`, `agents`...):
    the message names it."""


class WebDriverError(BrowserfleetError):
    """A WebDriver command's own error, by its W3C error code (`invalid session id`, `unknown command`...):
    answered in the W3C shape with the status the standard gives the code."""

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(message, detail)
        self.code = code


# -- a site's fault (what `POST /v1/fetch` loaded) --------------------------------------------------


class PageLoadFailed(BrowserfleetError):
    """The page a fetch asked for could not be had: the site refused or broke off, its TLS failed, the
    egress rules refused it, or its response was over the size limit."""


class PageLoadTimedOut(PageLoadFailed):
    """The page a fetch asked for did not answer in time."""


# -- the server's fault ---------------------------------------------------------------------------


class Unavailable(BrowserfleetError):
    """The server cannot serve this now (shutting down, no browser could be had)."""


class ShuttingDown(Unavailable):
    """The server is stopping: unlike the other `Unavailable`s, worth another try (the server restarted,
    or another one behind the same address)."""


class BrowserError(BrowserfleetError):
    """Something about a browser failed: the base of what runners and the CDP layer raise."""


class LaunchFailed(BrowserError):
    """A browser could not be started (`detail`: paths, Chromium's own output)."""


class BrowserUnreachable(BrowserError):
    """A running browser did not answer (its socket refused, reset or timed out)."""


class HandshakeError(BrowserUnreachable):
    """The browser's WebSocket upgrade failed."""


class CdpError(BrowserError):
    """A CDP command failed, or the connection it was sent on closed."""
