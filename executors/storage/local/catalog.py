"""The workspace's metadata in SQLite: videos, their keyframes (label -> time, thumbnail), shot cuts, cues."""
import logging
import os
import re
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from executors.storage.local import cue_table
from executors.storage.local.cue_table import reports_errors
from executors.documents import CueDoc
from executors.errors import WorkspaceError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);  -- next_label, dim, generation
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- image_space, image_model
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, duration REAL NOT NULL, fps REAL NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, added TEXT NOT NULL,
    first_label INTEGER NOT NULL, frame_count INTEGER NOT NULL,
    mean BLOB NOT NULL,  -- float32 mean of the frame embeddings (CLIP4Clip's meanP)
    size INTEGER NOT NULL DEFAULT 0, mtime_ns INTEGER NOT NULL DEFAULT 0,  -- the file's, when indexed
    checksum INTEGER NOT NULL DEFAULT -1,  -- crc32 of its float16 embedding rows (-1: not recorded)
    mean_crc INTEGER NOT NULL DEFAULT -1  -- crc32 of `mean` (-1: not recorded)
);
CREATE TABLE IF NOT EXISTS frames (
    label INTEGER PRIMARY KEY, video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    timestamp REAL NOT NULL, thumbnail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_video ON frames(video);
CREATE TABLE IF NOT EXISTS shots (video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS shots_video ON shots(video);
"""
ADDED_COLUMNS = {'size': 'INTEGER NOT NULL DEFAULT 0', 'mtime_ns': 'INTEGER NOT NULL DEFAULT 0',
                 'checksum': 'INTEGER NOT NULL DEFAULT -1',  # workspaces made before these columns existed
                 'mean_crc': 'INTEGER NOT NULL DEFAULT -1'}  # crc32 of `mean` (-1: not recorded)
VIDEO_COLUMNS = 'id, path, duration, fps, width, height, added, first_label, frame_count, size, mtime_ns, checksum'
DAMAGED = ('SQLITE_CORRUPT', 'SQLITE_NOTADB')


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
    size: int = 0
    mtime_ns: int = 0
    checksum: int = -1


SCHEMA_OBJECTS = re.findall(r'CREATE (?:VIRTUAL )?(?:TABLE|INDEX|TRIGGER) IF NOT EXISTS (\w+)',
                            SCHEMA + cue_table.CUE_SCHEMA)


class Catalog:
    """The tables above in one SQLite file (WAL: readers never wait for the writer).

    `create`: make the schema in a new or empty file; otherwise a file without it is an error
    (an emptied catalog next to stored embeddings must never read as an empty library).
    """

    def __init__(self, path: Path, create: bool):
        self.path = path
        try:
            self.db = _connect(path, create)
            self.db.execute('PRAGMA foreign_keys=ON')
            self.db.execute('PRAGMA busy_timeout=10000')
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'videos'").fetchone():
                if not create:
                    raise WorkspaceError(f'{path}: holds no VCED catalog ({os.path.getsize(path)} bytes), though the '
                                         f'workspace holds indexed embeddings: restore it from a backup, or index your '
                                         f'videos into a new --workspace')
                self.db.execute('PRAGMA journal_mode=WAL')
                self._create_schema()
            self._upgrade()
            self.cue_table = cue_table.CueTable(self.db, self.error, self.generation, self.first_labels)  # cue_search
        except sqlite3.DatabaseError as e:
            raise catalog_error(path, e) from e

    def error(self, e: sqlite3.DatabaseError) -> WorkspaceError:
        """An SQLite error met mid-query as a WorkspaceError naming the catalog and the cause."""
        return catalog_error(self.path, e)

    def _create_schema(self) -> None:
        """Every table, index and trigger, all or none (a full disk mid-way leaves the file as it was)."""
        try:
            self.db.executescript('BEGIN;\n' + SCHEMA + cue_table.CUE_SCHEMA + '\nCOMMIT;')
        except BaseException:
            if self.db.in_transaction:
                self.db.execute('ROLLBACK')
            raise

    def _upgrade(self) -> None:
        """Add what newer versions store to a catalog made by an older one, and what a creation cut short
        left out (the cues' full-text index is then rebuilt from the cues)."""
        columns = {row[1] for row in self.db.execute('PRAGMA table_info(videos)')}
        missing = [name for name in ADDED_COLUMNS if name not in columns]
        present = {row[0] for row in self.db.execute('SELECT name FROM sqlite_master')}
        if missing or cue_table.outdated(self.db, present):
            with self.transaction():
                columns = {row[1] for row in self.db.execute('PRAGMA table_info(videos)')}  # another process's?
                for name in (n for n in missing if n not in columns):
                    self.db.execute(f'ALTER TABLE videos ADD COLUMN {name} {ADDED_COLUMNS[name]}')
                if 'cues' in present:
                    cue_table.upgrade(self.db)  # cues stored before keys and vectors: re-made with them
            present = {row[0] for row in self.db.execute('SELECT name FROM sqlite_master')}
        absent = [name for name in SCHEMA_OBJECTS if name not in present]
        if absent:
            log.warning('%s: adding what it lacks (%s)', self.path, ', '.join(absent))
            self._create_schema()
            if 'cue_keys' in absent:
                with self.transaction():
                    self.db.execute("INSERT INTO cue_keys(cue_keys) VALUES ('rebuild')")

    @reports_errors
    def version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version)."""
        return self.db.execute('PRAGMA data_version').fetchone()[0]

    @reports_errors
    def meta(self, key: str, default: int = 0) -> int:
        row = self.db.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return row[0] if row else default

    @reports_errors
    def info(self, key: str) -> str:
        row = self.db.execute('SELECT value FROM info WHERE key = ?', (key,)).fetchone()
        return row[0] if row else ''

    def next_label(self) -> int:
        """The first label never used: labels are never reused, even after a delete."""
        return self.meta('next_label')

    def first_labels(self) -> dict[str, int]:  # {video id: its first label}: a label is never used twice
        return dict(self.db.execute('SELECT id, first_label FROM videos'))

    def generation(self) -> int:
        """Counts every add and delete ever committed: a graph saved at a later generation is from the future."""
        return self.meta('generation')

    @reports_errors
    def videos(self) -> list[VideoRow]:
        """Every stored video, oldest first."""
        rows = self.db.execute(f'SELECT {VIDEO_COLUMNS} FROM videos ORDER BY first_label').fetchall()
        return [VideoRow(row[0], _path_of(row[1]), *row[2:]) for row in rows]

    @reports_errors
    def frame_rows(self) -> int:
        return self.db.execute('SELECT COUNT(*) FROM frames').fetchone()[0]

    @reports_errors
    def means(self, video_ids: list[str], dim: int) -> tuple[np.ndarray, list[int]]:
        """The float32 mean frame embedding of each video, one row each, and the rows whose stored mean
        fails its checksum (zeros here: the caller computes them again from the embeddings)."""
        stored = {v: (blob, crc) for v, blob, crc in self.db.execute('SELECT id, mean, mean_crc FROM videos')}
        means, damaged = np.zeros((len(video_ids), dim), dtype=np.float32), []
        for row, video_id in enumerate(video_ids):
            blob, crc = stored[video_id]
            if len(blob) != dim * 4 or crc not in (-1, zlib.crc32(blob)):
                damaged.append(row)
            else:
                means[row] = np.frombuffer(blob, dtype=np.float32)
        return means, damaged

    @reports_errors
    def frames(self, video_id: str) -> tuple[np.ndarray, list[str]]:
        """A video's keyframe timestamps (seconds, label order) and thumbnail paths."""
        rows = self.db.execute('SELECT timestamp, thumbnail FROM frames WHERE video = ? ORDER BY label',
                               (video_id,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.float64), [_path_of(r[1]) for r in rows]

    @reports_errors
    def frame_times(self, video_id: str) -> np.ndarray:
        """A video's keyframe timestamps (seconds, label order), without the thumbnails."""
        rows = self.db.execute('SELECT timestamp FROM frames WHERE video = ? ORDER BY label', (video_id,))
        return np.fromiter((r[0] for r in rows), dtype=np.float64)

    @reports_errors
    def all_times_and_shots(self) -> dict[str, tuple[np.ndarray, list[float]]]:
        """Every stored video's keyframe timestamps (label order) and shot cuts, by video id, in two queries."""
        found: dict[str, tuple[list[float], list[float]]] = {}
        for video, timestamp in self.db.execute('SELECT video, timestamp FROM frames ORDER BY label'):
            found.setdefault(video, ([], []))[0].append(timestamp)
        for video, time in self.db.execute('SELECT video, time FROM shots ORDER BY video, time'):
            found.setdefault(video, ([], []))[1].append(time)
        return {video: (np.array(times, dtype=np.float64), shots) for video, (times, shots) in found.items()}

    @reports_errors
    def thumbnail(self, label: int) -> str:
        """The thumbnail path of one keyframe ('' when the label is not stored)."""
        row = self.db.execute('SELECT thumbnail FROM frames WHERE label = ?', (label,)).fetchone()
        return _path_of(row[0]) if row else ''

    @reports_errors
    def shots(self, video_id: str) -> list[float]:
        return [r[0] for r in self.db.execute('SELECT time FROM shots WHERE video = ? ORDER BY time', (video_id,))]

    @reports_errors
    def cues(self, video_id: str) -> list[CueDoc]:
        return cue_table.video_cues(self.db, video_id)

    @reports_errors
    def cue_counts(self, source: str = '') -> dict[str, int]:
        return cue_table.cue_counts(self.db, source)

    @reports_errors
    def add_video(self, video: VideoRow, timestamps: list[float], thumbnails: list[str], shots: list[float],
                  cues: list[CueDoc], mean: np.ndarray, dim: int, space: dict[str, str]) -> None:
        """Insert a video with its frames, shots and cues in one transaction; advance next_label past it."""
        with self.transaction():
            mean = np.asarray(mean, np.float32).tobytes()
            self.db.execute(f'INSERT INTO videos ({VIDEO_COLUMNS}, mean, mean_crc) VALUES ({", ".join("?" * 14)})',
                            (video.id, _db_path(video.path), video.duration, video.fps, video.width, video.height,
                             video.added, video.first_label, video.frame_count, video.size, video.mtime_ns,
                             video.checksum, mean, zlib.crc32(mean)))
            self.db.executemany('INSERT INTO frames VALUES (?, ?, ?, ?)',
                                ((video.first_label + i, video.id, float(t), _db_path(thumb))
                                 for i, (t, thumb) in enumerate(zip(timestamps, thumbnails))))
            self.db.executemany('INSERT INTO shots VALUES (?, ?)', ((video.id, float(t)) for t in shots))
            cue_table.add_cues(self.db, video.id, cues)
            self._set_meta(next_label=max(self.next_label(), video.first_label + video.frame_count), dim=dim,
                           generation=self.generation() + 1)
            self.db.executemany('INSERT OR REPLACE INTO info VALUES (?, ?)', space.items())

    @reports_errors
    def delete_video(self, video_id: str) -> None:
        """Remove a video, its frames, shots and cues (one transaction)."""
        with self.transaction():
            self.db.execute('DELETE FROM videos WHERE id = ?', (video_id,))
            self._set_meta(generation=self.generation() + 1)

    def _set_meta(self, **values: int) -> None:
        self.db.executemany('INSERT OR REPLACE INTO meta VALUES (?, ?)', values.items())

    def transaction(self) -> '_Transaction':
        """A write: other writers wait for it, readers see all of it or none."""
        return _Transaction(self.db, 'BEGIN IMMEDIATE')

    def snapshot(self) -> '_Transaction':
        """Reads that see one committed state, whatever other processes commit meanwhile."""
        return _Transaction(self.db, 'BEGIN')

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """`begin` ... COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection, begin: str):
        self.db, self.begin = db, begin

    def __enter__(self):
        self.db.execute(self.begin)

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.db.execute('COMMIT')
        elif self.db.in_transaction:
            self.db.execute('ROLLBACK')


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    """A connection to the catalog; read-only when the disk is too full for SQLite's working files
    (a full disk must not make a healthy library unreadable)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute('SELECT 1 FROM sqlite_master LIMIT 1').fetchall()
        return db
    except sqlite3.OperationalError:
        if create or not _disk_full(path):
            raise
        db.close()
    return sqlite3.connect(f'file:{path}?immutable=1', uri=True, isolation_level=None, check_same_thread=False)


def _disk_full(path: Path) -> bool:
    try:
        status = os.statvfs(path.parent)
    except OSError:
        return False
    return status.f_bavail * status.f_frsize < 1 << 20


def catalog_error(path: Path, error: sqlite3.Error) -> WorkspaceError:
    """The one-line error for what SQLite reported about the catalog, with the way out."""
    name = getattr(error, 'sqlite_errorname', '')
    if name in DAMAGED:
        return WorkspaceError(f'{path}: not a readable VCED catalog ({error}): restore it from a backup, '
                              f'or index your videos into a new --workspace')
    if name == 'SQLITE_FULL' or _disk_full(path):
        return WorkspaceError(f'{path}: the disk is full ({error}); nothing was lost: free some space and run again')
    if name in ('SQLITE_READONLY', 'SQLITE_PERM', 'SQLITE_AUTH') or 'readonly' in str(error):
        return WorkspaceError(f'{path}: cannot write the catalog ({error}): check the permissions of its folder')
    if name in ('SQLITE_BUSY', 'SQLITE_LOCKED'):
        return WorkspaceError(f'{path}: another process holds the catalog too long ({error}); try again')
    return WorkspaceError(f'{path}: cannot use the catalog ({error}); if the disk is full or read-only, '
                          f'free space or fix its permissions')


def _db_path(path: str) -> str | bytes:
    """A path as SQLite can hold it: text, or its raw bytes when the name is not valid UTF-8."""
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def _path_of(value: str | bytes) -> str:
    return value if isinstance(value, str) else os.fsdecode(value)


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec='seconds')
