"""The session state machine: admission, lifecycle (RUNNING → COMPLETED / TIMED_OUT / ERROR),
timeouts, keep-alive and disconnect rules, and metadata queries.

Owns what a session is and when it ends. Must not know HTTP or WebSockets: the API and the gateway
call `SessionManager`; it reaches browsers only through a `cluster` runner.
"""
