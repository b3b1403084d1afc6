"""Provisioning: filling a fresh profile with what a `LaunchSpec` names, before its Chromium starts.

A launch-time setting (a context's saved profile, an extension, CA certificates to trust) is bytes the
server keeps (`artifacts/`), written into the new browser's profile and turned into command-line
arguments. The launcher knows neither projects nor storage: it hands the fresh profile to a
`Provisioner`, which the server builds (`artifacts.provision`), and starts Chromium with the arguments
it returns. A launch for the default spec never calls it (pooled browsers need nothing).

Guarantees a provisioner keeps: it writes only inside `FreshProfile.root`; what the browser must not
change it leaves owned by root (the browser's uid cannot write it); paths in the arguments it returns
are as the browser sees them (`FreshProfile.seen`); a failure is a `LaunchFailed` (or `NotFound` when
a named resource is gone), after which the launcher removes the profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from browserfleet.browsers.sandbox import View
from browserfleet.browsers.spec import LaunchSpec
from browserfleet.errors import LaunchFailed


@dataclass(frozen=True)
class FreshProfile:
    """A profile made for one launch, not yet used by any Chromium."""

    root: Path  # on the host; root-owned, its subdirectories (below) the browser's own
    view: View  # translates host paths into the browser's own names for them
    uid: int | None  # the browser's uid when jailed (None: it runs as the server's user)
    # Chromium's ids of the extensions the provisioner loaded (the CDP policy lets clients open their pages).
    extension_ids: list[str] = field(default_factory=list)

    @property
    def user_data(self) -> Path:
        """Chromium's --user-data-dir (writable by the browser)."""
        return self.root / "user-data"

    @property
    def home(self) -> Path:
        """$HOME (writable by the browser; NSS keeps its certificate database in ~/.pki/nssdb)."""
        return self.root / "home"

    @property
    def readonly(self) -> Path:
        """A root-owned directory for what the browser may read but not change (unpacked extensions)."""
        path = self.root / "provisioned"
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def seen(self, host_path: Path) -> str:
        return self.view.to_browser(host_path)

    def give(self, path: Path) -> None:
        """Hand `path` (a file or a tree, inside the browser-writable dirs) to the browser's uid."""
        if self.uid is None:
            return
        for top, dirs, files in os.walk(path):
            os.chown(top, self.uid, self.uid)
            for name in (*dirs, *files):
                os.lchown(os.path.join(top, name), self.uid, self.uid)


class Provisioner(Protocol):
    async def provision(self, spec: LaunchSpec, profile: FreshProfile) -> list[str]:
        """Fill `profile` for `spec`; the Chromium arguments it adds."""
        ...


class NoProvisioner:
    """For launchers that serve only the default spec (tests of the launcher, the benchmarks)."""

    async def provision(self, spec: LaunchSpec, profile: FreshProfile) -> list[str]:
        if not spec.pooled:
            raise LaunchFailed("this server cannot launch browsers with extensions, contexts or certificates")
        return []
