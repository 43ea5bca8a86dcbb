"""Where a clip comes from, and which videos share footage, through the CLI on generated footage and a
CLIP whose image tower tells scenes apart (tests/footage_fixtures.py)."""
import json

import pytest

from flow import main
from tests.footage_fixtures import footage  # noqa: F401 (a fixture)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('clip', ['clip.mp4', 'clip_letterboxed.mp4'])
def test_search_by_video_finds_the_source_and_where_the_clip_lies_in_it(capsys, footage, clip):
    root, common = footage
    code, out, err = run(capsys, 'search', '--video', root / clip, '--json', '--top', '3', *common)
    assert code == 0, err
    best = json.loads(out)[0]
    assert best['video'].endswith('gradients.mp4') and abs(best['start'] - 4.0) <= 1.0 and abs(best['end'] - 7.2) <= 1.0
    assert set(best) == {'video', 'video_id', 'start', 'end', 'timestamp', 'score', 'thumbnail', 'source', 'sources',
                         'text'}
    assert best['source'] == 'visual' and best['text'] is None


def test_duplicates_groups_trimmed_reencoded_and_letterboxed_copies_not_two_videos_of_one_still_pattern(capsys, footage):
    root, common = footage
    code, out, err = run(capsys, 'duplicates', '--json', *common[:2])  # it reads stored keyframes: no --model
    assert code == 0, err
    groups = json.loads(out)
    assert len(groups) == 1
    ranges = {v['video'].rsplit('/', 1)[1]: (v['start'], v['end']) for v in groups[0]['videos']}
    assert set(ranges) == {'mandelbrot.mp4', 'mandelbrot_excerpt.mp4', 'mandelbrot_letterboxed.mp4'}
    # the original's range covers what both copies share with it: 2-9 s (the excerpt) and 1-12 s (the letterboxed)
    assert abs(ranges['mandelbrot.mp4'][0] - 1.0) <= 1.0 and abs(ranges['mandelbrot.mp4'][1] - 12.0) <= 1.0
    assert ranges['mandelbrot_excerpt.mp4'][0] <= 1.0 and groups[0]['score'] >= 0.9
    assert ranges['mandelbrot_letterboxed.mp4'][0] <= 1.0 and abs(ranges['mandelbrot_letterboxed.mp4'][1] - 11.0) <= 1.0


def test_search_needs_exactly_one_query(capsys, footage):
    root, common = footage
    code, out, err = run(capsys, 'search', 'a red car', '--video', root / 'clip.mp4', *common)
    assert code != 0 and err.startswith('error: ') and len(err.splitlines()) == 1
