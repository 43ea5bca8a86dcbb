"""Full-text search over cues: SQLite FTS5 ranked by bm25, for spaced languages and for Chinese/Japanese/Korean.

FTS5's unicode61 tokenizer takes a run of CJK characters as one token, so 海边 would never match
inside 我们去海边吧. Each cue is therefore indexed through `cue_terms`: NFKC-normalised text in which
every CJK run becomes its overlapping bigrams plus its last character alone
(海边的日落 -> 海边 边的 的日 日落 落), next to the other words as they are. A query is turned into
terms the same way: a CJK run of two or more characters becomes the phrase of its bigrams (an
exact substring match), a lone CJK character the prefix query 海* (every character of a run
starts a bigram or ends the run), every other word a quoted string (FTS5 syntax in user text is
inert). English words are stemmed (porter: rides = riding); common English words are dropped
from queries that have other words. A cue matches when it holds every query term.
"""
import dataclasses
import re
import sqlite3
import unicodedata

from executors.documents import SCREEN, CueDoc

CJK = ('\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf'
       '\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f')
CJK_RUN = re.compile(f'[{CJK}]+')
QUERY_PIECE = re.compile(f'[{CJK}]+|[^\\s{CJK}]+')
STOPWORDS = frozenset('a an the and or of to in on at by for with from is are was were be been it this that these '
                      'those as i you he she we they do does did not no'.split())

CUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cues (
    id INTEGER PRIMARY KEY,
    video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    start REAL NOT NULL,       -- seconds
    "end" REAL NOT NULL,       -- seconds
    text TEXT NOT NULL,
    source TEXT NOT NULL,      -- srt | vtt | stream | asr | screen
    language TEXT NOT NULL,    -- ISO 639-1, '' when unknown
    terms TEXT NOT NULL        -- the text as indexed (cue_terms): CJK runs as bigrams
);
CREATE INDEX IF NOT EXISTS cues_video ON cues(video, start);
CREATE VIRTUAL TABLE IF NOT EXISTS cue_fts USING fts5(
    terms, content='cues', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS cues_fts_insert AFTER INSERT ON cues BEGIN
    INSERT INTO cue_fts(rowid, terms) VALUES (new.id, new.terms);
END;
CREATE TRIGGER IF NOT EXISTS cues_fts_delete AFTER DELETE ON cues BEGIN
    INSERT INTO cue_fts(cue_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
END;
CREATE TRIGGER IF NOT EXISTS cues_fts_update AFTER UPDATE ON cues BEGIN
    INSERT INTO cue_fts(cue_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
    INSERT INTO cue_fts(rowid, terms) VALUES (new.id, new.terms);
END;
"""


@dataclasses.dataclass(frozen=True)
class CueHit:
    """A cue that matches a query; `score` is -bm25 (higher is better)."""

    video_id: str
    start: float
    end: float
    text: str
    source: str
    language: str
    score: float


def cue_terms(text: str) -> str:
    """The text as indexed: NFKC-normalised, each CJK run as overlapping bigrams and its last character."""
    def bigrams(match: re.Match) -> str:
        run = match.group()
        return ' ' + ' '.join([run[i:i + 2] for i in range(len(run) - 1)] + [run[-1]]) + ' '

    return ' '.join(CJK_RUN.sub(bigrams, unicodedata.normalize('NFKC', text)).split())


def match_expression(text: str) -> str:
    """An FTS5 MATCH expression requiring every term of user `text`; '' when it has no searchable term."""
    terms = []
    for piece in QUERY_PIECE.findall(unicodedata.normalize('NFKC', text)):
        if CJK_RUN.fullmatch(piece):
            terms.append(_quote(piece) + '*' if len(piece) == 1 else
                         _quote(' '.join(piece[i:i + 2] for i in range(len(piece) - 1))))
        elif any(ch.isalnum() for ch in piece):
            terms.append(_quote(piece))
    content = [t for t in terms if t.strip('"').lower() not in STOPWORDS]
    return ' AND '.join(content or terms)


def _quote(piece: str) -> str:
    return '"' + piece.replace('"', '""') + '"'


def add_cues(db: sqlite3.Connection, video_id: str, cues: list[CueDoc]) -> int:
    """Insert a video's cues (no transaction of its own: call it inside the video's); the number inserted."""
    rows = [(video_id, float(c.start), float(c.end), c.text, c.source, c.language or '', cue_terms(c.text))
            for c in cues if c.text.strip()]
    db.executemany('INSERT INTO cues (video, start, "end", text, source, language, terms) VALUES (?, ?, ?, ?, ?, ?, ?)',
                   rows)
    return len(rows)


def search_cues(db: sqlite3.Connection, text: str, limit: int, screen: bool = False) -> list[CueHit]:
    """The `limit` cues that best match `text` (every term present), best first; ties by video and time.
    `screen`: on-screen text cues only, else every other cue (subtitles and speech)."""
    expression = match_expression(text)
    if not expression or limit <= 0:
        return []
    rows = db.execute(
        'SELECT c.video, c.start, c."end", c.text, c.source, c.language, -bm25(cue_fts) AS score '
        f"FROM cue_fts JOIN cues c ON c.id = cue_fts.rowid WHERE cue_fts MATCH ? AND c.source {'=' if screen else '!='} ? "
        'ORDER BY score DESC, c.video, c.start, c.id LIMIT ?', (expression, SCREEN, int(limit))).fetchall()
    return [CueHit(*row) for row in rows]


def video_cues(db: sqlite3.Connection, video_id: str) -> list[CueDoc]:
    """Every cue of a video, in time order."""
    rows = db.execute('SELECT start, "end", text, source, language FROM cues WHERE video = ? ORDER BY start, id',
                      (video_id,)).fetchall()
    return [CueDoc(video_id=video_id, start=s, end=e, text=t, source=src, language=lang) for s, e, t, src, lang in rows]


def cue_counts(db: sqlite3.Connection) -> dict[str, int]:
    """{video id: number of cues} for the videos that have any."""
    return dict(db.execute('SELECT video, count(*) FROM cues GROUP BY video').fetchall())
