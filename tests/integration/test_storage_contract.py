"""The storage contract (executors/storage/interface.py) that every backend passes."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from executors.documents import CueDoc
from executors.errors import WorkspaceError
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from executors.storage.backends import open_storage

DIM = 16
SPACE = ImageSpace('a' * 64, 'tiny')
BACKENDS = ['local', 'milvus']


@pytest.fixture(params=BACKENDS)
def opener(request, tmp_path):
    """Opens the same library again each call (a second process, or the same one after a restart)."""
    def open_again():
        return open_storage(request.param, workspace=str(tmp_path / 'ws'), lock_wait=1.0)
    return open_again


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video(name: str, frames: int, seed: int, folder: Path) -> tuple[VideoRecord, Frames, list[float], list[CueDoc]]:
    rng = np.random.default_rng(seed)
    video_id = hashlib.sha256(name.encode()).hexdigest()
    vectors = unit(rng.normal(size=(frames, DIM)))
    thumbs = folder / f'staged-{name}'
    thumbs.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        (thumbs / f'{i}.jpg').write_bytes(b'jpeg')
    record = VideoRecord(video_id, f'/videos/{name}', duration=float(frames), fps=25.0, width=64, height=48)
    timestamps = np.arange(frames, dtype=np.float64)
    cues = [CueDoc(video_id=video_id, start=1.0, end=2.5, text=f'the {name} speaker says hello', source='srt',
                   language='en')]
    return record, Frames(timestamps, vectors, [str(thumbs / f'{i}.jpg') for i in range(frames)]), [2.0], cues


def test_an_empty_library_answers_everything_with_nothing(opener):
    storage = opener()
    assert storage.videos() == [] and storage.find(video_id='abcdef') == [] and storage.video('ab' * 32) is None
    assert len(storage.nearest(unit(np.ones(DIM)), 10)) == 0
    assert storage.video_means()[0] == [] and storage.image_space() is None
    assert storage.search_cues('hello', 10) == []
    assert storage.delete('ab' * 32) is False
    storage.close()


def test_an_added_video_is_whole_everywhere_and_only_once(opener, tmp_path):
    storage = opener()
    record, frames, shots, cues = video('a.mp4', 6, 0, tmp_path)
    assert storage.add(record, frames, shots, cues, SPACE) is True
    [stored] = storage.videos()
    assert (stored.id, stored.path, stored.frame_count, stored.duration) == (record.id, record.path, 6, 6.0)
    assert stored.added and storage.video(record.id).id == record.id
    got = storage.frames(record.id)
    np.testing.assert_array_equal(got.timestamps, frames.timestamps)
    np.testing.assert_allclose(got.vectors, frames.vectors, atol=2e-3)  # kept at any precision >= float16
    assert all(Path(t).is_file() for t in got.thumbnails)
    assert storage.shots(record.id) == [2.0]
    assert [(c.start, c.end, c.text) for c in storage.cues(record.id)] == [(1.0, 2.5, 'the a.mp4 speaker says hello')]
    nearest = storage.nearest(frames.vectors[4], 3)
    assert nearest.video_ids[0] == record.id and nearest.frames[0] == 4 and nearest.scores[0] == pytest.approx(1, abs=2e-3)
    ids, means = storage.video_means()
    assert ids == [record.id] and np.linalg.norm(means[0]) == pytest.approx(1, abs=1e-4)
    assert storage.image_space().identity == SPACE.identity
    hits = storage.search_cues('speaker hello', 5)
    assert [(h.video_id, h.start, h.end) for h in hits] == [(record.id, 1.0, 2.5)]
    assert storage.find(video_id=record.id[:8])[0].id == record.id and storage.find(path=record.path)[0].id == record.id

    again = video('a.mp4', 6, 0, tmp_path / 'again')
    assert storage.add(*again, SPACE) is False  # stored once
    assert [v.frame_count for v in storage.videos()] == [6]
    storage.close()


def test_another_image_space_and_non_finite_vectors_are_refused(opener, tmp_path):
    storage = opener()
    storage.add(*video('a.mp4', 3, 0, tmp_path), SPACE)
    with pytest.raises(WorkspaceError, match=r'holds vectors of tiny \(aaaaaaaaaaaa\), not of other \(bbbbbbbbbbbb\)'):
        storage.add(*video('b.mp4', 3, 1, tmp_path), ImageSpace('b' * 64, 'other'))
    record, frames, shots, cues = video('c.mp4', 3, 2, tmp_path)
    frames.vectors[1, 0] = np.nan
    with pytest.raises(WorkspaceError, match='not finite'):
        storage.add(record, frames, shots, cues, SPACE)
    assert [v.path for v in storage.videos()] == ['/videos/a.mp4']
    storage.close()


def test_delete_removes_every_trace(opener, tmp_path):
    storage = opener()
    a, b = video('a.mp4', 4, 0, tmp_path), video('b.mp4', 4, 1, tmp_path)
    storage.add(*a, SPACE)
    storage.add(*b, SPACE)
    assert storage.delete(a[0].id) is True and storage.delete(a[0].id) is False
    assert [v.id for v in storage.videos()] == [b[0].id] and storage.video(a[0].id) is None
    assert a[0].id not in storage.nearest(a[1].vectors[0], 8).video_ids
    assert storage.video_means()[0] == [b[0].id]
    assert {h.video_id for h in storage.search_cues('speaker hello', 5)} == {b[0].id}
    with pytest.raises(WorkspaceError):
        storage.frames(a[0].id)
    storage.close()


def test_another_instance_sees_commits_without_reopening_and_a_restart_keeps_them(opener, tmp_path):
    writer, reader = opener(), opener()
    assert reader.videos() == []
    a, b = video('a.mp4', 5, 0, tmp_path), video('b.mp4', 5, 1, tmp_path)
    writer.add(*a, SPACE)
    assert [v.id for v in reader.videos()] == [a[0].id]
    assert reader.nearest(a[1].vectors[2], 1).video_ids == [a[0].id]
    writer.add(*b, SPACE)
    writer.delete(a[0].id)
    assert [v.id for v in reader.videos()] == [b[0].id]
    assert a[0].id not in reader.nearest(a[1].vectors[2], 10).video_ids
    writer.close()
    reader.close()
    reopened = opener()
    assert [v.id for v in reopened.videos()] == [b[0].id]
    assert reopened.nearest(b[1].vectors[3], 1).frames[0] == 3
    reopened.close()


# ------------------------------------------------------------------ what is said, by the same rules everywhere

SPOKEN = {
    'cooking.mp4': [(0.0, 2.0, 'good evening and welcome back'), (2.5, 6.0, 'the chef slices onions on the board'),
                    (6.5, 8.0, 'while the soup is simmering'), (30.0, 33.0, 'then we walk down to the beach')],
    'riding.mp4': [(1.0, 3.0, 'a man rides his bike along the beach'), (4.0, 6.0, 'the waves are loud today')],
    'weather.mp4': [(0.0, 3.0, 'the weather is the best part of the day'), (5.0, 7.0, '我们在海邊看日出')],
}
QUERIES = {  # query -> [(video, start, end, snippet)], best first
    'the chef slices onions': [('cooking.mp4', 2.5, 6.0, 'the chef slices onions on the board')],
    'riding': [('riding.mp4', 1.0, 3.0, 'a man rides his bike along the beach')],
    'chef beach': [('cooking.mp4', 2.5, 6.0, 'the chef slices onions on the board'),  # one word each, not merged
                   ('cooking.mp4', 30.0, 33.0, 'then we walk down to the beach'),
                   ('riding.mp4', 1.0, 3.0, 'a man rides his bike along the beach')],
    'the chef slices onions on the board while the soup is simmering': [
        ('cooking.mp4', 2.5, 8.0, 'the chef slices onions on the board while the soup is simmering')],
    '海边日出': [('weather.mp4', 5.0, 7.0, '我们在海邊看日出')],
    'beach': [('cooking.mp4', 30.0, 33.0, 'then we walk down to the beach'),  # bm25: the shorter cue first
              ('riding.mp4', 1.0, 3.0, 'a man rides his bike along the beach')],
}


def spoken_library(storage, folder: Path) -> dict[str, str]:
    """Store SPOKEN's videos (cue i embedded as the i-th unit vector); {video id: name}."""
    names = {}
    for seed, (name, said) in enumerate(SPOKEN.items()):
        record, frames, shots, _ = video(name, 4, seed, folder)
        cues = [CueDoc(video_id=record.id, start=s, end=e, text=t, source='asr', language='',
                       embedding=np.eye(DIM, dtype=np.float32)[4 * seed + i]) for i, (s, e, t) in enumerate(said)]
        assert storage.add(record, frames, shots, cues, SPACE)
        names[record.id] = name
    return names


@pytest.mark.parametrize('query', list(QUERIES))
def test_spoken_words_are_answered_by_the_same_rules(opener, tmp_path, query):
    storage = opener()
    names = spoken_library(storage, tmp_path)
    hits = storage.search_cues(query, 10)
    assert [(names[h.video_id], h.start, h.end, h.text) for h in hits] == QUERIES[query]
    storage.close()


def test_both_backends_give_the_same_scores_and_meaning_neighbours(tmp_path):
    answers = []
    for backend in BACKENDS:
        storage = open_storage(backend, workspace=str(tmp_path / backend), lock_wait=1.0)
        names = spoken_library(storage, tmp_path / backend)
        query = unit(np.eye(DIM)[5] + 0.5 * np.eye(DIM)[0])
        answers.append(([(names[h.video_id], h.start, h.end, h.text, round(h.score, 5), round(h.bm25, 4))
                         for q in QUERIES for h in storage.search_cues(q, 10)],
                        [(names.get(r.video_id), r.start, r.text, round(c, 3)) for r, c in storage.nearest_cues(query, 3)[:2]]))
        storage.close()
    assert answers[0] == answers[1]
    assert [text for _, _, text, _ in answers[0][1][:2]] == ['the waves are loud today', 'good evening and welcome back']
