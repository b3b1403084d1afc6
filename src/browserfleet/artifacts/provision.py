"""The server's `Provisioner`: writes what a session's `LaunchSpec` names (its context's saved profile,
its extension, the CA certificates it trusts) into a fresh profile before Chromium starts.

Each setting has its own step in its own module (`contexts`, `extensions`); this module only runs them
in order and gathers their Chromium arguments. (CA certificates are not a launch-time setting: they are
added to a browser after it is taken, `browsers/trust.py`.)
"""

from __future__ import annotations

from browserfleet.artifacts import extensions
from browserfleet.artifacts.contexts import Contexts
from browserfleet.artifacts.storage import Blobs
from browserfleet.browsers.provision import FreshProfile
from browserfleet.browsers.spec import LaunchSpec
from browserfleet.store.repo import Store


class ServerProvisioner:
    def __init__(self, store: Store, blobs: Blobs, contexts: Contexts) -> None:
        self.store = store
        self.blobs = blobs
        self.contexts = contexts

    async def provision(self, spec: LaunchSpec, profile: FreshProfile) -> list[str]:
        args: list[str] = []
        # Each step is filled in by its feature (issue 10): a spec naming one of them must not launch
        # as if it did not.
        if spec.context_id is not None:
            args += await self.contexts.provision(spec, profile)
        if spec.extension_id is not None:
            args += await extensions.provision(self.store, self.blobs, spec.extension_id, None, profile)
        return args
