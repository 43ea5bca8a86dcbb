"""On-screen text end to end: lines drawn on videos are read (offline), become timed cues stored with the video,
are searched on their own (--in screen) and fused (--in all), listed, printed as SRT, on both backends."""
import json
import re
import shutil
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from executors.documents import SCREEN, CueDoc
from executors.errors import ConfigError
from executors.models.ocr import TextReader, ocr_models
from executors.storage.backends import open_storage
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from flow import main
from tests.screen_text_fixtures import TEXTLESS, Drawn, need_fonts, text_video

ROOT = Path(__file__).resolve().parents[2]
LINES = [Drawn('quarterly revenue grew', 1, 4, 22, y=300),
         Drawn('今天天气很好', 4, 7, 24, y=300),
         Drawn('Lecture 3: Photosynthesis', 0, 10, 36, y=30),
         Drawn('BREAKING NEWS markets rally as investors cheer strong earnings reports', 0, 10, 20, y=330,
               ticker=True)]


def run(capsys, *argv):
    capsys.readouterr()  # what a module fixture printed
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> Path:
    need_fonts()
    folder = tmp_path_factory.mktemp('screen-videos')
    text_video(folder / 'lecture.mp4', LINES, 10, background='testsrc2', size=(640, 360))
    text_video(folder / 'fractal.mp4', [], 6, background=TEXTLESS[0], size=(640, 360))
    return folder


@pytest.fixture(scope='module')
def indexed(videos, tiny_checkpoint, tmp_path_factory) -> list[str]:
    """The two videos indexed once (speech off) into a workspace; its CLI options (the first four, --flow and
    --workspace, are what list and transcript take)."""
    args = ['--flow', ROOT / 'flow.yml', '--workspace', tmp_path_factory.mktemp('screen-ws'), '--model', tiny_checkpoint]
    code = main([str(a) for a in ['index', videos, '--asr', 'off', *args]])
    assert code == 0
    return [str(a) for a in args]


def test_the_wheel_reads_english_and_chinese_without_the_network(monkeypatch):
    need_fonts()

    def offline(*args, **kwargs):
        raise AssertionError('OCR tried to reach the network')

    monkeypatch.setattr(socket.socket, 'connect', offline)
    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    picture = _frame([Drawn('blue whale migration', 0, 1, 28, y=60), Drawn('城市夜景灯光', 0, 1, 28, y=160)])
    texts = [line.text for line in TextReader(ocr_models('auto'), threads=1).read(picture)]
    assert 'blue whale migration' in texts and '城市夜景灯光' in texts


def test_the_detector_sees_the_keyframe_at_side_pixels_and_reads_it_whole(monkeypatch):
    need_fonts()
    picture = _frame([Drawn('blue whale migration', 0, 1, 36, y=60)])
    reader = TextReader(ocr_models('auto'), threads=1, side=320)
    detector, seen = reader.engine.text_det, []
    infer = detector.infer
    monkeypatch.setattr(detector, 'infer', lambda batch: seen.append(batch.shape) or infer(batch))
    texts = [line.text for line in reader.read(picture)]
    assert seen and max(seen[0][2:]) <= 320, seen  # 640 x 360 seen at 320 x 180 (to a multiple of 32)
    assert 'blue whale migration' in texts  # recognised from the full-size picture

def test_a_folder_of_models_is_used_and_a_wrong_one_is_one_line(tmp_path, capsys, videos, flow_args):
    import rapidocr_onnxruntime

    models = Path(rapidocr_onnxruntime.__file__).parent / 'models'
    (tmp_path / 'ocr').mkdir()
    for name in ('ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx'):
        shutil.copy(models / name, tmp_path / 'ocr' / name)
    picture = _frame([Drawn('harbour lights', 0, 1, 28, y=60)])
    models = ocr_models(str(tmp_path / 'ocr'))
    assert Path(models.det).parent == Path(models.rec).parent == tmp_path / 'ocr'
    assert 'harbour lights' in [line.text for line in TextReader(models).read(picture)]
    with pytest.raises(ConfigError, match='needs one'):
        ocr_models(str(tmp_path))
    code, _, err = run(capsys, 'index', videos / 'fractal.mp4', '--ocr', tmp_path / 'missing', *flow_args)
    assert code == 1 and err.startswith('error: ') and 'ScreenTextReader: ocr: ' in err and 'not a folder' in err
    assert len(err.strip().splitlines()) == 1


