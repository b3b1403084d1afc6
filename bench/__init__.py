"""Benchmarks of browserfleet against a direct Chromium: `python -m bench` runs them all."""
