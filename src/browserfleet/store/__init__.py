"""Persistent state: SQLAlchemy models, queries and Alembic migrations.

Owns every SQL statement in browserfleet; SQLite by default, PostgreSQL by URL.
Must not know HTTP, processes or sockets: other packages call the functions in `repo`.
"""
