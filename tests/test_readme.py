"""The README's examples, run as a user would copy them (server URL and target site swapped)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, Server

NODE_DIR = ROOT / "tests" / "node"
BLOCK = re.compile(r"```(python|javascript|bash)\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    # The set-up blocks (make, exporting the key) are not examples to run.
    return [(lang, code) for lang, code in blocks if "make run" not in code and "export " not in code]


def adapt(code: str, server: Server, site: str) -> str:
    return (
        code.replace("http://127.0.0.1:7800", server.url)
        .replace("ws://127.0.0.1:7800", server.ws_url)
        .replace("https://www.sfmoma.org", f"{site}/index.html")
    )


@pytest.mark.parametrize("index", range(len(examples())))
def test_readme_example_runs(server: Server, site: str, index: int) -> None:
    lang, code = examples()[index]
    code = adapt(code, server, site)
    env = {**os.environ, "BROWSERBASE_API_KEY": server.api_key}
    suffix = {"python": ".py", "javascript": ".mjs", "bash": ".sh"}[lang]
    # Node resolves imports next to the script: put it beside tests/node/node_modules.
    where = NODE_DIR if lang == "javascript" else None
    with tempfile.NamedTemporaryFile("w", suffix=suffix, dir=where, delete=False) as script:
        script.write(code)
    try:
        command = {"python": [sys.executable], "javascript": ["node"], "bash": ["bash", "-euo", "pipefail"]}[
            lang
        ]
        result = subprocess.run(
            [*command, script.name], env=env, capture_output=True, text=True, timeout=90, check=False
        )
    finally:
        Path(script.name).unlink()
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    if "Tickets" in code:
        assert "Tickets | Museum of Local Art" in out
    if "REQUEST_RELEASE" in code:
        assert out.split() == [f"{site}/index.html", "COMPLETED"]
    elif "goto" in code:
        assert "Museum of Local Art" in out
    if lang == "bash":
        assert '"userMetadata": {"order": {"status": "shipped"}}' in out
