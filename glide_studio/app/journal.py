"""A document's journal: an append-only log of what the user did, in SQLite, one transaction per action.

SQLite in WAL mode commits a transaction by appending it to the write-ahead log and syncing it; a process
killed at any moment leaves every committed transaction readable and none half-written (see SQLite's notes
on atomic commit and WAL). So the document, which is a fold over its journal, survives a kill -9 up to the
last finished action. Pictures are blobs stored once by their sha256 and referenced from events.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL,
                                   created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(Exception):
    """A journal that cannot be opened or read (damaged, from a newer version, or on a full disk)."""


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]
    created: float


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # isolation_level=None: transactions are begun and committed here, one per user action.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable against a killed process
            self._db.executescript(_SCHEMA)
            version = self.meta("schema")
            if version is None:
                self.set_meta("schema", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise JournalError(f"{self.path.name} was written by a newer GLIDE Studio (journal {version})")
        except (sqlite3.DatabaseError, ValueError) as error:
            raise JournalError(f"{self.path} is not a usable journal ({error})") from error

    def append(self, kind: str, data: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None) -> int:
        """One action: its blobs (by digest) and its event, committed together."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for digest, payload in (blobs or {}).items():
                    self._db.execute("INSERT OR IGNORE INTO blobs (digest, data) VALUES (?, ?)", (digest, payload))
                cursor = self._db.execute("INSERT INTO events (kind, data, created) VALUES (?, ?, ?)",
                                          (kind, json.dumps(data, sort_keys=True), time.time()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise JournalError(f"could not record the last action in {self.path.name} ({error})") from error
        return int(cursor.lastrowid)

    def events(self, after: int = 0) -> Iterator[Event]:
        rows = self._db.execute("SELECT seq, kind, data, created FROM events WHERE seq > ? ORDER BY seq", (after,))
        for seq, kind, data, created in rows:
            yield Event(int(seq), str(kind), json.loads(data), float(created))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_seq(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def blob(self, digest: str) -> bytes:
        row = self._db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise JournalError(f"{self.path.name} lacks the picture {digest[:12]}…")
        return bytes(row[0])

    def has_blob(self, digest: str) -> bool:
        return self._db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone() is not None

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def copy_to(self, path: str | Path) -> None:
        """A consistent standalone copy (SQLite's online backup), e.g. to put inside a project file."""
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        self._db.close()
