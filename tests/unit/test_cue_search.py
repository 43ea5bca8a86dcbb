"""Search over what is said (local SQLite cues, executors/retrieval/cue_search.py's ranking): coverage with
bm25, windows of adjacent cues, words normalised the same at index and query time, CJK, inert syntax."""
import sqlite3

import numpy as np
import pytest

from executors.documents import CueDoc
from executors.retrieval.cue_search import CueHit, merge_meaning, meaning_hits, search
from executors.retrieval.cue_text import keys, words
from executors.storage.local.cue_table import CUE_SCHEMA, CueTable, add_cues, cue_counts, upgrade, video_cues

CUES = {
    'beach': [('A man rides his bike along the beach', 1.0, 3.0, 'en'), ('The waves are loud today', 4.0, 6.0, 'en')],
    'city': [('Traffic in the city centre', 0.0, 2.0, 'en'), ('We rode bikes to the market', 2.0, 4.0, 'en'),
             ('我们去海边吧', 5.0, 7.0, 'zh'), ('海边的日落很美', 8.0, 9.5, 'zh')],
    'tokyo': [('東京タワーに行きました', 1.0, 2.0, 'ja'), ('大海', 3.0, 4.0, 'zh')],
}


def make_db(cues: dict) -> sqlite3.Connection:
    db = sqlite3.connect(':memory:')
    db.execute('PRAGMA foreign_keys = ON')
    db.execute('CREATE TABLE videos (id TEXT PRIMARY KEY)')
    db.executescript(CUE_SCHEMA)
    for video, rows in cues.items():
        with db:  # one transaction per video, as the catalog does
            db.execute('INSERT INTO videos VALUES (?)', (video,))
            add_cues(db, video, [CueDoc(start=s, end=e, text=t, source='srt', language=lang) for t, s, e, lang in rows])
    return db


@pytest.fixture
def db() -> sqlite3.Connection:
    return make_db(CUES)


def find(db, text: str, limit: int = 10) -> list[CueHit]:
    return search(CueTable(db), text, limit)


def texts(hits: list[CueHit]) -> list[str]:
    return [h.text for h in hits]


def test_schema_is_idempotent(db):
    db.executescript(CUE_SCHEMA)
    assert cue_counts(db) == {'beach': 2, 'city': 4, 'tokyo': 2}


def test_english_words_are_stemmed(db):
    assert texts(find(db, 'riding bikes')) == ['A man rides his bike along the beach', 'We rode bikes to the market']
    best = find(db, 'bike market')[0]  # bikes by its stem, market as said
    assert best.text == 'We rode bikes to the market' and 0.8 < best.coverage < 1
    assert find(db, 'volcano eruption') == []


def test_hits_carry_their_cue_and_a_higher_is_better_score(db):
    hit, = find(db, 'waves')
    assert (hit.video_id, hit.start, hit.end, hit.source, hit.language) == ('beach', 4.0, 6.0, 'srt', 'en')
    assert hit.score == hit.coverage == 1.0 and hit.bm25 > 0
    hits = find(db, 'bike')
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
])
def test_chinese_and_japanese_substrings_match(db, query, expected):
    assert sorted(h.text for h in find(db, query) if h.coverage == 1) == sorted(expected)


@pytest.mark.parametrize('query', ['"', 'bike"', 'AND', 'bike OR', 'NEAR(bike', 'bike*', '-bike', 'col:bike',
                                   '(((', "bike's", '^bike', '{bike}', 'bike + beach'])
def test_query_syntax_characters_are_inert(db, query):
    hits = find(db, query)  # never an sqlite3.OperationalError
    assert all('bike' in h.text.lower() or 'beach' in h.text.lower() for h in hits)


def test_empty_and_stopword_only_queries(db):
    assert find(db, '') == find(db, '  !!  ') == []
    assert texts(find(db, 'the beach')) == ['A man rides his bike along the beach']
    assert len(find(db, 'the')) == 4  # only stopwords: they are searched
    assert find(db, 'bike', 0) == []


def test_limit_and_deterministic_ties(db):
    with db:
        db.execute("INSERT INTO videos VALUES ('twin')")
        add_cues(db, 'twin', [CueDoc(start=9.0, end=10.0, text='The waves are loud today', source='asr')])
    assert [(h.video_id, h.start) for h in find(db, 'waves')] == [('beach', 4.0), ('twin', 9.0)]
    assert len(find(db, 'bike', 1)) == 1


def test_video_cues_in_time_order(db):
    cues = video_cues(db, 'city')
    assert [c.start for c in cues] == [0.0, 2.0, 5.0, 8.0]
    assert (cues[2].video_id, cues[2].text, cues[2].source, cues[2].language) == ('city', '我们去海边吧', 'srt', 'zh')
    assert video_cues(db, 'nothing') == []


def test_deleting_a_video_removes_its_cues_from_search(db):
    with db:
        db.execute("DELETE FROM videos WHERE id = 'city'")
    assert cue_counts(db) == {'beach': 2, 'tokyo': 2}
    assert find(db, '海边') == [] and texts(find(db, '海')) == ['大海']
    db.execute("INSERT INTO cue_keys(cue_keys, rank) VALUES ('integrity-check', 1)")


