"""Whole moments through the CLI: a shot found by an image comes back once, snapped to its cuts; spoken
results carry the keyframe shown when the words are said; a speech-only search runs no text model."""
import json
from pathlib import Path

import pytest

from flow import main
from tests.factories import concat_videos, make_video
from tests.speech_fixtures import run_ffmpeg

SRT = '1\n00:00:01,000 --> 00:00:02,500\nThe chef slices the onions\n\n2\n00:00:03,000 --> 00:00:04,000\nthen adds salt\n'


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_image_from_the_middle_of_a_shot_finds_that_shot_once(capsys, tmp_path, flow_args):
    """Issue 24.1: a frame from the middle of the 4-8 s shot of a three-shot video gave 6-7, 5-6 and 4-5."""
    parts = [make_video(tmp_path / f'part{i}.mp4', duration=4, source=source)
             for i, source in enumerate(['smptebars', 'testsrc2', 'mandelbrot'])]
    (tmp_path / 'videos').mkdir()
    video = concat_videos(tmp_path / 'videos' / 'three.mp4', parts)
    frame = tmp_path / 'frame.png'
    run_ffmpeg(['-ss', '6', '-i', str(video), '-frames:v', '1', str(frame)])
    code, out, err = run(capsys, 'index', video, '--asr', 'off', *flow_args)
    assert code == 0 and '1 indexed' in out, err
    code, out, err = run(capsys, 'search', '--image', frame, '--json', *flow_args)
    results = json.loads(out)
    assert code == 0 and (results[0]['start'], results[0]['end']) == (4.0, 8.0), results
    shots = [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    for shot in shots:  # each shot in at most one result
        assert sum(r['start'] < shot[1] and shot[0] < r['end'] for r in results) <= 1, results
    assert all(r['end'] - r['start'] <= 30.0 and r['sources'] == ['visual'] for r in results)


@pytest.fixture
def subtitled(tmp_path):
    folder = tmp_path / 'videos'
    cooking = make_video(folder / 'cooking.mp4', duration=5, source='testsrc2')
    (folder / 'cooking.srt').write_text(SRT, encoding='utf-8')
    return cooking


def test_speech_only_search_runs_no_text_model_and_shows_the_keyframe_at_the_words(capsys, subtitled, flow_args,
                                                                                    monkeypatch):
    """Issue 24.10: `--in speech` ran the text tower, and its results had "thumbnail": ""."""
    assert run(capsys, 'index', subtitled, '--asr', 'off', *flow_args)[0] == 0

    def no_text_model(*args, **kwargs):
        raise AssertionError('a speech-only search ran a text model')

    monkeypatch.setattr('executors.text_encoder.embed_queries', no_text_model)
    code, out, err = run(capsys, 'search', 'adds salt', '--in', 'speech', '--json', *flow_args)
    assert code == 0, err
    [hit] = json.loads(out)
    assert (hit['start'], hit['end'], hit['source'], hit['sources']) == (3.0, 4.0, 'speech', ['speech'])
    assert hit['thumbnail'].endswith('000003.jpg') and Path(hit['thumbnail']).is_file(), hit  # on screen at 3 s
