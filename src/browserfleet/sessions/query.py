"""The `q` metadata query: `user_metadata['key']['nested']:'value'` (string equality only).

Inside quotes, `\\'` stands for a quote and `\\\\` for a backslash.
"""

from __future__ import annotations

from browserfleet.errors import InvalidRequest

BASE = "user_metadata"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> InvalidRequest:
        return InvalidRequest(f"Invalid q {self.text!r} at position {self.pos}: {why}")

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            found = self.text[self.pos : self.pos + 1] or "end of query"
            raise self.fail(f"expected {token!r}, found {found!r}")
        self.pos += len(token)

    def quoted(self) -> str:
        self.expect("'")
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == "'":
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise self.fail("unterminated quoted string")


def parse(text: str) -> tuple[tuple[str, ...], str]:
    """(key path, value) of a query, or InvalidRequest saying what is wrong."""
    parser = _Parser(text.strip())
    if not parser.text.startswith(BASE):
        raise parser.fail(f"queries must start with {BASE} (only user metadata can be queried)")
    parser.pos = len(BASE)
    path: list[str] = []
    while parser.text.startswith("[", parser.pos):
        parser.pos += 1
        key = parser.quoted()
        if not key:
            raise parser.fail("empty key")
        path.append(key)
        parser.expect("]")
    if not path:
        raise parser.fail("expected at least one ['key'] after user_metadata")
    parser.expect(":")
    value = parser.quoted()
    if parser.pos != len(parser.text):
        raise parser.fail("unexpected text after the value (only one clause is supported)")
    return tuple(path), value
