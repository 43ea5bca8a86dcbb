"""The workspace's metadata in SQLite: videos, their keyframes (label -> time, thumbnail) and shot cuts."""
import functools
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from executors.errors import WorkspaceError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, duration REAL NOT NULL, fps REAL NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, added TEXT NOT NULL,
    first_label INTEGER NOT NULL, frame_count INTEGER NOT NULL,
    mean BLOB NOT NULL  -- float32 mean of the frame embeddings (CLIP4Clip's meanP)
);
CREATE TABLE IF NOT EXISTS frames (
    label INTEGER PRIMARY KEY, video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    timestamp REAL NOT NULL, thumbnail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_video ON frames(video);
CREATE TABLE IF NOT EXISTS shots (video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS shots_video ON shots(video);
"""


@dataclass(frozen=True)
class VideoRow:
    """A stored video; its keyframes hold the labels first_label .. first_label + frame_count - 1."""

    id: str
    path: str
    duration: float
    fps: float
    width: int
    height: int
    added: str
    first_label: int
    frame_count: int


def _reports_damage(method: Callable) -> Callable:
    """SQLite's complaint about a damaged file, met mid-query, becomes a WorkspaceError naming the catalog."""
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if e.sqlite_errorname not in ('SQLITE_CORRUPT', 'SQLITE_NOTADB'):
                raise
            raise damaged(self.path, e) from e
    return checked


class Catalog:
    """videos, frames and shots tables in one SQLite file (WAL: readers never wait for the writer)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute('PRAGMA journal_mode=WAL')
            self.db.execute('PRAGMA foreign_keys=ON')
            self.db.execute('PRAGMA busy_timeout=5000')
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'videos'").fetchone():
                self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise damaged(path, e) from e

    @_reports_damage
    def version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version)."""
        return self.db.execute('PRAGMA data_version').fetchone()[0]

    @_reports_damage
    def meta(self, key: str, default: int = 0) -> int:
        row = self.db.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return row[0] if row else default

    def next_label(self) -> int:
        """The first label never used: labels are never reused, even after a delete."""
        return self.meta('next_label')

    @_reports_damage
    def videos(self) -> list[VideoRow]:
        """Every stored video, oldest first."""
        rows = self.db.execute('SELECT id, path, duration, fps, width, height, added, first_label, frame_count '
                               'FROM videos ORDER BY first_label').fetchall()
        return [VideoRow(*row) for row in rows]

    @_reports_damage
    def means(self, video_ids: list[str]) -> np.ndarray:
        """The float32 mean frame embedding of each video, one row each."""
        blobs = dict(self.db.execute('SELECT id, mean FROM videos'))
        return np.stack([np.frombuffer(blobs[v], dtype=np.float32) for v in video_ids])

    @_reports_damage
    def frames(self, video_id: str) -> tuple[np.ndarray, list[str]]:
        """A video's keyframe timestamps (seconds, label order) and thumbnail paths."""
        rows = self.db.execute('SELECT timestamp, thumbnail FROM frames WHERE video = ? ORDER BY label',
                               (video_id,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.float64), [r[1] for r in rows]

    @_reports_damage
    def shots(self, video_id: str) -> list[float]:
        return [r[0] for r in self.db.execute('SELECT time FROM shots WHERE video = ? ORDER BY time', (video_id,))]

    @_reports_damage
    def thumbnail(self, label: int) -> str:
        """The thumbnail path of keyframe `label` ('' when no stored video has it)."""
        row = self.db.execute('SELECT thumbnail FROM frames WHERE label = ?', (label,)).fetchone()
        return row[0] if row else ''

    @_reports_damage
    def add_video(self, video: VideoRow, timestamps: list[float], thumbnails: list[str], shots: list[float],
                  mean: np.ndarray, dim: int) -> None:
        """Insert a video with its frames and shots in one transaction, and advance next_label past it."""
        with self.transaction():
            self.db.execute('INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                            (video.id, video.path, video.duration, video.fps, video.width, video.height, video.added,
                             video.first_label, video.frame_count, np.asarray(mean, np.float32).tobytes()))
            self.db.executemany('INSERT INTO frames VALUES (?, ?, ?, ?)',
                                ((video.first_label + i, video.id, float(t), thumb)
                                 for i, (t, thumb) in enumerate(zip(timestamps, thumbnails))))
            self.db.executemany('INSERT INTO shots VALUES (?, ?)', ((video.id, float(t)) for t in shots))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('next_label', ?)",
                            (max(self.next_label(), video.first_label + video.frame_count),))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (dim,))

    @_reports_damage
    def delete_video(self, video_id: str) -> None:
        """Remove a video, its frames and its shots (one transaction)."""
        with self.transaction():
            self.db.execute('DELETE FROM videos WHERE id = ?', (video_id,))

    def transaction(self) -> '_Transaction':
        return _Transaction(self.db)

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute('BEGIN IMMEDIATE')

    def __exit__(self, kind, error, traceback) -> None:
        self.db.execute('COMMIT' if kind is None else 'ROLLBACK')


def damaged(path: Path, error: Exception) -> WorkspaceError:
    """The error for a catalog SQLite cannot read, with the ways back."""
    return WorkspaceError(f'{path}: not a readable VCED catalog ({error}): restore it from a backup, '
                          f'or index your videos into a new --workspace')


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec='seconds')
