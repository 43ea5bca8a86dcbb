"""The Milvus backend's cues: rows with their search keys (whitespace-analysed, TEXT_MATCH finds and counts
the cues holding a key) and their text embeddings (the keyframes' dimension, searched by inner product).
Ranking is executors/retrieval/cue_search.py's, the same for every backend."""
from typing import Callable

import numpy as np

from executors.documents import CueDoc
from executors.errors import WorkspaceError
from executors.retrieval.cue_search import CueRow
from executors.retrieval.cue_text import keys

MAX_TEXT = 8192  # characters of a cue kept
MAX_KEYS = 32768  # characters of its keys kept
FIELDS = ['video_id', 'cue', 'start', 'end', 'text', 'source', 'language']
QUERY_LIMIT = 16384  # Milvus caps offset + limit of one query


def cue_rows(video_id: str, cues: list[CueDoc], dim: int, now: int) -> list[dict]:
    """A video's non-blank cues as rows (ids `<video_id>:<n>`), each with its keys and unit embedding (zeros,
    `embedded` false, when it has none of this dimension)."""
    rows = []
    for i, cue in enumerate(c for c in cues if c.text.strip()):
        vector = np.zeros(dim, np.float32) if cue.embedding is None else np.asarray(cue.embedding, np.float32).ravel()
        norm = float(np.linalg.norm(vector)) if len(vector) == dim else 0.0
        embedded = bool(np.isfinite(norm) and norm > 0)
        rows.append({'id': f'{video_id}:{i}', 'video_id': video_id, 'cue': i, 'start': float(cue.start),
                     'end': float(cue.end), 'text': cue.text[:MAX_TEXT], 'source': cue.source[:16],
                     'language': cue.language[:16], 'written': now,
                     'keys': ' '.join(keys(cue.text[:MAX_TEXT]))[:MAX_KEYS],
                     'embedded': embedded, 'vector': (vector / norm if embedded else np.zeros(dim)).tolist()})
    return rows


class MilvusCues:
    """One library's cue collection, as executors.retrieval.cue_search.CueSource; `stored(ids)` says which
    video ids are committed (a pending video's cues are never answered)."""

    def __init__(self, client, name: str, location: str, stored: Callable[[set[str]], set[str]]):
        self.client, self.name, self.location, self.stored = client, name, location, stored
        self._checked = False

    def check(self) -> None:
        """Refuse a cue collection made before keys and embeddings (it cannot answer by these rules)."""
        if self._checked:
            return
        fields = {f['name'] for f in self.client.describe_collection(self.name)['fields']}
        if not {'keys', 'embedded'} <= fields:
            raise WorkspaceError(f'{self.location}: its cues were stored by an older VCED (without search keys): '
                                 f'index the videos again into a new library (another uri or prefix)')
        self._checked = True

    def cue_total(self) -> int:
        return int(self.client.query(self.name, filter='', output_fields=['count(*)'])[0]['count(*)'])

    def key_frequencies(self, wanted: list[str]) -> dict[str, int]:
        found = {}
        for key in wanted:
            if _safe(key):
                rows = self.client.query(self.name, filter=f"TEXT_MATCH(keys, '{key}')", output_fields=['count(*)'])
                found[key] = int(rows[0]['count(*)'])
        return found

    def cues_with(self, key: str, limit: int) -> list[CueRow]:
        if not _safe(key) or limit < 1:
            return []
        rows = self.client.query(self.name, filter=f"TEXT_MATCH(keys, '{key}')", output_fields=FIELDS,
                                 limit=min(QUERY_LIMIT, 4 * limit))
        stored = self.stored({row['video_id'] for row in rows})
        rows = sorted((row for row in rows if row['video_id'] in stored), key=lambda row: (row['video_id'], row['cue']))
        return [CueRow(*(row[f] for f in FIELDS)) for row in rows[:limit]]

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[CueRow, float]]:
        """The `k` embedded cues nearest a unit `query` (inner product), best first."""
        if k < 1:
            return []
        limit = min(k, QUERY_LIMIT)
        hits = self.client.search(self.name, data=[np.asarray(query, np.float32).ravel().tolist()],
                                  anns_field='vector', limit=limit, filter='embedded == true', output_fields=FIELDS,
                                  search_params={'metric_type': 'IP'})[0]
        stored = self.stored({hit['entity']['video_id'] for hit in hits})
        return [(CueRow(*(hit['entity'][f] for f in FIELDS)), float(hit['distance']))
                for hit in hits if hit['entity']['video_id'] in stored]


def _safe(key: str) -> bool:
    """Keys are letters, digits and CJK characters; anything else would not be one whitespace token."""
    return bool(key) and not any(ch in key for ch in "'\"\\ \t\n")
