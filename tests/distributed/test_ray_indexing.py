"""Indexing on a local Ray instance (2 CPUs, loopback only): the same outcome as without Ray, on both
backends, and a worker killed mid-run loses and duplicates nothing."""
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from executors.documents import Status
from executors.errors import WorkspaceError
from library.distributed import connect
from library.operations import Library
from tests.factories import make_video

ray = pytest.importorskip('ray')
ROOT = Path(__file__).resolve().parents[2]
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
    """Process ids of Ray Data's map workers while they run a task (titled ray::MapBatches(run_flow) by Ray)."""
    pids = []
    for entry in Path('/proc').iterdir():
        try:
            if entry.name.isdigit() and b'MapBatches' in (entry / 'cmdline').read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def open_library(backend: str, checkpoint: Path, workspace: Path) -> Library:
    return Library(ROOT / 'flow.yml', workspace=str(workspace), model=str(checkpoint), backend=backend, asr='off')


def index(library: Library, paths, progress=None) -> dict[str, tuple[str, str]]:
    return {Path(doc.uri).name: (str(doc.status), doc.error) for doc in library.index(paths, progress, ray='local')}


@pytest.fixture(params=['local', 'milvus'])
def backend(request) -> str:
    return request.param


def test_ray_indexes_each_video_once_and_reports_failures(ray_cluster, videos, tiny_checkpoint, backend, tmp_path):
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'not a video' * 100)
    with open_library(backend, tiny_checkpoint, tmp_path / 'ws') as library:
        outcome = index(library, [*videos[:3], bad])
        assert {name: status for name, (status, _) in outcome.items()} == \
            {'0.mp4': 'indexed', '1.mp4': 'indexed', '2.mp4': 'indexed', 'bad.mp4': 'failed'}
        assert outcome['bad.mp4'][1].startswith('bad.mp4: ')
        again = index(library, videos[:3])
        assert {status for status, _ in again.values()} == {'already indexed'}
        storage = library.flow.executors[library.flow.storing()].storage
        stored = storage.videos()
        assert sorted(v.path for v in stored) == sorted(str(p) for p in videos[:3])
        for video in stored:
            frames = storage.frames(video.id)
            assert len(frames) == video.frame_count == 3
            assert all(Path(t).is_file() for t in frames.thumbnails)
            np.testing.assert_array_equal(frames.timestamps, np.sort(frames.timestamps))


def test_the_same_query_finds_the_same_top_segment_on_both_backends(ray_cluster, videos, tiny_checkpoint, tmp_path):
    found = []
    for backend in ('local', 'milvus'):
        with open_library(backend, tiny_checkpoint, tmp_path / backend) as library:
            index(library, videos[:4])
            found.append([(s.video_id, s.start, s.end) for s in library.search('a colourful test pattern', top=3)])
    assert found[0] and found[0][0] == found[1][0]


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster, videos, tiny_checkpoint, tmp_path):
    killed, pids = threading.Event(), []

    def kill_a_worker_once(doc, stage, done, total):
        if not killed.is_set():
            killed.set()
            deadline = time.time() + 10  # a piece's progress can arrive while its worker is between tasks (ray::IDLE)
            while not pids and time.time() < deadline:
                pids.extend(ray_workers())
                time.sleep(0 if pids else 0.05)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)

    flow = tmp_path / 'flow.yml'  # a video in pieces of one keyframe, each held 0.5 s on the worker
    flow.write_text((ROOT / 'flow.yml').read_text(encoding='utf-8').replace('chunk_frames: 256', 'chunk_frames: 1')
                    .replace('  - uses: Indexer', '  - uses: tests.distributed.marker.Pause\n  - uses: Indexer'),
                    encoding='utf-8')
    with Library(flow, workspace=str(tmp_path / 'ws'), model=str(tiny_checkpoint), backend='milvus',
                 asr='off') as library:
        first = index(library, videos, kill_a_worker_once)
        assert pids and set(first) == {p.name for p in videos}
        deadline = time.time() + 60
        second = index(library, videos)
        while any(status == 'failed' for status, _ in second.values()) and time.time() < deadline:
            second = index(library, videos)
        assert {status for status, _ in second.values()} <= {'indexed', 'already indexed'}
        storage = library.flow.executors[library.flow.storing()].storage
        stored = storage.videos()
        assert sorted(v.path for v in stored) == sorted(str(p) for p in videos)  # each once
        assert all(len(storage.frames(v.id)) == 3 for v in stored)
        assert {status for status, _ in first.values()} <= {Status.INDEXED, Status.FAILED}


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