def test_lines_on_screen_are_found_at_their_time_on_their_own_and_fused(capsys, indexed):
    code, out, _ = run(capsys, 'search', 'revenue grew', '--in', 'screen', '--json', *indexed)
    [first, *_] = json.loads(out)
    assert code == 0 and first['source'] == SCREEN and 'quarterly revenue grew' in first['text']
    assert first['video'].endswith('lecture.mp4') and abs(first['start'] - 1.0) <= 1.0

    code, out, _ = run(capsys, 'search', '天气', '--in', 'screen', '--json', *indexed)
    [first, *_] = json.loads(out)
    assert '今天天气很好' in first['text'] and abs(first['start'] - 4.0) <= 1.0

    code, out, _ = run(capsys, 'search', 'photosynthesis lecture', '--json', *indexed)  # --in all: the lists fused
    results = json.loads(out)
    assert SCREEN in results[0]['sources'] and results[0]['end'] - results[0]['start'] >= 8  # the slide: one long cue
    assert {s for r in results for s in r['sources']} >= {'visual', SCREEN}

    code, out, _ = run(capsys, 'search', 'revenue grew', '--in', 'speech', '--json', *indexed)
    assert json.loads(out) == []  # screen text is kept apart from subtitles and speech


def test_a_ticker_is_a_few_cues_and_textless_footage_none(capsys, indexed):
    code, out, _ = run(capsys, 'list', '--json', *indexed[:4])
    counts = {Path(v['video']).name: (v['cues'], v['screen_texts']) for v in json.loads(out)}
    assert counts['fractal.mp4'] == (0, 0)
    cues, screen = counts['lecture.mp4']
    assert cues == 0 and 4 <= screen <= 8  # 3 lines and the ticker, not one per keyframe; testsrc2's clock is left out

    code, out, _ = run(capsys, 'search', 'investors cheer', '--in', 'screen', '--json', *indexed)
    assert json.loads(out) and 'investors cheer' in json.loads(out)[0]['text']


def test_transcript_prints_screen_text_as_srt_and_keeps_speech_the_default(capsys, indexed):
    code, out, _ = run(capsys, 'list', '--json', *indexed[:4])
    lecture = next(v['video_id'] for v in json.loads(out) if v['video'].endswith('lecture.mp4'))
    code, out, _ = run(capsys, 'transcript', lecture, '--source', 'screen', *indexed[:4])
    assert code == 0 and re.search(r'00:00:01,000 --> 00:00:04,000\nquarterly revenue grew\n', out), out
    assert '今天天气很好' in out and not re.search(r'\n\d\d:\d\d:\d\d\.\d\d\d\n', out)  # testsrc2's clock: no cue
    code, _, err = run(capsys, 'transcript', lecture, *indexed[:4])
    assert code == 1 and 'no subtitles or recognised speech' in err


def test_ocr_off_reads_nothing(capsys, videos, flow_args):
    code, out, err = run(capsys, 'index', videos / 'lecture.mp4', '--asr', 'off', '--ocr', 'off', *flow_args)
    assert code == 0 and 'on screen' not in out, err
    code, out, _ = run(capsys, 'search', 'revenue grew', '--in', 'screen', '--json', *flow_args)
    assert json.loads(out) == []


@pytest.mark.parametrize('backend', ['local', 'milvus'])
def test_both_backends_keep_screen_cues_apart_and_count_them(tmp_path, backend):
    storage = open_storage(backend, workspace=str(tmp_path))  # milvus: Milvus Lite in <workspace>/milvus.db
    try:
        record = VideoRecord('b' * 64, str(tmp_path / 'v.mp4'), 10.0, 25.0, 64, 64)
        frames = Frames(np.arange(3, dtype=np.float64), np.eye(3, 8, dtype=np.float32), [])
        cues = [CueDoc(start=0, end=2, text='the harbour at night', source='asr'),
                CueDoc(start=1, end=9, text='Harbour tours daily', source=SCREEN)]
        assert storage.add(record, frames, [], cues, ImageSpace('c' * 64))
        found = sorted((h.text, h.source) for h in storage.search_cues('harbour', 5))
        assert found == [('Harbour tours daily', SCREEN), ('the harbour at night', 'asr')]
        assert storage.screen_counts() == {record.id: 1}
    finally:
        storage.close()


def _frame(lines: list[Drawn]) -> np.ndarray:
    """One RGB picture of `lines` drawn on testsrc2 (through a one-second video)."""
    import tempfile

    from executors.media.ffmpeg_binary import find_ffmpeg
    from executors.media.sharp_frames import sharp_frames

    with tempfile.TemporaryDirectory() as folder:
        path = text_video(Path(folder) / 'one.mp4', lines, 1, size=(640, 360))
        return next(iter(sharp_frames(path, [0.0], (640, 360), find_ffmpeg())))


