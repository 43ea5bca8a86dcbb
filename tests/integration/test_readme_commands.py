"""Every command of the README's command-line and tuning blocks, run as written in a scratch folder (its own
flow.yml pointing at a tiny CLIP and a tiny multilingual tower; the placeholders replaced by generated
videos, captions and ids), so the README cannot drift from what the CLI does."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.factories import make_video, write_discriminative_clip_checkpoint
from tests.multilingual_factory import write_random_multilingual_model

ROOT = Path(__file__).resolve().parents[2]
NOT_RUN = {
    '--ray': 'starts a Ray cluster; tests/distributed drives --ray',
    'MSRVTT': 'needs the MSR-VTT data set and a GPU',
}


def blocks(section: str) -> list[str]:
    """The `flow.py` command lines of the README section's plain code blocks (continuations joined)."""
    text = (ROOT / 'README.md').read_text(encoding='utf-8').split(f'\n## {section}', 1)[1].split('\n## ', 1)[0]
    lines = []
    for block in re.findall(r'\n```\n(.*?)```', text, re.S):
        lines += [line for line in block.replace('\\\n', ' ').splitlines() if re.match(r'(\.venv/bin/)?python flow\.py ', line)]
    return lines


def runnable(line: str) -> str:
    """The line as a shell runs it here: this Python and the repository's flow.py, optional parts given,
    the first of alternatives taken, the README's sample id replaced by a placeholder for a real one."""
    line = re.sub(r'^(\.venv/bin/)?python flow\.py', f'{sys.executable} {ROOT / "flow.py"}', line)
    line = re.sub(r'\[([^\]]*)\]', r'\1', line)
    line = re.sub(r'(\w+)(\|\w+)+', r'\1', line)
    return line.replace('3908583801c2', '{id}').replace('ViT-B/32', '{base}').replace(' BASE', ' {base}')


@pytest.fixture
def base(tmp_path) -> Path:
    """A tiny CLIP whose image tower tells scenes apart (training has something to learn)."""
    return write_discriminative_clip_checkpoint(tmp_path / 'weights' / 'tiny-clip.pt')


@pytest.fixture
def scratch(tmp_path, base) -> Path:
    """The README's files: ~/Videos, holiday.mp4, clip.mp4, talks/ (subtitled), photo.jpg, DIR and FILE (a captioned
    set), train.csv, val.csv, test.csv; a flow.yml using the tiny models."""
    tiny_checkpoint = base
    tiny_multilingual = write_random_multilingual_model(tmp_path / 'weights' / 'multilingual', 'tiny', out=32)
    flow = (ROOT / 'flow.yml').read_text(encoding='utf-8')
    for key, value in (('model', tiny_checkpoint), ('multilingual_model', tiny_multilingual),
                       ('aligned_to', tiny_checkpoint)):
        flow, count = re.subn(rf'(?m)^(\s+{key}:) \S+', rf'\1 {value}', flow)
        assert count == 1, key
    (tmp_path / 'flow.yml').write_text(flow, encoding='utf-8')
    make_video(tmp_path / 'Videos' / 'beach.mp4', duration=2, source='smptebars')
    make_video(tmp_path / 'Videos' / 'fireworks.mp4', duration=2, source='mandelbrot')
    make_video(tmp_path / 'holiday.mp4', duration=2, source='testsrc2')
    make_video(tmp_path / 'clip.mp4', duration=1.5, source='mandelbrot')  # footage of Videos/fireworks.mp4
    make_video(tmp_path / 'talks' / 'cooking.mp4', duration=3, source='color=c=red')
    (tmp_path / 'talks' / 'cooking.srt').write_text('1\n00:00:00,500 --> 00:00:02,500\nthe chef slices onions\n',
                                                    encoding='utf-8')
    Image.new('RGB', (64, 48), (200, 30, 30)).save(tmp_path / 'photo.jpg')
    for i, source in enumerate(['color=c=blue', 'color=c=green', 'smptebars', 'testsrc2']):
        make_video(tmp_path / 'DIR' / f'v{i}.mp4', duration=1, size='96x72', rate=10, source=source)
    sentences = ['a blue screen', 'a green screen', 'colour bars', 'a test pattern']
    for name, rows in (('FILE', range(4)), ('train.csv', range(4)), ('val.csv', range(2)), ('test.csv', range(4))):
        with open(tmp_path / name, 'w', newline='') as f:
            csv.writer(f).writerows([('video_id', 'sentence'), *((f'v{i}', sentences[i]) for i in rows)])
    return tmp_path


