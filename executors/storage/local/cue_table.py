"""The local backend's cues in SQLite: each cue with its search keys (an FTS5 index finds the cues
holding a key, fts5vocab counts them) and its text embedding, written in the video's transaction.
Ranking is executors/retrieval/cue_search.py's, the same for every backend."""
import functools
import logging
import sqlite3
import zlib
from typing import Callable

import numpy as np

from executors.documents import CueDoc
from executors.retrieval.cue_search import CueRow
from executors.retrieval.cue_text import keys
from executors.vectors import best_first, float16_scores, widening_buffer

CUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cues (
    id INTEGER PRIMARY KEY,
    video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    cue INTEGER NOT NULL,      -- its place among the video's cues (0, 1, ...)
    start REAL NOT NULL,       -- seconds
    "end" REAL NOT NULL,       -- seconds
    text TEXT NOT NULL,
    source TEXT NOT NULL,      -- srt | vtt | stream | asr
    language TEXT NOT NULL,    -- ISO 639-1, '' when unknown
    keys TEXT NOT NULL,        -- what finds it (executors/retrieval/cue_text.py: keys)
    vector BLOB,               -- float16 text embedding (the query's text tower), NULL when none
    crc INTEGER NOT NULL DEFAULT -1  -- crc32 of its times and text (checksum()); -1: stored before checksums
);
CREATE INDEX IF NOT EXISTS cues_video ON cues(video, start);
CREATE VIRTUAL TABLE IF NOT EXISTS cue_keys USING fts5(
    keys, content='cues', content_rowid='id', tokenize='unicode61 remove_diacritics 0', detail='none');
CREATE VIRTUAL TABLE IF NOT EXISTS cue_key_counts USING fts5vocab(cue_keys, 'row');
CREATE TRIGGER IF NOT EXISTS cues_keys_insert AFTER INSERT ON cues BEGIN
    INSERT INTO cue_keys(rowid, keys) VALUES (new.id, new.keys);
END;
CREATE TRIGGER IF NOT EXISTS cues_keys_delete AFTER DELETE ON cues BEGIN
    INSERT INTO cue_keys(cue_keys, rowid, keys) VALUES ('delete', old.id, old.keys);
END;
"""
OLD_CUE_TABLES = ('cues_fts_insert', 'cues_fts_delete', 'cues_fts_update', 'cue_fts', 'cues')  # before keys
COLUMNS = 'video, cue, start, "end", text, source, language'
CHECKED = f'{COLUMNS}, crc'  # what a read checks: the columns, then the checksum

log = logging.getLogger(__name__)


def checksum(start: float, end: float, text: str) -> int:
    return zlib.crc32(f'{float(start)!r} {float(end)!r} {text}'.encode('utf-8', 'surrogatepass'))


def _intact(rows) -> list[tuple]:
    """The rows (CHECKED columns) whose times and text are as stored; a damaged cue is left out, said once per read."""
    kept = [row[:-1] for row in rows if row[-1] in (-1, checksum(row[2], row[3], row[4]))]
    if len(kept) < len(rows):
        log.warning('%d cue(s) fail their checksum and are left out: index their videos again to mend them',
                    len(rows) - len(kept))
    return kept


def add_cues(db: sqlite3.Connection, video_id: str, cues: list[CueDoc]) -> int:
    """Insert a video's cues with their keys and embeddings (call it inside the video's transaction)."""
    rows = [(video_id, i, float(c.start), float(c.end), c.text, c.source, c.language or '', ' '.join(keys(c.text)),
             _blob(c.embedding), checksum(c.start, c.end, c.text))
            for i, c in enumerate(c for c in cues if c.text.strip())]
    db.executemany(f'INSERT INTO cues ({COLUMNS}, keys, vector, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)
    return len(rows)


def _blob(embedding) -> bytes | None:
    if embedding is None:
        return None
    vector = np.asarray(embedding, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float16).tobytes() if np.isfinite(norm) and norm > 0 else None


def outdated(db: sqlite3.Connection, present: set[str]) -> bool:
    """Whether the cues lack what upgrade() adds, or the full-text index a creation cut short left out."""
    columns = {row[1] for row in db.execute('PRAGMA table_info(cues)')}
    return 'cues' in present and ('cue_keys' not in present or not {'keys', 'crc'} <= columns)


def upgrade(db: sqlite3.Connection) -> None:
    """Re-make the cues of a catalog written before keys and vectors; add checksums' column (inside a transaction)."""
    columns = {row[1] for row in db.execute('PRAGMA table_info(cues)')}
    if 'keys' in columns:
        if 'crc' not in columns:
            db.execute('ALTER TABLE cues ADD COLUMN crc INTEGER NOT NULL DEFAULT -1')
        return
    old = db.execute('SELECT video, start, "end", text, source, language FROM cues ORDER BY video, start, id'
                     ).fetchall() if columns else []
    for name in OLD_CUE_TABLES:
        kind = 'TRIGGER' if name.startswith('cues_fts') else 'TABLE'
        db.execute(f'DROP {kind} IF EXISTS {name}')
    statement = ''
    for line in CUE_SCHEMA.splitlines(keepends=True):  # executescript would commit the transaction
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ''
    by_video: dict[str, list[CueDoc]] = {}
    for video, start, end, text, source, language in old:
        by_video.setdefault(video, []).append(CueDoc(start=start, end=end, text=text, source=source, language=language))
    for video, cues in by_video.items():
        add_cues(db, video, cues)


