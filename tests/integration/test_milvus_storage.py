"""MilvusStorage on Milvus Lite, embedded (a file URI) and as a server on 127.0.0.1 (the client-server path
that Milvus Standalone and Distributed use): what the library relies on beyond the contract test."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from executors.documents import CueDoc
from executors.errors import WorkspaceError
from executors.storage.milvus.milvus_storage import MilvusStorage
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from tests.factories import clustered_vectors

ROOT = Path(__file__).resolve().parents[2]
SPACE = ImageSpace('a' * 64, 'tiny')


@pytest.fixture(scope='session')
def milvus_server(tmp_path_factory) -> str:
    """`milvus-lite server` on a free loopback port, for the whole session; its URI."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp('milvus-server')
    server = subprocess.Popen([str(Path(sys.executable).parent / 'milvus-lite'), 'server', '--data-dir', str(data),
                               '--host', '127.0.0.1', '--port', str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f'http://127.0.0.1:{port}'
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail('milvus-lite server did not start')
            time.sleep(0.2)
    yield uri
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(params=['embedded', 'server'])
def storage(request, tmp_path) -> MilvusStorage:
    """A fresh library: a Milvus Lite file, or new collections (a unique prefix) on the server."""
    if request.param == 'embedded':
        store = MilvusStorage(str(tmp_path / 'milvus.db'), workspace=tmp_path)
    else:
        uri = request.getfixturevalue('milvus_server')
        store = MilvusStorage(uri, workspace=tmp_path, prefix=f't{time.time_ns()}_')
    yield store
    store.close()


def video(seed: int, frames: int = 12, dim: int = 16) -> tuple[VideoRecord, Frames]:
    vectors = clustered_vectors(frames, dim, centres=3, noise=0.3, seed=seed)
    record = VideoRecord(f'{seed:02d}' * 32, f'/videos/{seed}.mp4', duration=frames / 2, fps=25.0, width=320, height=240)
    return record, Frames(np.arange(frames) * 0.5, vectors, [])


def test_a_stored_video_reads_back_whole(storage):
    record, frames = video(1)
    cues = [CueDoc(start=0.0, end=1.5, text='a man rides a bike', source='srt', language='en')]
    assert storage.add(record, frames, [1.25, 3.5], cues, SPACE)
    assert [v.id for v in storage.videos()] == [record.id]
    stored = storage.video(record.id)
    assert (stored.path, stored.frame_count, stored.cue_count, stored.duration) == (record.path, 12, 1, 6.0)
    assert storage.find(video_id=record.id[:6]) == [stored] == storage.find(path=record.path)
    back = storage.frames(record.id)
    np.testing.assert_array_equal(back.timestamps, frames.timestamps)
    np.testing.assert_allclose(back.vectors, frames.vectors, atol=1e-6)
    assert storage.shots(record.id) == [1.25, 3.5]
    assert [(c.start, c.end, c.text, c.source, c.language) for c in storage.cues(record.id)] == \
        [(0.0, 1.5, 'a man rides a bike', 'srt', 'en')]
    assert storage.image_space() == SPACE


def test_nearest_finds_a_keyframe_itself_and_adding_again_changes_nothing(storage):
    for seed in (1, 2, 3):
        storage.add(*video(seed), [], [], SPACE)
    record, frames = video(2)
    assert not storage.add(record, frames, [], [], SPACE)
    assert len(storage.frames(record.id)) == 12
    hits = storage.nearest(frames.vectors[5], 4)
    assert (hits.video_ids[0], int(hits.frames[0])) == (record.id, 5)
    assert hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    ids, means = storage.video_means()
    assert ids == [video(seed)[0].id for seed in (1, 2, 3)]  # oldest first
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-6)


def test_delete_removes_every_trace(storage):
    record, frames = video(1)
    storage.add(record, frames, [2.0], [CueDoc(start=0, end=1, text='bike')], SPACE)
    storage.add(*video(2), [], [], SPACE)
    assert storage.delete(record.id)
    assert not storage.delete(record.id)
    assert storage.video(record.id) is None and storage.shots(record.id) == [] and storage.cues(record.id) == []
    assert record.id not in storage.nearest(frames.vectors[0], 24).video_ids
    with pytest.raises(WorkspaceError, match='no stored video'):
        storage.frames(record.id)


def test_another_image_tower_is_refused_naming_both(storage):
    storage.add(*video(1), [], [], SPACE)
    with pytest.raises(WorkspaceError, match=r'holds vectors of tiny \(aaaa.*not of other'):
        storage.add(*video(2), [], [], ImageSpace('b' * 64, 'other'))


def test_a_crash_mid_add_leaves_nothing_visible_and_the_next_writer_cleans_it(storage, monkeypatch):
    record, frames = video(1)
    upsert = storage.client.upsert

    def die_on_commit(name, rows, **kwargs):
        if name.endswith('videos') and rows[0]['state'] == 'stored':
            raise KeyboardInterrupt  # the writer is killed between its frames and its commit
        return upsert(name, rows, **kwargs)

    monkeypatch.setattr(storage.client, 'upsert', die_on_commit)
    with pytest.raises(KeyboardInterrupt):
        storage.add(record, frames, [], [CueDoc(start=0, end=1, text='bike')], SPACE)
    monkeypatch.undo()
    assert storage.videos() == [] and len(storage.nearest(frames.vectors[0], 5)) == 0
    assert storage.add(record, frames, [], [], SPACE)  # re-running completes it
    assert len(storage.frames(record.id)) == 12 and storage.cues(record.id) == []


def test_pending_rows_of_a_dead_writer_are_removed_after_the_grace_period(tmp_path):
    uri = str(tmp_path / 'milvus.db')
    record, frames = video(1)
    dead = MilvusStorage(uri, workspace=tmp_path)
    dead.add(*video(2), [], [], SPACE)  # creates the collections
    dead.client.upsert(dead.names['videos'], [{**dead.client.get(dead.names['videos'], ids=[video(2)[0].id])[0],
                                               'id': record.id, 'state': 'pending', 'seq': 0}])
    dead.client.upsert(dead.names['frames'], [{'id': f'{record.id}:0', 'video_id': record.id, 'frame': 0,
                                               'timestamp': 0.0, 'thumbnail': '', 'written': 0,
                                               'vector': frames.vectors[0].tolist()}])
    assert dead.video(record.id) is None and record.id not in dead.nearest(frames.vectors[0], 5).video_ids
    dead.close()
    writer = MilvusStorage(uri, workspace=tmp_path, orphan_grace=60)
    writer.add(*video(3), [], [], SPACE)
    assert writer.client.query(writer.names['frames'], filter=f'video_id == "{record.id}"', output_fields=['id']) == []
    writer.close()


def test_staging_folders_a_killed_writer_left_are_removed_after_the_grace_period(tmp_path):
    import os

    staging = tmp_path / 'thumbnails' / '.staging'
    old, fresh = staging / '99999-old', staging / '99998-fresh'
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / '0.jpg').write_bytes(b'jpeg')
    os.utime(old, (0, 0))
    writer = MilvusStorage(str(tmp_path / 'milvus.db'), workspace=tmp_path, orphan_grace=60)
    writer.add(*video(1), [], [], SPACE)
    writer.close()
    assert not old.exists() and fresh.exists()  # another machine's writer may still be filling a fresh one