def run(line: str, scratch: Path) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', '-c', line], cwd=scratch, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'HOME': str(scratch), 'HF_HUB_OFFLINE': '1'})


def test_every_readme_command_runs_as_written(scratch, base):
    lines = blocks('The command line') + blocks('Tuning on your own videos and captions')
    assert len(lines) >= 17
    ids = {}
    ran = []
    for line in lines:
        skipped = [why for marker, why in NOT_RUN.items() if marker in line]
        if skipped:
            continue
        command = runnable(line)
        if '{id}' in command:  # delete the holiday video; print the talk's transcript
            video = 'holiday.mp4' if ' delete ' in command else 'cooking.mp4'
            command = command.replace('{id}', ids[video][:12])
        result = run(command.replace('{base}', str(base)), scratch)
        ran.append(line)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        assert 'Traceback' not in result.stderr and 'Warning' not in result.stderr, (line, result.stderr)
        check(line, result, scratch)
        if ' index ' in line:
            ids.update({Path(v['video']).name: v['video_id'] for v in _listed(scratch)})
    assert len(ran) == len(lines) - 3  # all but --ray and the two MSR-VTT lines


def check(line: str, result: subprocess.CompletedProcess, scratch: Path) -> None:
    """What the README says each command prints."""
    out = result.stdout.splitlines()
    if ' index ' in line:
        assert re.fullmatch(r'\d+ indexed, \d+ already indexed, 0 failed; \d+ frames in [\d.]+ s', out[-1]), out
        assert all(re.match(r'(indexed|already indexed): ', o) for o in out[:-1]), out
    elif ' train ' in line:
        assert 'wrote tuned.pt' in result.stdout and (scratch / 'tuned.pt').is_file()
    elif ' eval ' in line and '--json' in line:
        assert json.loads(result.stdout)['videos'] == 4 and 'compare' in json.loads(result.stdout)
    elif ' eval ' in line:
        assert re.search(r'^\d+ captions, 4 videos', result.stdout, re.M)
    elif '--json' in line and ' search ' in line and '--video' not in line:
        assert isinstance(json.loads(result.stdout), list)
    elif '--in speech' in line:
        assert 'the chef slices onions' in result.stdout and 'cooking.mp4' in result.stdout
    elif ' transcript ' in line:
        assert (scratch / 'talk.srt').read_text().startswith('1\n00:00:00,500 --> 00:00:02,500\nthe chef slices onions')
    elif ' delete ' in line:
        assert out[0].startswith('deleted ') and out[0].endswith('holiday.mp4')
    elif ' list' in line:
        assert len(json.loads(result.stdout)) >= 3
    elif ' duplicates' in line:
        assert isinstance(json.loads(result.stdout), list)
    elif '--video' in line:
        assert Path(json.loads(result.stdout)[0]['video']).name == 'fireworks.mp4'
    elif '--offset 10' in line:  # five videos: nothing after the first ten
        assert out == ['no matches after the first 10'], out
    elif ' search ' in line:
        assert out and all(re.match(r'\s*\d+\. -?\d\.\d{3}  ', o) for o in out), out


def _listed(scratch: Path) -> list[dict]:
    result = run(f'{sys.executable} {ROOT / "flow.py"} list --json', scratch)
    return json.loads(result.stdout)
