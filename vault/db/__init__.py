"""Metadata database: engine set-up, migrations and the write-lock transaction."""

from vault.db.engine import migrate, open_engine, read_connection, read_session, write_session
from vault.db.models import Campaign, Client, Document, Hold, LogEntry, LogHead, Record

__all__ = [
    "Campaign",
    "Client",
    "Document",
    "Hold",
    "LogEntry",
    "LogHead",
    "Record",
    "migrate",
    "open_engine",
    "read_connection",
    "read_session",
    "write_session",
]