def test_two_writers_of_one_server_share_the_library(milvus_server, tmp_path):
    prefix = f't{time.time_ns()}_'
    first = MilvusStorage(milvus_server, workspace=tmp_path, prefix=prefix)
    second = MilvusStorage(milvus_server, workspace=tmp_path, prefix=prefix)
    record, frames = video(1)
    assert first.add(record, frames, [], [], SPACE)
    assert not second.add(record, frames, [], [], SPACE)  # idempotent by video id
    second.add(*video(2), [], [], SPACE)
    assert [v.id for v in first.videos()] == [record.id, video(2)[0].id]  # seen without reopening
    script = (f'from executors.storage.milvus.milvus_storage import MilvusStorage; '
              f's = MilvusStorage({milvus_server!r}, workspace={str(tmp_path)!r}, prefix={prefix!r}); '
              f'print(len(s.videos()), s.delete({record.id!r}))')
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ['2', 'True'], out.stderr[-2000:]
    assert [v.id for v in first.videos()] == [video(2)[0].id]
    first.close()
    second.close()


def test_chinese_and_english_cues_are_found_by_words(storage):
    pytest.importorskip('jieba')
    pytest.importorskip('executors.retrieval.cue_search')
    storage.add(video(1)[0], video(1)[1], [], [CueDoc(start=1, end=2, text='我们在海边骑自行车', language='zh'),
                                              CueDoc(start=3, end=4, text='今天天气很好', language='zh')], SPACE)
    storage.add(video(2)[0], video(2)[1], [], [CueDoc(start=5, end=6, text='A man rides a Bike', language='en')],
                SPACE)
    [hit] = storage.search_cues('自行车', 5)
    assert (hit.video_id, hit.start, hit.text) == (video(1)[0].id, 1.0, '我们在海边骑自行车') and hit.score > 0
    assert [h.video_id for h in storage.search_cues('bike', 5)] == [video(2)[0].id]
    assert storage.search_cues('', 5) == []


def test_a_milvus_lite_file_open_in_another_process_is_a_clear_error(tmp_path):
    uri = str(tmp_path / 'milvus.db')
    holder = subprocess.Popen([sys.executable, '-c', f'from pymilvus import MilvusClient; c = MilvusClient({uri!r}); '
                               f'print("open", flush=True); import time; time.sleep(60)'],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'open'
        with pytest.raises(WorkspaceError, match='open in another process.*milvus-lite server'):
            MilvusStorage(uri, workspace=tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_an_unreachable_server_is_one_line_naming_it(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(WorkspaceError, match=rf'http://127.0.0.1:{port}: cannot open Milvus'):
        MilvusStorage(f'http://127.0.0.1:{port}', workspace=tmp_path, timeout=2)


def test_a_library_written_by_another_process_is_searchable_when_reopened(tmp_path):
    uri = str(tmp_path / 'milvus.db')
    record, frames = video(1)
    script = (f'from tests.integration.test_milvus_storage import video, SPACE; from executors.storage.milvus.milvus_storage import MilvusStorage; '
              f's = MilvusStorage({uri!r}, workspace={str(tmp_path)!r}); print(s.add(*video(1), [0.5], [], SPACE))')
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ['True'], out.stderr[-2000:]
    reopened = MilvusStorage(uri, workspace=tmp_path)  # its collections are released until loaded
    assert reopened.nearest(frames.vectors[2], 1).video_ids == [record.id]
    assert reopened.shots(record.id) == [0.5]
    reopened.close()
