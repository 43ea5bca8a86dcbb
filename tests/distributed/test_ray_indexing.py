"""Indexing on a local Ray instance (2 CPUs, loopback only): the same outcome as without Ray, on both
backends, and a worker killed mid-run loses and duplicates nothing."""
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from executors.models.clip_encoding import encode_texts
from executors.models.clip_model import load_clip
from executors.documents import Status
from executors.errors import WorkspaceError
from executors.storage.local.local_storage import HnswlibStorage
from executors.storage.milvus.milvus_storage import MilvusStorage
from executors.retrieval.search import Grouping, search_segments
from executors.storage.interface import ImageSpace
from library.distributed import connect, index_on_ray
from tests.factories import make_video

ray = pytest.importorskip('ray')
SOURCES = ['smptebars', 'testsrc2', 'mandelbrot', 'rgbtestsrc', 'color=c=red', 'testsrc']


@pytest.fixture(scope='module')
def ray_cluster():
    """One local Ray instance for the module (starting one takes seconds)."""
    connect('local', num_cpus=2, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp('ray-videos')
    return [make_video(folder / f'{i}.mp4', duration=3, source=source) for i, source in enumerate(SOURCES)]


def ray_workers() -> list[int]:
    """Process ids of Ray Data's map workers (named ray::MapWorker(...) by Ray)."""
    pids = []
    for entry in Path('/proc').iterdir():
        try:
            if entry.name.isdigit() and b'MapWorker' in (entry / 'cmdline').read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def index(paths, storage, checkpoint, workspace, **options) -> dict[str, tuple[str, str]]:
    docs = index_on_ray(paths, storage, loader={'workspace': str(workspace)}, encoder={'model': str(checkpoint)},
                        space=ImageSpace('tiny', 'tiny'), workspace=workspace, **options)
    return {Path(doc.uri).name: (str(doc.status), doc.error) for doc in docs}


@pytest.fixture(params=['hnswlib', 'milvus'])
def storage(request, tmp_path):
    store = (HnswlibStorage(tmp_path / 'ws') if request.param == 'hnswlib'
             else MilvusStorage(str(tmp_path / 'ws' / 'milvus.db'), workspace=tmp_path / 'ws'))
    yield store
    store.close()


def test_ray_indexes_each_video_once_and_reports_failures(ray_cluster, videos, tiny_checkpoint, storage, tmp_path):
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'not a video' * 100)
    outcome = index([*videos[:3], bad], storage, tiny_checkpoint, tmp_path / 'ws')
    assert {name: status for name, (status, _) in outcome.items()} == \
        {'0.mp4': 'indexed', '1.mp4': 'indexed', '2.mp4': 'indexed', 'bad.mp4': 'failed'}
    assert outcome['bad.mp4'][1].startswith('bad.mp4: ')
    again = index(videos[:3], storage, tiny_checkpoint, tmp_path / 'ws')
    assert {status for status, _ in again.values()} == {'already indexed'}
    stored = storage.videos()
    assert sorted(v.path for v in stored) == sorted(str(p) for p in videos[:3])
    for video in stored:
        frames = storage.frames(video.id)
        assert len(frames) == video.frame_count == 3
        assert all(Path(t).is_file() for t in frames.thumbnails)
        np.testing.assert_array_equal(frames.timestamps, np.sort(frames.timestamps))


def test_the_same_query_finds_the_same_top_segment_on_both_backends(ray_cluster, videos, tiny_checkpoint, tmp_path):
    hnswlib = HnswlibStorage(tmp_path / 'h')
    milvus = MilvusStorage(str(tmp_path / 'm' / 'milvus.db'), workspace=tmp_path / 'm')
    for store, folder in ((hnswlib, tmp_path / 'h'), (milvus, tmp_path / 'm')):
        index(videos[:4], store, tiny_checkpoint, folder)
    query = encode_texts(load_clip(str(tiny_checkpoint), 'cpu'), ['a colourful test pattern'])[0]
    found = [[(s.video_id, s.start, s.end) for s in search_segments(store, query, count=3, candidates=64,
                                                                      grouping=Grouping())]
             for store in (hnswlib, milvus)]
    assert found[0] and found[0][0] == found[1][0]
    hnswlib.close()
    milvus.close()


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster, videos, tiny_checkpoint, tmp_path):
    store = MilvusStorage(str(tmp_path / 'ws' / 'milvus.db'), workspace=tmp_path / 'ws')
    killed = threading.Event()

    def kill_a_worker_once(doc, stage, done, total):
        if not killed.is_set():
            killed.set()
            for pid in ray_workers():
                os.kill(pid, signal.SIGKILL)

    first = index(videos, store, tiny_checkpoint, tmp_path / 'ws', chunk=1, progress=kill_a_worker_once)
    assert killed.is_set() and set(first) == {p.name for p in videos}
    deadline = time.time() + 60
    second = index(videos, store, tiny_checkpoint, tmp_path / 'ws')
    while any(status == 'failed' for status, _ in second.values()) and time.time() < deadline:
        second = index(videos, store, tiny_checkpoint, tmp_path / 'ws')
    assert {status for status, _ in second.values()} <= {'indexed', 'already indexed'}
    stored = store.videos()
    assert sorted(v.path for v in stored) == sorted(str(p) for p in videos)  # each once
    assert all(len(store.frames(v.id)) == 3 for v in stored)
    assert {status for status, _ in first.values()} <= {Status.INDEXED, Status.FAILED}
    store.close()


def test_subtitles_are_read_on_the_workers_and_stored_with_the_video(ray_cluster, tiny_checkpoint, tmp_path):
    video = make_video(tmp_path / 'talk.mp4', duration=3, size='160x120', source='testsrc2')
    (tmp_path / 'talk.srt').write_text('1\n00:00:01,000 --> 00:00:02,000\nwelcome to the harbour\n', encoding='utf-8')
    storage = HnswlibStorage(tmp_path / 'ws')
    try:
        outcome = index([video], storage, tiny_checkpoint, tmp_path / 'ws', speech={'asr': 'off'})
        assert list(outcome.values())[0][0] == 'indexed'
        [stored] = storage.videos()
        assert [(c.start, c.end, c.text, c.source) for c in storage.cues(stored.id)] == [
            (1.0, 2.0, 'welcome to the harbour', 'srt')]
        assert storage.search_cues('harbour', 5)[0].video_id == stored.id
    finally:
        storage.close()


class FlakyInit:
    """ray.init that times out (as Ray does: a bare Exception) `failures` times, then starts."""

    def __init__(self, failures: int):
        self.failures, self.calls, self.shutdowns = failures, 0, 0

    def init(self, **options):
        self.calls += 1
        if self.calls <= self.failures:
            raise Exception('The current node timed out during startup. This could happen because ...')

    def shutdown(self):
        self.shutdowns += 1


@pytest.mark.parametrize('failures, started', [(1, True), (2, False)])
def test_a_local_start_that_times_out_is_tried_once_more_then_named(monkeypatch, failures, started):
    fake = FlakyInit(failures)
    monkeypatch.setattr(ray, 'is_initialized', lambda: False)
    monkeypatch.setattr(ray, 'init', fake.init)
    monkeypatch.setattr(ray, 'shutdown', fake.shutdown)
    if started:
        connect('local', num_cpus=2)
    else:
        with pytest.raises(WorkspaceError, match=r'^ray local: cannot start Ray on this machine \(The current node '
                                                 r'timed out during startup\. This could happen because \.\.\.\)$'):
            connect('local', num_cpus=2)
    assert (fake.calls, fake.shutdowns) == (2, failures)
