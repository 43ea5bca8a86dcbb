"""Where a clip comes from, and which videos share footage, through the CLI on generated footage and a
CLIP whose image tower tells scenes apart."""
import json

import pytest

from flow import main
from tests.factories import _ffmpeg, make_video, write_discriminative_clip_checkpoint

LIFE = 'life=s=160x120:mold=10:r=25:ratio=0.1:death_color=#C83232:life_color=#00ff00'


@pytest.fixture(scope='module')
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp('footage')
    videos = root / 'videos'
    make_video(videos / 'mandelbrot.mp4', duration=12, size='160x120', rate=25, source='mandelbrot')
    make_video(videos / 'life.mp4', duration=10, size='160x120', rate=25, source=LIFE)
    make_video(videos / 'bars.mp4', duration=8, size='160x120', rate=25, source='smptebars')
    make_video(videos / 'bars_30fps.mp4', duration=8, size='160x120', rate=30, source='smptebars')
    # a copy trimmed at both ends, smaller, at 30 fps, re-encoded at a low quality
    _ffmpeg(['-i', str(videos / 'mandelbrot.mp4'), '-ss', '2', '-t', '7', '-vf', 'scale=96:72,fps=30',
             '-c:v', 'libx264', '-crf', '35', '-pix_fmt', 'yuv420p', str(videos / 'mandelbrot_excerpt.mp4')])
    _ffmpeg(['-i', str(videos / 'life.mp4'), '-ss', '4', '-t', '3.2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
             str(root / 'clip.mp4')])
    model = write_discriminative_clip_checkpoint(root / 'scenes.pt')
    common = ['--workspace', str(root / 'workspace'), '--model', str(model)]
    assert main(['index', str(videos), '--asr', 'off', *common]) == 0
    return root, common


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_search_by_video_finds_the_source_and_where_the_clip_lies_in_it(capsys, library):
    root, common = library
    code, out, err = run(capsys, 'search', '--video', root / 'clip.mp4', '--json', '--top', '3', *common)
    assert code == 0, err
    best = json.loads(out)[0]
    assert best['video'].endswith('life.mp4') and abs(best['start'] - 4.0) <= 1.0 and abs(best['end'] - 7.2) <= 1.0
    assert set(best) == {'video', 'video_id', 'start', 'end', 'timestamp', 'score', 'thumbnail', 'source', 'sources',
                         'text'}
    assert best['source'] == 'visual' and best['text'] is None


def test_duplicates_groups_a_trimmed_reencoded_copy_and_not_two_videos_of_one_still_pattern(capsys, library):
    root, common = library
    code, out, err = run(capsys, 'duplicates', '--json', *common[:2])  # it reads stored keyframes: no --model
    assert code == 0, err
    groups = json.loads(out)
    assert len(groups) == 1
    ranges = {v['video'].rsplit('/', 1)[1]: (v['start'], v['end']) for v in groups[0]['videos']}
    assert set(ranges) == {'mandelbrot.mp4', 'mandelbrot_excerpt.mp4'}
    assert abs(ranges['mandelbrot.mp4'][0] - 2.0) <= 1.0 and abs(ranges['mandelbrot.mp4'][1] - 9.0) <= 1.0
    assert ranges['mandelbrot_excerpt.mp4'][0] <= 1.0 and groups[0]['score'] >= 0.9


def test_search_needs_exactly_one_query(capsys, library):
    root, common = library
    code, out, err = run(capsys, 'search', 'a red car', '--video', root / 'clip.mp4', *common)
    assert code != 0 and err.startswith('error: ') and len(err.splitlines()) == 1
