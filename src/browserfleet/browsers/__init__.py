"""Launching and supervising Chromium: flags, profile dirs, process trees, reaping.

Owns the browser processes and their temp profiles. Must not know projects, sessions or HTTP:
callers get a `Browser` handle and decide what it is for.
"""
