"""The workspace's nearest-neighbour index (executors/storage/ann/base.py): the IVF default against exact search,
its training policy, deletes, persistence and trust, and a workspace switched between index kinds."""
import json
import logging

import numpy as np
import pytest

from executors.storage.ann.base import IndexConfig
from executors.storage.local.local_storage import HnswlibStorage
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from executors.storage.local.vector_store import VectorStore
from tests.factories import clustered_vectors

DIM = 64
SPACE = ImageSpace('c' * 64, 'test vectors')
SMALL = 2_560  # exact_below for these tests: the IVF layout starts at 2,560 vectors (64 lists) instead of 40,000


def exact_top(store: VectorStore, live: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """The true k nearest live rows, scored as stored (float16)."""
    scores = queries @ store.read(0, len(live)).T
    scores[:, ~live] = -np.inf
    return np.argsort(-scores, axis=1, kind='stable')[:, :k]


def recall(store: VectorStore, live: np.ndarray, queries: np.ndarray) -> float:
    exact = exact_top(store, live, queries)
    return float(np.mean([len(set(store.nearest(q, 10)[0].tolist()) & set(e.tolist())) / 10
                          for q, e in zip(queries, exact)]))


def grown_store(folder, vectors: np.ndarray, step: int, exact_below: int = SMALL) -> VectorStore:
    """A store filled `step` rows at a time through add_to_index, as videos arrive."""
    store = VectorStore(folder, DIM, IndexConfig('ivf', exact_below=exact_below))
    store.open_index(np.zeros(0, dtype=bool), generation=0)
    grow(store, vectors, step)
    return store


def grow(store: VectorStore, vectors: np.ndarray, step: int) -> None:
    for start in range(0, len(vectors), step):
        batch, first = vectors[start:start + step], store.row_count()
        store.append(batch)
        store.add_to_index(np.arange(first, first + len(batch)), store.read(first, len(batch)))


def lists(store: VectorStore) -> int:
    return store.index.index.nlist


def test_below_the_threshold_search_is_exact_labels_and_scores(tmp_path):
    vectors = clustered_vectors(1_550, DIM, centres=50, noise=1.0, seed=1)
    data, queries = vectors[:1_500], vectors[1_500:]
    store = grown_store(tmp_path, data, 300)
    assert lists(store) == 1  # nothing trained
    stored = store.read(0, len(data))
    for query in queries:
        labels, scores = store.nearest(query, 10)
        expected = np.argsort(-(stored @ query), kind='stable')[:10]
        assert set(labels.tolist()) == set(expected.tolist())
        np.testing.assert_allclose(scores, (stored @ query)[labels], rtol=1e-5, atol=1e-6)
    store.close()


def test_above_the_threshold_ivf_finds_what_exact_search_finds(tmp_path):
    vectors = clustered_vectors(12_100, DIM, centres=600, noise=0.5, seed=2)
    data, queries = vectors[:12_000], vectors[12_000:]
    store = grown_store(tmp_path, data, 1_000)
    assert lists(store) > 1  # trained: an inverted file, not a scan
    assert recall(store, np.ones(len(data), dtype=bool), queries) >= 0.98
    store.index.index.nprobe = 1  # a stored row is in the one list its search picks (added by float32 centres,
    rows = store.read(0, len(data))[::10]  # searched by float16 ones): itself is found there
    found_itself = [store.nearest(row, 1)[0][0] == label for label, row in zip(range(0, len(data), 10), rows)]
    assert np.mean(found_itself) >= 0.99
    store.close()


def test_a_search_leaves_the_thread_count_the_exact_scores_after_it_use(tmp_path):
    torch = pytest.importorskip('torch')
    store = grown_store(tmp_path, clustered_vectors(3_000, DIM, centres=100, noise=0.5, seed=5), 1_000)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        store.nearest(np.ones(DIM, dtype=np.float32) / 8, 10)
        assert torch.get_num_threads() == 2  # faiss and torch may share one OpenMP runtime
    finally:
        torch.set_num_threads(before)
        store.close()


def test_training_follows_growth_and_a_large_shrink(tmp_path, caplog):
    vectors = clustered_vectors(104_000, DIM, centres=2_000, noise=0.5, seed=3)
    with caplog.at_level(logging.INFO):
        store = grown_store(tmp_path, vectors[:26_000], 13_000, exact_below=26_000)
    assert lists(store) == 640 and 'rebuilding it for 26000 vectors' in caplog.text  # 4 * sqrt(26,000) = 645
    grow(store, vectors[26_000:98_800], 8_000)  # 3.8 times as many: the lists stay as trained
    assert lists(store) == 640
    grow(store, vectors[98_800:], 8_000)  # 4 times: trained again, with twice the lists
    assert lists(store) == 1280
    live = np.ones(len(vectors), dtype=bool)
    assert recall(store, live, vectors[::1000]) >= 0.98
    store.remove_from_index(0, 92_000)  # far below the threshold: exact search again
    live[:92_000] = False
    assert lists(store) == 1 and recall(store, live, vectors[::1000]) == 1.0
    store.close()


def video(n: int, vectors: np.ndarray) -> tuple:
    record = VideoRecord(f'{n:064x}', f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=64,
                         height=48)
    return record, Frames(np.arange(len(vectors), dtype=np.float64), vectors, [''] * len(vectors)), [], []


def fill(folder, videos: list[np.ndarray], **options) -> HnswlibStorage:
    storage = HnswlibStorage(folder, exact_below=SMALL, **options)
    for n, vectors in enumerate(videos):
        assert storage.add(*video(n, vectors), SPACE)
    return storage


@pytest.fixture
def videos() -> list[np.ndarray]:
    return np.split(clustered_vectors(8_000, DIM, centres=300, noise=0.5, seed=4), 40)  # 40 videos of 200


def found(storage: HnswlibStorage, queries: np.ndarray, k: int = 50) -> list[list[tuple]]:
    return [list(zip(n.video_ids, n.frames.tolist())) for n in (storage.nearest(q, k) for q in queries)]


def own_frames(queries) -> list[tuple]:
    """Where each query of np.concatenate(videos)[::97] is stored: its nearest keyframe is itself."""
    return [(f'{i * 97 // 200:064x}', i * 97 % 200) for i in range(len(queries))]


def test_deleted_videos_are_never_returned_before_or_after_reopening(tmp_path, videos):
    storage = fill(tmp_path, videos)
    assert lists(storage.vectors) > 1
    gone = {f'{n:064x}' for n in range(0, 40, 3)}
    for video_id in gone:
        assert storage.delete(video_id)
    queries = np.concatenate(videos[::3])[::50]  # frames of the deleted videos: their nearest are gone
    assert all(only_live(hits, gone) for hits in found(storage, queries))
    storage.close()
    reopened = HnswlibStorage(tmp_path, exact_below=SMALL)
    assert all(only_live(hits, gone) for hits in found(reopened, queries))
    reopened.close()


def only_live(hits: list[tuple], gone: set[str]) -> bool:
    """Some hits, none in a deleted video (whose rows, left in the index, would read as frames past the end
    of the video stored before it)."""
    return bool(hits) and all(video not in gone and frame < 200 for video, frame in hits)


def test_a_reopened_workspace_answers_the_same_without_rebuilding(tmp_path, videos, caplog):
    storage = fill(tmp_path, videos)
    queries = np.concatenate(videos)[::97]
    before = found(storage, queries)
    storage.close()
    with caplog.at_level(logging.INFO):
        reopened = HnswlibStorage(tmp_path, exact_below=SMALL)
        assert found(reopened, queries) == before
    assert 'rebuilding' not in caplog.text and 'missing' not in caplog.text
    reopened.close()


def test_an_index_saved_at_a_newer_generation_is_rebuilt(tmp_path, videos, caplog):
    storage = fill(tmp_path, videos)
    queries = np.concatenate(videos)[::97]
    storage.close()
    check = tmp_path / 'ivf.json'
    saved = json.loads(check.read_text())
    check.write_text(json.dumps({**saved, 'generation': saved['generation'] + 1}))  # a catalog restored from a backup
    with caplog.at_level(logging.WARNING):
        reopened = HnswlibStorage(tmp_path, exact_below=SMALL)
        assert [hits[0] for hits in found(reopened, queries, 1)] == own_frames(queries)
    assert 'ivf.faiss is newer than the catalog' in caplog.text and 'rebuilding' in caplog.text
    reopened.close()


def test_a_workspace_saved_with_one_kind_builds_the_other_from_its_rows(tmp_path, videos, caplog):
    storage = fill(tmp_path, videos, index='hnsw')
    queries = np.concatenate(videos)[::97]
    storage.close()
    graph = (tmp_path / 'hnsw.bin').read_bytes()
    with caplog.at_level(logging.WARNING):
        switched = HnswlibStorage(tmp_path, exact_below=SMALL)
        best = [hits[0] for hits in found(switched, queries, 1)]
    assert 'searched through hnsw.bin' in caplog.text and 'building the configured ivf index' in caplog.text
    assert best == own_frames(queries)
    switched.close()
    assert (tmp_path / 'ivf.faiss').exists() and (tmp_path / 'hnsw.bin').read_bytes() == graph  # left as it was


@pytest.mark.parametrize('count', [1_500, 6_000])  # exact (one list) and clustered into lists
def test_a_batch_search_answers_as_one_search_per_query(tmp_path, count):
    vectors = clustered_vectors(count + 50, DIM, centres=50, noise=1.0, seed=5)
    store = grown_store(tmp_path, vectors[:count], 500)
    queries = vectors[count:]
    labels, scores = store.nearest_many(queries, 10)
    for query, got, got_scores in zip(queries, labels, scores):
        one, one_scores = store.nearest(query, 10)
        assert got.tolist() == one.tolist() and np.allclose(got_scores, one_scores, atol=1e-5)


def test_a_batch_search_for_near_copies_finds_them_probing_few_lists(tmp_path):
    vectors = clustered_vectors(6_000, DIM, centres=50, noise=1.0, seed=6)
    store = grown_store(tmp_path, vectors, 500)
    assert lists(store) > 4
    rng = np.random.default_rng(7)
    picked = rng.choice(len(vectors), 200, replace=False)
    copies = vectors[picked] + rng.normal(scale=0.02, size=(200, DIM)).astype(np.float32)  # cosine ~0.99
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    labels, scores = store.nearest_many(copies, 5, near=True)
    assert np.mean(labels[:, 0] == picked) >= 0.98 and (np.diff(scores, axis=1) <= 0).all()


def test_a_batch_search_pads_with_minus_one_when_fewer_are_stored(tmp_path):
    store = grown_store(tmp_path, clustered_vectors(5, DIM, centres=2, noise=1.0, seed=8), 5)
    labels, scores = store.nearest_many(clustered_vectors(3, DIM, centres=2, noise=1.0, seed=9), 5)
    assert labels.shape == (3, 5) and sorted(labels[0].tolist()) == [0, 1, 2, 3, 4]
