"""The database: typed models, migrations and a repository that speaks in domain terms."""

from storage.db import open_store
from storage.repository import ChangeBatch, Changed, Store, StoredEntry, Workspace, Write

__all__ = ["ChangeBatch", "Changed", "Store", "StoredEntry", "Workspace", "Write", "open_store"]