def reports_errors(method: Callable) -> Callable:
    """SQLite errors met mid-read become the owner's `error(e)` (the catalog's WorkspaceError naming its file)."""
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise self.error(e) from e
    return checked


class CueTable:
    """The cues of one catalog connection, as executors.retrieval.cue_search.CueSource; `error(e)` is the
    exception to raise for an sqlite3.DatabaseError."""

    def __init__(self, db: sqlite3.Connection, error: Callable[[sqlite3.DatabaseError], Exception] = lambda e: e,
                 generation: Callable[[], object] | None = None, videos: Callable[[], dict[str, object]] | None = None):
        self.db, self.error, self.generation, self.videos = db, error, generation, videos
        self._vectors: tuple[object, list[CueRow], np.ndarray, np.ndarray] | None = None  # version, cues, rows, buffer
        self._blocks: dict[str, tuple[object, int, list[CueRow], np.ndarray]] = {}  # per video, as _block gives
        self._total: tuple[object, int] | None = None

    @reports_errors
    def cue_total(self) -> int:
        """The number of cues, counted once per _version(): a count reads every row, 20 ms at a million cues."""
        version = self._version()
        if self._total is None or self._total[0] != version:
            self._total = (version, self.db.execute('SELECT count(*) FROM cues').fetchone()[0])
        return self._total[1]

    def _version(self) -> object:
        """What the cached count and embeddings are kept for: `generation()`, which changes with every commit that
        adds or removes cues; without one, a new object each time (nothing is kept)."""
        return self.generation() if self.generation else object()

    @reports_errors
    def key_frequencies(self, wanted: list[str]) -> dict[str, int]:
        if not wanted:
            return {}
        marks = ', '.join('?' * len(wanted))
        return dict(self.db.execute(f'SELECT term, doc FROM cue_key_counts WHERE term IN ({marks})', wanted))

    @reports_errors
    def cues_with(self, key: str, limit: int) -> list[CueRow]:
        rows = self.db.execute(
            f'SELECT {", ".join("c." + c for c in CHECKED.split(", "))} FROM cue_keys JOIN cues c ON c.id = cue_keys.rowid '
            'WHERE cue_keys MATCH ? ORDER BY c.video, c.cue LIMIT ?', ('"' + key.replace('"', '""') + '"', int(limit)))
        return [CueRow(*row) for row in _intact(rows.fetchall())]

    @reports_errors
    def nearest(self, query: np.ndarray, k: int) -> list[tuple[CueRow, float]]:
        """The `k` cues whose embeddings are nearest a unit `query` (cosine), best first (ties in the order the
        cues were stored); the embeddings are brought up to date once per _version()."""
        version = self._version()
        if self._vectors is None or self._vectors[0] != version:
            self._vectors = (version, *self._embeddings())
        _, rows, matrix, wide = self._vectors
        if not rows or matrix.shape[1] != len(query) or k < 1:
            return []
        scores = float16_scores(matrix, np.ascontiguousarray(query, dtype=np.float32), wide)
        best = best_first(scores, k)
        return [(rows[i], float(scores[i])) for i in best]

    def _embeddings(self) -> tuple[list[CueRow], np.ndarray, np.ndarray]:
        """Every cue with an embedding, its embeddings (float16, 1 KB a cue) and a buffer to widen them into.
        A video's cues are added and removed with it, in one transaction; where the table was given `videos`
        ({video id: what tells this copy of it from one deleted and added again}), the embeddings of videos read
        before are kept and only those of videos new since are read (an index job commits video after video,
        and each search after a commit read them all again: 0.2 s at 25,000 cues)."""
        stored = self.videos() if self.videos else None
        kept = {video: block for video, block in self._blocks.items() if stored and stored.get(video) == block[0]}
        new = [] if stored is None else [video for video in stored if video not in kept]
        read = f'SELECT {COLUMNS}, vector, id, crc FROM cues WHERE vector IS NOT NULL'
        found: dict[str, list] = {video: [] for video in new}
        for batch in [()] if stored is None or not kept else [new[i:i + 500] for i in range(0, len(new), 500)]:
            where = f" AND video IN ({', '.join('?' * len(batch))})" if batch else ''  # (): every cue
            for *row, blob, cue_id in _intact(self.db.execute(read + where, batch).fetchall()):
                found.setdefault(row[0], []).append((cue_id, CueRow(*row), np.frombuffer(blob, dtype=np.float16)))
        self._blocks = {**kept, **{video: _block(stored.get(video) if stored else None, cues)
                                   for video, cues in found.items()}}
        blocks = sorted((block for block in self._blocks.values() if block[2]), key=lambda block: block[1])
        if len({block[3].shape[1] if block[3].ndim == 2 else -1 for block in blocks}) != 1:  # none, or mixed sizes
            return [], np.zeros((0, 1), np.float16), np.zeros((0, 1), np.float32)
        matrix = np.concatenate([block[3] for block in blocks])
        return [row for block in blocks for row in block[2]], matrix, widening_buffer(matrix)


