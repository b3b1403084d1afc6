"""The CDP front door: `ws://host/?signingKey=…` / `?apiKey=…[&sessionId=…]`, `/json/version`, and the relay
between a client and its session's browser.

Authenticates once, at the upgrade, before any byte reaches Chromium; then only relays. Must not parse
more of a CDP message than a policy needs on the hot path, and must not decide session state (it tells
the `SessionManager` that clients came and went).
"""
