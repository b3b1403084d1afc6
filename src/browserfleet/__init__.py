"""browserfleet: a self-hosted browser session platform, wire-compatible with Browserbase."""

__version__ = "0.1.0"