@pytest.mark.parametrize('container', ['mp4', 'ts'])
def test_keyframes_are_decoded_again_at_exactly_the_loaders_times(tmp_path, container):
    """The loader's keyframe times name the same pictures at full resolution, pixel for pixel what ffmpeg
    gives decoding from the start (a TS file seeks past its target: its batch is decoded from the start)."""
    import subprocess

    from executors.media.ffmpeg_binary import find_ffmpeg
    from executors.media.sharp_frames import sharp_frames
    from executors.video_loader import VideoLoader
    from executors.documents import DocList, VideoDoc

    ffmpeg = find_ffmpeg()
    video = tmp_path / f'count.{container}'
    subprocess.run([ffmpeg.path, '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=12',
                    '-c:v', 'libx264', '-g', '250', '-bf', '2', '-pix_fmt', 'yuv420p', str(video)], check=True)
    loaded = VideoLoader(workspace=str(tmp_path / 'ws'), fps=0.5, chunk_frames=0).index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
    times = [f.timestamp for f in loaded[0].frames][2:]  # from the third keyframe: a seek
    sharp = list(sharp_frames(video, times, (320, 240), ffmpeg))
    assert len(sharp) == len(times) >= 3
    for time, picture in zip(times, sharp):
        exact = subprocess.run([ffmpeg.path, '-v', 'error', '-i', str(video), '-ss', f'{time:.6f}', '-frames:v', '1',
                                '-vf', 'scale=320:240:flags=area', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:'],
                               check=True, capture_output=True).stdout
        assert np.array_equal(picture, np.frombuffer(exact, np.uint8).reshape(240, 320, 3)), time


def test_each_batch_of_keyframes_reads_the_video_only_a_second_past_its_last(tmp_path, monkeypatch):
    """ffmpeg holds the last frame it outputs until another comes: unbounded, every batch of a long video
    would decode the video to its end (a 400 s video: 7 s a batch instead of 0.2)."""
    import subprocess

    from executors.media import sharp_frames as module
    from executors.media.ffmpeg_binary import find_ffmpeg

    ffmpeg = find_ffmpeg()
    video = tmp_path / 'long.mp4'
    subprocess.run([ffmpeg.path, '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5:duration=40',
                    '-c:v', 'libx264', '-g', '20', '-pix_fmt', 'yuv420p', str(video)], check=True)
    commands, popen = [], subprocess.Popen
    monkeypatch.setattr(module.subprocess, 'Popen', lambda command, **kw: commands.append(command) or popen(command, **kw))
    monkeypatch.setattr(module, 'BATCH_BYTES', module.MIN_BATCH * 160 * 120 * 3)  # 8 frames a process
    times = [float(t) for t in range(1, 20)] + [30.0, 31.0]  # after a gap: a process of its own that seeks
    assert len(list(module.sharp_frames(video, times, (160, 120), ffmpeg))) == len(times)
    assert [len(batch) for batch in module.batches(times, module.MIN_BATCH)] == [8, 8, 3, 2]
    decoded = []  # (first second decoded, seconds decoded, the times selected) of each process
    for command in commands:
        start = float(command[command.index('-ss') + 1]) if '-ss' in command else 0.0
        wanted = [start + float(t) for t in re.findall(r'abs\(t-([0-9.]+)\)', command[command.index('-vf') + 1])]
        decoded.append((start, float(command[command.index('-t') + 1]), wanted))
    assert all(start + seconds <= wanted[-1] + 1.001 for start, seconds, wanted in decoded), decoded
    assert {tuple(wanted) for _, _, wanted in decoded} == {tuple(b) for b in module.batches(times, module.MIN_BATCH)}


def test_over_a_moving_picture_only_new_lines_are_read_and_found_at_their_time(tmp_path, monkeypatch):
    """Every keyframe of a fractal zoom differs, but the subtitles' pixels stay put: a line is looked for where
    they do and read when it appears, not at every keyframe."""
    from executors.documents import DocList, VideoDoc
    from executors.screen_text_reader import ScreenTextReader
    from executors.video_loader import VideoLoader

    need_fonts()
    subtitles = [Drawn('quarterly revenue grew', 0, 4, 24, y=290), Drawn('harbor lights tonight', 4, 8, 24, y=290),
                 Drawn('今天天气很好', 8, 12, 24, y=290)]
    video = text_video(tmp_path / 'zoom.mp4', subtitles, 12, background=TEXTLESS[0], size=(640, 360))
    read, pixels = TextReader.read, []
    monkeypatch.setattr(TextReader, 'read',
                        lambda self, rgb: pixels.append(rgb.shape[0] * rgb.shape[1]) or read(self, rgb))
    pieces = VideoLoader(workspace=str(tmp_path / 'ws'), chunk_frames=5).index(
        DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
    reader = ScreenTextReader()
    cues = [cue for piece in pieces for doc in reader.index(piece) if doc.last_chunk for cue in doc.cues]
    assert [(cue.text.replace(' ', ''), cue.start) for cue in cues] == [
        ('quarterlyrevenuegrew', 0.0), ('harborlightstonight', 4.0), ('今天天气很好', 8.0)]
    assert sum(pixels) < 0.3 * 12 * 640 * 360, pixels  # the first and last keyframes whole, then the new lines
