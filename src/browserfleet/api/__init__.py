"""The REST API in the Browserbase wire shapes: routes, API-key auth, error bodies, rate-limit headers.

Must not touch processes or sockets: it calls `sessions.SessionManager` and reads the `store`.
"""