def _block(key: object, cues: list[tuple[int, CueRow, np.ndarray]]) -> tuple[object, int, list[CueRow], np.ndarray]:
    """One video's cues with embeddings, in the order they were stored: (its key, first cue id, cues, embeddings:
    an empty array where their sizes differ)."""
    cues.sort(key=lambda cue: cue[0])
    sizes = {len(vector) for _, _, vector in cues}
    vectors = np.stack([vector for _, _, vector in cues]) if len(sizes) == 1 else np.empty(0, np.float16)
    return key, (cues[0][0] if cues else 0), [row for _, row, _ in cues], vectors


def video_cues(db: sqlite3.Connection, video_id: str) -> list[CueDoc]:
    """Every cue of a video, in time order."""
    rows = db.execute(f'SELECT {CHECKED} FROM cues WHERE video = ? ORDER BY start, id', (video_id,)).fetchall()
    return [CueDoc(video_id=video_id, start=s, end=e, text=t, source=src, language=lang)
            for _, _, s, e, t, src, lang in _intact(rows)]


def cue_counts(db: sqlite3.Connection, source: str = '') -> dict[str, int]:
    """{video id: number of its cues (from `source` only, when given)} for the videos that have any."""
    if source:
        return dict(db.execute('SELECT video, count(*) FROM cues WHERE source = ? GROUP BY video', (source,)).fetchall())
    return dict(db.execute('SELECT video, count(*) FROM cues GROUP BY video').fetchall())
