"""`--ray` runs the same Flow: flow.yml's executors with their settings on the workers, the Indexer's
own storing on the driver. Indexing with and without Ray stores the same rows."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from executors.documents import DocList, Status, VideoDoc
from library.distributed import connect
from library.operations import Library
from tests.factories import make_video

ray = pytest.importorskip('ray')
ROOT = Path(__file__).resolve().parents[2]
SUBTITLES = '1\n00:00:00,500 --> 00:00:01,500\nwelcome to the harbour\n\n2\n00:00:02,000 --> 00:00:03,000\nboats\n'


@pytest.fixture(scope='module')
def ray_cluster():
    connect('local', num_cpus=2, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp('same-flow')
    made = [make_video(folder / 'talk.mp4', duration=4, size='160x120', source='testsrc2'),
            make_video(folder / 'bars.mp4', duration=3, size='160x120', source='smptebars'),
            make_video(folder / 'fractal.mp4', duration=3, size='160x120', source='mandelbrot')]
    (folder / 'talk.srt').write_text(SUBTITLES, encoding='utf-8')
    return made


def unusual_flow(folder: Path) -> Path:
    """The repository's flow.yml with settings away from their defaults, each of which changes what is stored."""
    config = yaml.safe_load((ROOT / 'flow.yml').read_text(encoding='utf-8'))
    config['with']['device'] = 'cpu'
    settings = {'VideoLoader': {'fps': 2.0, 'chunk_frames': 3},  # videos arrive in pieces
                'SpeechReader': {'asr': 'off'},
                'ImageEncoder': {'reuse_below': 60.0, 'precision': 'bf16', 'batch_size': 4}}
    for executor in config['executors']:
        executor['with'].update(settings.get(executor['uses'], {}))
    indexer = next(i for i, e in enumerate(config['executors']) if e['uses'] == 'Indexer')
    config['executors'].insert(indexer, {'uses': 'tests.distributed.marker.CueMarker', 'with': {'text': 'seen by a marker'}})
    path = folder / 'flow.yml'
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding='utf-8')
    return path


def stored_rows(library: Library) -> dict[str, tuple]:
    """Every stored video's rows by file name: keyframe times, embeddings, shots and cues."""
    rows = {}
    for video in library.videos():
        [stored] = library.flow.post('/video', DocList[VideoDoc]([VideoDoc(video_id=video.video_id)]))
        rows[Path(video.uri).name] = (
            video.video_id, [f.timestamp for f in stored.frames], np.stack([f.embedding for f in stored.frames]),
            list(stored.shots), [(c.start, c.end, c.text, c.source) for c in stored.cues],
            [Path(f.thumbnail).is_file() for f in stored.frames])
    return rows


def test_ray_stores_the_same_rows_as_the_flow_with_the_same_settings(ray_cluster, videos, tiny_checkpoint, tmp_path):
    flow = unusual_flow(tmp_path)
    outcomes, rows = {}, {}
    for name, address in (('flow', ''), ('ray', 'local')):
        with Library(flow, workspace=str(tmp_path / name), model=str(tiny_checkpoint)) as library:
            outcomes[name] = {Path(d.uri).name: (str(d.status), d.frame_count, len(d.cues))
                              for d in library.index([videos[0].parent], ray=address)}
            rows[name] = stored_rows(library)
    assert outcomes['ray'] == outcomes['flow']
    assert outcomes['ray']['talk.mp4'] == ('indexed', 8, 3)  # the per-video line's cues
    assert rows['ray'].keys() == rows['flow'].keys() == {p.name for p in videos}
    for video, (video_id, times, embeddings, shots, cues, thumbnails) in rows['flow'].items():
        ray_id, ray_times, ray_embeddings, ray_shots, ray_cues, ray_thumbnails = rows['ray'][video]
        assert (ray_id, ray_times, ray_shots, ray_cues) == (video_id, times, shots, cues)
        np.testing.assert_array_equal(ray_embeddings, embeddings)
        assert all(thumbnails) and all(ray_thumbnails)
    talk = rows['ray']['talk.mp4']
    assert talk[4] == [(0.0, 0.25, 'seen by a marker', 'marker'), (0.5, 1.5, 'welcome to the harbour', 'srt'),
                       (2.0, 3.0, 'boats', 'srt')]  # an executor of the user's own ran, with its setting
    assert all(cues[0][2] == 'seen by a marker' for _, _, _, _, cues, _ in rows['ray'].values())
    assert len({e.tobytes() for e in talk[2]}) < len(talk[2])  # reuse_below took effect: frames share an embedding


