"""Full-text search over cues: bm25 order, Chinese/Japanese substrings, inert query syntax, cascade delete."""
import sqlite3

import pytest

from executors.retrieval.cue_search import (CUE_SCHEMA, CueHit, add_cues, cue_counts, cue_terms, match_expression,
                                  search_cues, video_cues)
from executors.documents import CueDoc

CUES = {
    'beach': [('A man rides his bike along the beach', 1.0, 3.0, 'en'), ('The waves are loud today', 4.0, 6.0, 'en')],
    'city': [('Traffic in the city centre', 0.0, 2.0, 'en'), ('We rode bikes to the market', 2.0, 4.0, 'en'),
             ('我们去海边吧', 5.0, 7.0, 'zh'), ('海边的日落很美', 8.0, 9.5, 'zh')],
    'tokyo': [('東京タワーに行きました', 1.0, 2.0, 'ja'), ('大海', 3.0, 4.0, 'zh')],
}


@pytest.fixture
def db() -> sqlite3.Connection:
    db = sqlite3.connect(':memory:')
    db.execute('PRAGMA foreign_keys = ON')
    db.execute('CREATE TABLE videos (id TEXT PRIMARY KEY)')
    db.executescript(CUE_SCHEMA)
    for video, cues in CUES.items():
        with db:  # one transaction per video, as the Indexer does
            db.execute('INSERT INTO videos VALUES (?)', (video,))
            add_cues(db, video, [CueDoc(start=s, end=e, text=t, source='srt', language=lang) for t, s, e, lang in cues])
    return db


def texts(hits: list[CueHit]) -> list[str]:
    return [h.text for h in hits]


def test_schema_is_idempotent(db):
    db.executescript(CUE_SCHEMA)
    assert cue_counts(db) == {'beach': 2, 'city': 4, 'tokyo': 2}


def test_english_words_are_stemmed_and_all_required(db):
    assert texts(search_cues(db, 'riding bikes', 10)) == ['A man rides his bike along the beach']
    assert texts(search_cues(db, 'bike market', 10)) == ['We rode bikes to the market']
    assert search_cues(db, 'bike volcano', 10) == []


def test_hits_carry_their_cue_and_a_higher_is_better_score(db):
    hit, = search_cues(db, 'waves', 10)
    assert (hit.video_id, hit.start, hit.end, hit.source, hit.language) == ('beach', 4.0, 6.0, 'srt', 'en')
    assert hit.score > 0
    hits = search_cues(db, 'bike', 10)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize('query, expected', [
    ('海边', ['我们去海边吧', '海边的日落很美']),  # two characters inside longer runs
    ('去海边', ['我们去海边吧']),
    ('海边的日落', ['海边的日落很美']),
    ('海', ['大海', '我们去海边吧', '海边的日落很美']),  # one character: at a run's start, middle and end
    ('吧', ['我们去海边吧']),
    ('タワー', ['東京タワーに行きました']),
    ('東京 タワー', ['東京タワーに行きました']),
    ('ＴＯＫＹＯ', []),  # full-width letters are normalised (and there is no such word)
    ('边海', []),
])
def test_chinese_and_japanese_substrings_match(db, query, expected):
    assert sorted(texts(search_cues(db, query, 10))) == sorted(expected)


def test_terms_index_cjk_runs_as_bigrams():
    assert cue_terms('看海边的日落 at sunset') == '看海 海边 边的 的日 日落 落 at sunset'
    assert match_expression('海边 的') == '"海边" AND "的"*'


@pytest.mark.parametrize('query', ['"', 'bike"', 'AND', 'bike OR', 'NEAR(bike', 'bike*', '-bike', 'col:bike',
                                   '(((', "bike's", '^bike', '{bike}', 'bike + beach'])
def test_query_syntax_characters_are_inert(db, query):
    hits = search_cues(db, query, 10)  # never an sqlite3.OperationalError
    assert all('bike' in h.text.lower() or 'beach' in h.text.lower() for h in hits)


def test_empty_and_stopword_only_queries(db):
    assert search_cues(db, '', 10) == search_cues(db, '  !!  ', 10) == []
    assert texts(search_cues(db, 'the beach', 10)) == ['A man rides his bike along the beach']
    assert len(search_cues(db, 'the', 10)) == 4  # only stopwords: they are searched
    assert search_cues(db, 'bike', 0) == []


def test_limit_and_deterministic_ties(db):
    with db:
        db.execute("INSERT INTO videos VALUES ('twin')")
        add_cues(db, 'twin', [CueDoc(start=9.0, end=10.0, text='The waves are loud today', source='asr')])
    assert [(h.video_id, h.start) for h in search_cues(db, 'waves', 10)] == [('beach', 4.0), ('twin', 9.0)]
    assert len(search_cues(db, 'bike', 1)) == 1


def test_video_cues_in_time_order(db):
    cues = video_cues(db, 'city')
    assert [c.start for c in cues] == [0.0, 2.0, 5.0, 8.0]
    assert (cues[2].video_id, cues[2].text, cues[2].source, cues[2].language) == ('city', '我们去海边吧', 'srt', 'zh')
    assert video_cues(db, 'nothing') == []


def test_deleting_a_video_removes_its_cues_from_search(db):
    with db:
        db.execute("DELETE FROM videos WHERE id = 'city'")
    assert cue_counts(db) == {'beach': 2, 'tokyo': 2}
    assert search_cues(db, '海边', 10) == [] and texts(search_cues(db, '海', 10)) == ['大海']
    db.execute("INSERT INTO cue_fts(cue_fts, rank) VALUES ('integrity-check', 1)")


def test_a_rolled_back_video_leaves_no_cues(db):
    with pytest.raises(sqlite3.IntegrityError):
        with db:
            db.execute("INSERT INTO videos VALUES ('half')")
            add_cues(db, 'half', [CueDoc(start=0, end=1, text='unique zebra words', source='asr')])
            db.execute("INSERT INTO videos VALUES ('half')")  # the video's transaction fails
    assert search_cues(db, 'zebra', 10) == [] and 'half' not in cue_counts(db)


def test_blank_cues_are_not_stored(db):
    with db:
        db.execute("INSERT INTO videos VALUES ('blank')")
        assert add_cues(db, 'blank', [CueDoc(start=0, end=1, text='  ', source='asr')]) == 0
    assert 'blank' not in cue_counts(db)
