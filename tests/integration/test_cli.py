"""The CLI contract scripts rely on: commands, --json output, exit codes, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flow import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_list_delete_end_to_end(capsys, flow_args, library_args, sample_videos, tmp_path):
    folder = sample_videos[0].parent
    code, out, err = run_cli(capsys, 'index', folder, *flow_args)
    assert code == 0, err
    assert '3 indexed, 0 already indexed, 0 failed' in out.splitlines()[-1]

    code, out, _ = run_cli(capsys, 'index', sample_videos[1], *flow_args)
    assert code == 0
    assert '0 indexed, 1 already indexed, 0 failed' in out

    code, out, _ = run_cli(capsys, 'list', '--json', *library_args)
    videos = json.loads(out)
    assert sorted(Path(v['video']).name for v in videos) == ['bars.mp4', 'fractal.mp4', 'pattern.mp4']
    assert all(v['frames'] >= 2 and v['duration'] > 1.5 for v in videos)

    code, out, _ = run_cli(capsys, 'search', 'colour bars on a test card', '--top', '2', '--json', *flow_args)
    results = json.loads(out)
    assert code == 0 and 1 <= len(results) <= 2
    for r in results:
        assert set(r) == {'video', 'video_id', 'start', 'end', 'timestamp', 'score', 'thumbnail', 'source', 'sources',
                          'text'}
        assert r['start'] <= r['timestamp'] < r['end'] and r['source'] == 'visual' and r['text'] is None
        assert Path(r['thumbnail']).is_file()

    # search by image: a frame of the fractal video finds the fractal video first
    frame = tmp_path / 'frame.png'
    Image.fromarray(_first_frame(sample_videos[2])).save(frame)
    code, out, _ = run_cli(capsys, 'search', '--image', frame, '--json', *flow_args)
    assert code == 0 and Path(json.loads(out)[0]['video']).name == 'fractal.mp4'

    code, out, _ = run_cli(capsys, 'delete', sample_videos[2], *library_args)
    assert code == 0 and 'deleted' in out
    code, out, _ = run_cli(capsys, 'list', '--json', *library_args)
    assert 'fractal.mp4' not in out and len(json.loads(out)) == 2
    code, out, _ = run_cli(capsys, 'search', '--image', frame, '--json', *flow_args)
    assert all(Path(r['video']).name != 'fractal.mp4' for r in json.loads(out))

    code, _, err = run_cli(capsys, 'delete', sample_videos[2], *library_args)
    assert code == 1 and err.startswith('error: ') and str(sample_videos[2].name) in err


def _first_frame(video: Path) -> np.ndarray:
    from executors.media.cutting import ffmpeg_path

    raw = subprocess.run([ffmpeg_path(), '-v', 'error', '-i', str(video), '-frames:v', '1', '-f', 'rawvideo',
                          '-pix_fmt', 'rgb24', '-'], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(240, 320, 3)


def test_a_bad_file_in_a_batch_fails_alone_and_is_reported(capsys, flow_args, sample_videos, tmp_path):
    bad = tmp_path / 'notes.mp4'
    bad.write_text('not a video')
    code, out, err = run_cli(capsys, 'index', bad, sample_videos[0], *flow_args)
    assert code == 1  # any failure: 1, after the summary
    assert out.splitlines()[-1].startswith('1 indexed, 0 already indexed, 1 failed')
    assert 'notes.mp4' in err


def test_empty_library_search_says_what_to_do(capsys, flow_args, library_args, sample_videos):
    assert run_cli(capsys, 'index', sample_videos[0], *flow_args)[0] == 0
    assert run_cli(capsys, 'delete', sample_videos[0], *library_args)[0] == 0
    code, out, _ = run_cli(capsys, 'search', 'a dog', *flow_args)
    assert code == 0 and out == 'no matches: the library is empty (python flow.py index PATH)\n'


@pytest.mark.parametrize('argv, message', [
    (['list', '--flow', 'missing.yml'], 'missing.yml: cannot read the flow file'),
    (['search', '--image', 'missing.png'], 'missing.png: not a readable image'),
])
def test_user_errors_exit_1_with_one_line(capsys, flow_args, library_args, argv, message):
    common = library_args[2:] if '--flow' in argv else flow_args  # keep the test's own --flow
    code, out, err = run_cli(capsys, *argv, *common)
    assert code == 1
    assert err.strip().count('\n') == 0 and message in err


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(['frobnicate'])
    assert exit_.value.code == 2


def test_missing_weights_say_which_file_to_place_without_a_traceback(tmp_path):
    """A fresh process, the real flow.yml and default model, no weights: one clear line."""
    from library import Library

    Library(ROOT / 'flow.yml', workspace=str(tmp_path / 'ws')).close()  # an empty library (models load lazily)
    result = subprocess.run(
        [sys.executable, str(ROOT / 'flow.py'), 'search', 'a dog', '--workspace', str(tmp_path / 'ws'),
         '--model', 'ViT-B/32'],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path), 'https_proxy': 'http://127.0.0.1:9'})
    if (ROOT / 'weights' / 'ViT-B-32.pt').exists():
        pytest.skip('real weights are present')
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if 'Warning' not in line and 'pkg_resources' not in line]
    assert 'Traceback' not in result.stderr
    assert any(line.startswith('error: ') and 'ViT-B-32.pt' in line and 'weights' in line for line in lines)


COLD_SEARCH = """
import sys
from pathlib import Path
from executors import file_facts
from executors.models import onnx_text_file
onnx_text_file.CACHE_DIR, file_facts.RECORD_DIR = Path(sys.argv[1]), Path(sys.argv[2])
import flow
flow.main(sys.argv[3:])
print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)
"""


def test_a_text_search_after_the_first_needs_no_torch_and_finds_the_same(capsys, flow_args, sample_videos, tmp_path):
    """The first search exports the text tower; a new process runs it from weights/onnx/ alone (#28: cold search)."""
    from executors import file_facts
    from executors.models import onnx_text_file

    assert run_cli(capsys, 'index', sample_videos[0].parent, *flow_args)[0] == 0
    code, first, _ = run_cli(capsys, 'search', 'colour bars', '--json', *flow_args)
    assert code == 0 and json.loads(first)
    cold = subprocess.run([sys.executable, '-c', COLD_SEARCH, str(onnx_text_file.CACHE_DIR), str(file_facts.RECORD_DIR),
                           'search', 'colour bars', '--json', *flow_args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cold.stderr.strip().splitlines()[-1] == 'no torch', cold.stderr
    later = json.loads(cold.stdout)
    assert [(m['video'], m['start'], m['end']) for m in later] == [(m['video'], m['start'], m['end']) for m in json.loads(first)]
    assert [m['score'] for m in later] == pytest.approx([m['score'] for m in json.loads(first)], abs=1e-4)
