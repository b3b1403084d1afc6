"""Everything a session leaves behind: downloads, uploads, CDP logs, recordings.

Storage layout, retention and export formats; never decides session state.
"""