def test_settings_reach_the_workers(ray_cluster, videos, tiny_checkpoint, tmp_path):
    """A flow.yml setting changes what Ray stores just as it changes what the flow stores."""
    flow = unusual_flow(tmp_path)
    plain = tmp_path / 'plain.yml'
    plain.write_text(flow.read_text(encoding='utf-8').replace('precision: bf16', 'precision: fp32')
                     .replace('reuse_below: 60.0', 'reuse_below: 0'), encoding='utf-8')
    embeddings = {}
    for name, path in (('unusual', flow), ('plain', plain)):
        with Library(path, workspace=str(tmp_path / name), model=str(tiny_checkpoint)) as library:
            list(library.index([videos[0]], ray='local'))
            embeddings[name] = stored_rows(library)['talk.mp4'][2]
    assert len({e.tobytes() for e in embeddings['plain']}) == len(embeddings['plain'])
    assert not np.array_equal(embeddings['plain'], embeddings['unusual'])


def test_videos_not_stored_when_the_run_is_interrupted_are_reported_failed(ray_cluster, videos, tiny_checkpoint,
                                                                           tmp_path):
    def interrupt(video, stage, done, total):
        raise KeyboardInterrupt

    reported = []
    with Library(unusual_flow(tmp_path), workspace=str(tmp_path / 'ws'), model=str(tiny_checkpoint)) as library:
        with pytest.raises(KeyboardInterrupt):
            for doc in library.index(videos, interrupt, ray='local'):
                reported.append(doc)
        stored = {Path(v.uri).name for v in library.videos()}
    assert sorted(Path(d.uri).name for d in reported) == sorted(p.name for p in videos)
    failed = [d for d in reported if d.status == Status.FAILED]
    assert failed and {Path(d.uri).name for d in failed}.isdisjoint(stored)
    assert all(d.error.endswith('interrupted before it was stored; run again to index the rest') for d in failed)
    assert not list((tmp_path / 'ws' / 'thumbnails' / '.staging').glob('*/*'))  # no staged thumbnails left


def test_flow_py_index_ray_local(videos, tiny_checkpoint, tmp_path):
    """The CLI with --ray local: one line per video with its cues, the summary, and nothing of Ray's on stderr."""
    command = [sys.executable, str(ROOT / 'flow.py'), 'index', str(videos[0].parent), '--ray', 'local',
               '--flow', str(unusual_flow(tmp_path)), '--workspace', str(tmp_path / 'ws'),
               '--model', str(tiny_checkpoint)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ''
    lines = done.stdout.splitlines()
    assert sorted(lines[:-1]) == sorted([f'indexed: {videos[1]} (6 frames, 1 cue)',
                                        f'indexed: {videos[2]} (6 frames, 1 cue)',
                                        f'indexed: {videos[0]} (8 frames, 3 cues)'])
    assert lines[-1].startswith('3 indexed, 0 already indexed, 0 failed; 20 frames in ')
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ''
    assert sorted(again.stdout.splitlines()[:-1]) == sorted(f'already indexed: {p}' for p in videos)


def test_ctrl_c_during_flow_py_index_ray_reports_the_videos_not_stored(videos, tiny_checkpoint, tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group) once the first keyframes are back: every video is
    either stored or reported failed, and neither Ray's lines nor dead-actor notices reach the terminal."""
    workspace = tmp_path / 'ws'
    command = [sys.executable, str(ROOT / 'flow.py'), 'index', str(videos[0].parent), '--ray', 'local',
               '--flow', str(unusual_flow(tmp_path)), '--workspace', str(workspace), '--model', str(tiny_checkpoint)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                           start_new_session=True)
    deadline = time.monotonic() + 240
    while not any((workspace / 'thumbnails' / '.staging').glob('*/*.jpg')) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    indexed = {line.split(': ', 1)[1].split(' (')[0] for line in stdout.splitlines() if line.startswith('indexed: ')}
    failed = {line.split(': ', 2)[1] for line in stderr.splitlines() if line.startswith('failed: ')}
    assert failed and {Path(p).name for p in indexed} | failed == {p.name for p in videos}
    assert sorted(stderr.splitlines()[:-1]) == sorted(
        f'failed: {name}: interrupted before it was stored; run again to index the rest' for name in failed)
    assert stderr.splitlines()[-1] == 'interrupted' and '\x1b' not in stdout + stderr
    assert stdout.splitlines()[-1].startswith(f'{len(indexed)} indexed, 0 already indexed, {len(failed)} failed; ')