def test_a_rolled_back_video_leaves_no_cues(db):
    with pytest.raises(sqlite3.IntegrityError):
        with db:
            db.execute("INSERT INTO videos VALUES ('half')")
            add_cues(db, 'half', [CueDoc(start=0, end=1, text='unique zebra words', source='asr')])
            db.execute("INSERT INTO videos VALUES ('half')")  # the video's transaction fails
    assert find(db, 'zebra') == [] and 'half' not in cue_counts(db)


def test_blank_cues_are_not_stored(db):
    with db:
        db.execute("INSERT INTO videos VALUES ('blank')")
        assert add_cues(db, 'blank', [CueDoc(start=0, end=1, text='  ', source='asr')]) == 0
    assert 'blank' not in cue_counts(db)


# ------------------------------------------------------------------ coverage, windows (issue 24, item 5)

TALK = {
    'kitchen': [('Good evening and welcome back', 0.0, 2.0, 'en'),
                ('the chef slices onions on the old wooden board', 2.5, 6.0, 'en'),
                ('while the soup is simmering', 6.5, 8.0, 'en'),
                ('then we walk down to the beach', 30.0, 33.0, 'en')],
    'other': [('the weather is the best part of the day', 0.0, 3.0, 'en')],
}


def test_a_pasted_sentence_finds_its_cue_when_most_of_its_words_are_there():
    db = make_db(TALK)
    hits = find(db, 'The chef slices the onions on an old board in the kitchen')  # 'kitchen' is not said
    assert hits[0].text == 'the chef slices onions on the old wooden board' and 0.5 < hits[0].coverage < 1


def test_a_sentence_recognised_as_two_cues_is_found_as_one_window():
    db = make_db(TALK)
    [hit, *_] = find(db, 'the chef slices onions on the old wooden board while the soup is simmering')
    assert (hit.start, hit.end, hit.coverage) == (2.5, 8.0, 1.0)
    assert hit.text == 'the chef slices onions on the old wooden board while the soup is simmering'


def test_a_stop_word_is_no_evidence_and_far_apart_cues_are_not_merged():
    db = make_db(TALK)
    assert {h.video_id for h in find(db, 'the chef slices onions')} == {'kitchen'}
    hits = find(db, 'chef beach')  # said 24 s apart: two results at most, never one span
    assert all(h.end - h.start < 5 for h in hits)
    assert find(db, 'chef volcano eruption lava') == []  # a quarter of the query is too little


def test_a_cue_holding_every_word_ranks_above_partial_ones():
    db = make_db({'a': [('onions and garlic', 0.0, 1.0, 'en')], 'b': [('the chef slices onions', 0.0, 1.0, 'en')]})
    assert [h.video_id for h in find(db, 'chef slices onions')] == ['b']
    assert [h.coverage == 1.0 for h in find(db, 'onions garlic')] == [True]


# ------------------------------------------------------------------ normalisation (issue 24, item 6)

@pytest.mark.parametrize('said, query', [
    ('the lighthouse keeper waved', 'light house keeper'),
    ('the light housekeeper waved', 'lighthouse keeper'),
    ('they found finger prints on the glass', 'fingerprints'),
    ('they found fingerprints on the glass', 'finger prints'),
    ('the fire-fighters came quickly', 'firefighters'),
    ('the firefighters came quickly', 'fire fighters'),
    ('she bought twelve pumpkins', '12 pumpkins'),
    ('she bought 12 pumpkins', 'twelve pumpkins'),
    ('eight candles', '8 candles'),
    ('we meet at 7.15 tonight', 'seven fifteen'),
    ('we meet at seven fifteen tonight', '7:15'),
    ('twenty five lanterns', '25 lanterns'),
    ("please don't go", 'dont go'),
    ("they'll arrive at nine o'clock", 'theyll arrive oclock'),
    ('the boats in the harbour', 'harbor boats'),
    ('the colorful theater', 'colourful theatre'),
    ('我们在海邊看日出', '海边'),
    ('我们在海边看日出', '海邊'),
    ('海边的日出很美', '海边日出'),
])
def test_words_match_as_people_say_and_type_them(said, query):
    db = make_db({'v': [(said, 0.0, 2.0, '')], 'noise': [('nothing related is said here', 0.0, 2.0, '')]})
    [hit] = find(db, query)
    assert hit.text == said and hit.coverage >= 0.8


def test_exact_forms_rank_above_stems():
    db = make_db({'garden': [('she walked in the garden', 0.0, 2.0, 'en')],
                  'gardener': [('the gardener walked in', 0.0, 2.0, 'en')]})
    assert [h.video_id for h in find(db, 'gardener')] == ['gardener', 'garden']
    assert [h.video_id for h in find(db, 'garden')] == ['garden', 'gardener']


