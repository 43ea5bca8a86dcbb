"""Spoken words end to end through the CLI: subtitles and recognised speech are indexed with the keyframes,
searched in their own language, fused with what CLIP sees, listed, printed as SRT and deleted."""
import json

import pytest

from flow import main
from tests.factories import make_video
from tests.speech_fixtures import espeak, speak, video_with_speech, whisper_base  # noqa: F401

SRT = '1\n00:00:01,000 --> 00:00:02,500\nThe chef slices the onions\n\n2\n00:00:03,000 --> 00:00:04,000\nthen adds salt\n'
ZH_VTT = 'WEBVTT\n\n00:00:02.000 --> 00:00:03.500\n我们去海边吧\n'


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def subtitled(tmp_path):
    folder = tmp_path / 'videos'
    cooking = make_video(folder / 'cooking.mp4', duration=5, source='testsrc2')
    (folder / 'cooking.srt').write_text(SRT, encoding='utf-8')
    beach = make_video(folder / 'beach.mp4', duration=4, source='smptebars')
    (folder / 'beach.zh.vtt').write_text(ZH_VTT, encoding='utf-8')
    make_video(folder / 'silent.mp4', duration=3, source='mandelbrot')
    return folder, cooking, beach


def test_subtitles_are_searched_fused_listed_printed_and_deleted(capsys, subtitled, flow_args):
    folder, cooking, beach = subtitled
    code, out, err = run(capsys, 'index', folder, '--asr', 'off', *flow_args)
    assert code == 0 and '3 indexed' in out, err
    assert '(5 frames, 2 cues)' in out and '(4 frames, 1 cue)' in out

    code, out, _ = run(capsys, 'list', '--json', *flow_args[:4])
    assert sorted((v['video'].rsplit('/', 1)[1], v['cues']) for v in json.loads(out)) == [
        ('beach.mp4', 1), ('cooking.mp4', 2), ('silent.mp4', 0)]

    code, out, _ = run(capsys, 'search', 'slicing onions', '--in', 'speech', '--json', *flow_args)
    [hit] = json.loads(out)
    assert (hit['video'], hit['start'], hit['end'], hit['source']) == (str(cooking), 1.0, 2.5, 'speech')
    assert hit['text'] == 'The chef slices the onions'

    # two characters, matched in the Chinese cues (CLIP's own tower embeds the query for the keyframes here:
    # no multilingual weights in tests)
    code, out, _ = run(capsys, 'search', '海边', '--json', '--text-model', 'clip', *flow_args)
    results = json.loads(out)
    assert results[0]['video'] == str(beach) and results[0]['source'] in ('speech', 'both')
    assert results[0]['text'] == '我们去海边吧' and results[0]['start'] <= 2.0 and results[0]['end'] >= 3.5
    assert {r['source'] for r in results[1:]} <= {'visual'}  # the rest is what CLIP sees, fused in one list

    code, out, _ = run(capsys, 'search', 'onions', '--in', 'visual', '--json', *flow_args)
    assert {r['source'] for r in json.loads(out)} == {'visual'} and all(r['text'] is None for r in json.loads(out))

    code, out, _ = run(capsys, 'transcript', cooking, *flow_args[:4])
    assert out == '1\n00:00:01,000 --> 00:00:02,500\nThe chef slices the onions\n\n' \
                  '2\n00:00:03,000 --> 00:00:04,000\nthen adds salt\n'
    code, _, err = run(capsys, 'transcript', folder / 'silent.mp4', *flow_args[:4])
    assert code == 1 and 'no subtitles or recognised speech' in err

    assert run(capsys, 'delete', cooking, *flow_args[:4])[0] == 0
    code, out, _ = run(capsys, 'search', 'onions', '--in', 'speech', '--json', *flow_args)
    assert json.loads(out) == []


def test_speech_is_recognised_while_indexing_and_found_at_its_moment(capsys, tmp_path, flow_args, espeak,  # noqa: F811
                                                                     whisper_base):  # noqa: F811
    sentence = speak('The red balloon floats over the harbour.', tmp_path / 'sentence.wav')
    video = video_with_speech(tmp_path / 'harbour.mp4', sentence, offset=3.0, duration=8.0)
    code, out, err = run(capsys, 'index', video, '--asr', whisper_base, *flow_args)
    assert code == 0 and '1 indexed' in out, err
    code, out, _ = run(capsys, 'search', 'red balloon', '--in', 'speech', '--json', *flow_args)
    [hit] = json.loads(out)
    assert hit['source'] == 'speech' and 'balloon' in hit['text'].lower()
    assert 2.0 <= hit['start'] <= 4.0 and hit['end'] <= 8.0
