"""Everything a session leaves behind: downloads, uploads, CDP logs, recordings, CPU/memory samples.

How they are captured, where they are stored and in which formats they are exported. Nothing here
decides session state, and nothing is deleted except on request (there is no retention yet).
"""