def test_index_and_query_normalise_alike():
    assert words("Don't wait: twenty-five Colours at 7.15") == ['dont', 'wait', '25', 'colors', 'at', '7', '15']
    assert keys('海邊日落') == ['海边', '边日', '日落', '海', '边', '日', '落']
    assert 'lighthous' in keys('light house')


def test_an_old_catalog_cue_table_is_remade_with_keys():
    db = sqlite3.connect(':memory:')
    db.executescript("""CREATE TABLE videos (id TEXT PRIMARY KEY);
        CREATE TABLE cues (id INTEGER PRIMARY KEY, video TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
            start REAL NOT NULL, "end" REAL NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL,
            language TEXT NOT NULL, terms TEXT NOT NULL);
        CREATE VIRTUAL TABLE cue_fts USING fts5(terms, content='cues', content_rowid='id');
        INSERT INTO videos VALUES ('v');
        INSERT INTO cues VALUES (1, 'v', 4.0, 5.0, 'the boats in the harbour', 'srt', 'en', 'x');
        INSERT INTO cues VALUES (2, 'v', 1.0, 2.0, 'good morning', 'srt', 'en', 'x');""")
    db.execute('BEGIN')
    upgrade(db)
    db.execute('COMMIT')
    [hit] = find(db, 'harbor')
    assert (hit.video_id, hit.start, hit.text) == ('v', 4.0, 'the boats in the harbour')
    assert [c.text for c in video_cues(db, 'v')] == ['good morning', 'the boats in the harbour']


# ------------------------------------------------------------------ meaning (issue 24, item 7)

def test_cue_embeddings_are_stored_and_found_by_cosine():
    db = make_db({})
    vectors = np.eye(4, dtype=np.float32)
    with db:
        db.execute("INSERT INTO videos VALUES ('v')")
        add_cues(db, 'v', [CueDoc(start=float(i), end=i + 0.5, text=f'cue {i}', embedding=vectors[i] * 3)
                           for i in range(3)] + [CueDoc(start=9.0, end=9.5, text='no embedding')])
    query = np.array([0.1, 0.0, 0.99, 0.0], np.float32)
    found = CueTable(db).nearest(query / np.linalg.norm(query), 2)
    assert [(row.text, row.cue) for row, _ in found] == [('cue 2', 2), ('cue 0', 0)]
    assert found[0][1] == pytest.approx(0.995, abs=2e-3)


def test_meaning_hits_join_the_word_hits_below_a_full_word_match():
    db = make_db(TALK)
    by_words = find(db, 'chef slices onions')
    rows = {row.text: row for row in CueTable(db).cues_with('soup', 5) + CueTable(db).cues_with('chef', 5)}
    found = [(rows['while the soup is simmering'], 0.95), (rows['the chef slices onions on the old wooden board'], 0.9),
             (rows['while the soup is simmering'], 0.5)]
    by_meaning = meaning_hits(found, floor=0.8)
    assert [h.text for h in by_meaning] == ['while the soup is simmering', 'the chef slices onions on the old wooden board']
    merged = merge_meaning(by_words, by_meaning, 10)
    assert [h.text for h in merged] == ['the chef slices onions on the old wooden board', 'while the soup is simmering']
    assert merged[0].coverage == 1.0 and merged[0].meaning == pytest.approx(0.5)
    assert 0 < merged[1].score < 1 and merged[1].coverage == 0


def test_cue_embeddings_kept_across_commits_find_what_a_fresh_read_finds():
    """Each commit of an index job changes the catalog's version; only the videos new since are read again. A video
    deleted and added again between two searches (the same id, other cues) is read again: its key changed."""
    db, keys, rng = make_db({}), {}, np.random.default_rng(0)
    generation = [0]  # as the catalog's: one more with each commit
    kept = CueTable(db, generation=lambda: generation[0],
                    videos=lambda: {video: keys[video] for (video,) in db.execute('SELECT id FROM videos')})

    def add(video: str, count: int):
        keys[video] = len(keys) + 1 + max(keys.values(), default=0)  # as the catalog's first labels: never reused
        with db:
            db.execute('INSERT INTO videos VALUES (?)', (video,))
            add_cues(db, video, [CueDoc(start=float(i), end=i + 0.5, text=f'{video} {i}', embedding=rng.normal(size=8))
                                 for i in range(count)] + [CueDoc(start=99.0, end=99.5, text='no embedding')])

    def delete(video: str):
        with db:
            db.execute('DELETE FROM videos WHERE id = ?', (video,))

    query = rng.normal(size=8).astype(np.float32)
    query /= np.linalg.norm(query)
    for change in [lambda: add('a', 5), lambda: add('b', 7), lambda: add('c', 2),
                   lambda: delete('a'), lambda: (delete('b'), add('b', 4)), lambda: add('a', 3)]:
        change()
        generation[0] += 1
        found = [(row.video_id, row.text, round(score, 5)) for row, score in kept.nearest(query, 50)]
        assert found == [(row.video_id, row.text, round(score, 5)) for row, score in CueTable(db).nearest(query, 50)]
    assert sorted({video for video, _, _ in found}) == ['a', 'b', 'c'] and len(found) == 3 + 4 + 2
