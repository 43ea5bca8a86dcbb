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


def test_a_search_runs_torch_on_its_own_thread_and_leaves_other_threads_counts_alone():
    """Issue 26: the exact scores' small products went through torch's thread pool, which on a busy machine
    cost 140 ms of CPU per search instead of 12."""
    import threading

    import torch

    from executors.vectors import torch_on_this_thread

    torch.set_num_threads(2)
    other_ready, searching, other_read, seen = threading.Event(), threading.Event(), threading.Event(), {}

    def other_thread() -> None:
        torch.get_num_threads()  # has used torch's pool: keeps its own count
        other_ready.set()
        searching.wait(10)
        seen['other'] = torch.get_num_threads()
        other_read.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    other_ready.wait(10)
    with torch_on_this_thread():
        seen['inside'] = torch.get_num_threads()
        searching.set()
        other_read.wait(10)  # while the search runs
    thread.join()
    assert seen == {'inside': 1, 'other': 2} and torch.get_num_threads() == 2
