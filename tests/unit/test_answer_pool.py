"""A text search of everything (`in all`) that no cue matches shows the first moments of the visual pool it would
fuse with, exactly, and builds only the moments it shows (a result's thumbnail is a database read)."""
import numpy as np
import pytest

from executors.retrieval.answer import LISTS, Settings, answer
from executors.retrieval.search import visual_segments
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from executors.storage.local.local_storage import HnswlibStorage
from tests.factories import clustered_vectors

DIM = 64
SPACE = ImageSpace('c' * 64, 'test vectors')


@pytest.fixture
def storage(tmp_path):
    storage = HnswlibStorage(tmp_path, exact_below=2_560)
    for n, vectors in enumerate(np.split(clustered_vectors(6_000, DIM, centres=200, noise=0.5, seed=7), 30)):
        record = VideoRecord(f'{n:064x}', f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=64,
                             height=48)
        frames = Frames(np.arange(len(vectors), dtype=np.float64), vectors, [''] * len(vectors))
        assert storage.add(record, frames, [50.0, 120.0], [], SPACE)
    yield storage
    storage.close()


def test_a_search_of_everything_that_no_cue_matches_shows_the_visual_pools_first_moments(storage, monkeypatch):
    settings = Settings()
    thumbnails = []
    read = storage.thumbnail
    monkeypatch.setattr(storage, 'thumbnail', lambda *args: thumbnails.append(args) or read(*args))
    for seed, count in ((1, 10), (2, 3), (3, 25)):
        query = clustered_vectors(1, DIM, centres=200, noise=0.5, seed=7)[0] + 0.01 * seed
        query /= np.linalg.norm(query)
        pool, _ = visual_segments(storage, query, count=settings.speech_candidates, candidates=settings.candidates,
                                  grouping=settings.grouping)
        thumbnails.clear()
        shown = answer(storage, query, 'words no cue holds', count=count, lists=LISTS, settings=settings)
        assert len(pool) > count and shown == pool[:count]
        assert len(thumbnails) == count  # not one for every moment of the pool
