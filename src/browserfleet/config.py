"""Server settings, read from `BROWSERFLEET_*` environment variables and CLI flags."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROWSERFLEET_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 7800
    data_dir: Path = Path("./data")
    # SQLAlchemy async URL; empty means SQLite in the data dir.
    database_url: str = ""
    # Used in URLs the server mints (connectUrl, seleniumRemoteUrl) when set; else the request's host.
    public_url: str = ""
    # Bootstrap project: its API key (else generated once) and, when set, its limits.
    api_key: str = ""
    concurrency: int | None = Field(default=None, ge=1)
    default_timeout: int | None = Field(default=None, ge=60, le=21600)

    chromium_path: str = "/usr/lib/chromium/chromium"
    # Extra Chromium flags, shell-style quoted.
    chromium_args: str = ""
    # Each browser in a network namespace of its own (debugging port unreachable from the host, egress
    # through the server's proxy). None: whenever the host allows it.
    isolate_network: bool | None = None
    # How long a launched browser may take to open its debugging endpoint.
    launch_timeout: float = 30.0

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def extra_chromium_args(self) -> list[str]:
        return shlex.split(self.chromium_args)

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'browserfleet.db'}"

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir.resolve() / "profiles"
