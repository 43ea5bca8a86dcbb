"""The README's promises of the command line, each checked as a user meets it: `python flow.py ...` in a
fresh process, its exit status, and stdout/stderr exactly one line where one line is promised
(0 on success; 1 on a user error with one `error:` line, after the summary of what was done; 2 on bad
usage, one line too; never a traceback)."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.factories import make_video

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv, cwd: Path = ROOT, env: dict | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / 'flow.py'), *map(str, argv)], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300, env={**os.environ, **(env or {})})


def one_line(stream: str) -> str:
    """The stream's only line (fails when there are more, or none)."""
    lines = stream.splitlines()
    assert len(lines) == 1, stream
    return lines[0]


@pytest.fixture(scope='module')
def library(tmp_path_factory, tiny_checkpoint, sample_videos) -> dict:
    """A workspace holding the three sample videos, and the options that read it or search it."""
    workspace = tmp_path_factory.mktemp('promises') / 'workspace'
    reading = ['--flow', ROOT / 'flow.yml', '--workspace', workspace]
    result = cli('index', sample_videos[0].parent, *reading, '--model', tiny_checkpoint, '--asr', 'off')
    assert result.returncode == 0, result.stderr
    return {'reading': reading, 'searching': [*reading, '--model', tiny_checkpoint], 'workspace': workspace}


# 1. a reader of stdout that goes away (| head) ends the run quietly; what was indexed is kept

def closed_stdout() -> int:
    """The write end of a pipe whose reader is gone: every write fails with EPIPE, as under `| head` once it exits."""
    read, write = os.pipe()
    os.close(read)
    return write


def test_output_to_a_closed_pipe_ends_quietly_and_keeps_what_was_indexed(tmp_path, tiny_checkpoint, sample_videos):
    options = ['--workspace', tmp_path / 'ws', '--model', tiny_checkpoint, '--asr', 'off']
    pipe = closed_stdout()
    try:
        result = cli('index', sample_videos[0].parent, *options, stdout=pipe)
    finally:
        os.close(pipe)
    assert result.returncode == 141 and result.stderr == ''
    listed = json.loads(cli('list', '--json', '--workspace', tmp_path / 'ws').stdout)
    assert len(listed) >= 1  # stopped cleanly after the first video: it is stored and saved
    again = cli('index', sample_videos[0].parent, *options)
    assert again.returncode == 0 and '0 failed' in again.stdout.splitlines()[-1], again.stderr

    pipe = closed_stdout()
    try:
        result = cli('list', '--workspace', tmp_path / 'ws', stdout=pipe)
    finally:
        os.close(pipe)
    assert result.returncode == 141 and result.stderr == ''


# 2. reading commands never create a workspace

@pytest.mark.parametrize('command', [['search', 'a dog'], ['list'], ['delete', 'abcdef'], ['transcript', 'abcdef']])
def test_reading_commands_on_a_missing_workspace_say_so_and_create_nothing(tmp_path, command):
    missing = tmp_path / 'typo'
    result = cli(*command, '--workspace', missing)
    assert result.returncode == 1 and result.stdout == ''
    assert one_line(result.stderr) == (f'error: {missing}: no library here yet (catalog.sqlite does not exist): '
                                       'check --workspace, or index some videos into it first')
    assert not missing.exists()


# 3 and 8. bad usage: exit 2, one line naming the command; each command takes only the options it uses

@pytest.mark.parametrize('argv, message', [
    (['search', 'a dog', '--image', 'x.png'],
     'give one of a text, --image FILE or --video CLIP, not several (see flow.py search --help)'),
    (['search'], 'search needs a text, --image FILE or --video CLIP (see flow.py search --help)'),
    (['search', 'a dog', '--top', '0'], '--top must be at least 1 and --offset at least 0, not 0 and 0'),
    (['search', '--image', 'x.png', '--in', 'speech'], '--in speech searches what is said: it takes a text'),
    (['search', 'a dog', '--by', 'video', '--in', 'speech'], '--by video ranks videos by what they show'),
    (['list', '--model', 'nonexistent'], 'list does not take --model nonexistent (see flow.py list --help)'),
    (['delete', 'abcdef', '--text-model', 'clip'], 'delete does not take --text-model clip'),
    (['transcript', 'abcdef', '--asr', 'off'], 'transcript does not take --asr off'),
    (['eval', '--videos', 'v', '--captions', 'c', '--backend', 'milvus'], 'eval does not take --backend milvus'),
    (['train', '--videos', 'v', '--captions', 'c', '--out', 'o', '--uri', 'x'], 'train does not take --uri x'),
    (['eval', '--videos', 'v', '--captions', 'c', '--frames', '4', '--strategy', 'uniform'],
     '--frames sets how many frames --strategy count takes; uniform ignores it'),
])
def test_bad_usage_exits_2_with_one_line(library, argv, message):
    result = cli(*argv, *(library['reading'] if argv[0] in ('search', 'list', 'delete', 'transcript') else []))
    assert result.returncode == 2 and result.stdout == ''
    line = one_line(result.stderr)
    assert line.startswith('error: ') and message in line


# 4. a partial index failure: 1, after the summary

def test_index_exits_1_when_any_file_failed_after_the_summary(tmp_path, tiny_checkpoint, sample_videos):
    bad = tmp_path / 'notes.mp4'
    bad.write_text('not a video')
    result = cli('index', bad, sample_videos[0], '--workspace', tmp_path / 'ws', '--model', tiny_checkpoint,
                 '--asr', 'off')
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith('1 indexed, 0 already indexed, 1 failed; ')
    assert one_line(result.stderr).startswith('failed: notes.mp4: not a video file')


# 5. "no matches" says why only when the library is empty; a short id prefix is named as such

def test_no_matches_in_a_full_library_does_not_say_to_index(library):
    result = cli('search', 'zebra', '--in', 'speech', *library['searching'])
    assert result.returncode == 0 and one_line(result.stdout) == 'no matches'


def test_a_video_id_prefix_shorter_than_6_characters_is_named(library):
    result = cli('delete', 'f7a77', *library['reading'])
    assert result.returncode == 1 and result.stdout == ''
    assert one_line(result.stderr) == ("error: 'f7a77': a video id prefix needs at least 6 characters "
                                       '(no file has that name)')


# 6. nothing on stderr that a user cannot act on

def test_milvus_lite_runs_print_nothing_on_stderr(tmp_path, tiny_checkpoint, sample_videos):
    from tests.multilingual_factory import write_random_multilingual_model

    subtitles = tmp_path / 'talk.srt'
    video = make_video(tmp_path / 'talk.mp4', duration=2, source='smptebars')
    subtitles.write_text('1\n00:00:00,000 --> 00:00:02,000\nhello world 你好世界\n', encoding='utf-8')
    # the Chinese cue is embedded by the multilingual tower (search by meaning): a tiny one, so none is missing
    multilingual = write_random_multilingual_model(tmp_path / 'multilingual', 'tiny', out=32)
    flow = (ROOT / 'flow.yml').read_text(encoding='utf-8')
    flow = re.sub(r'(?m)^(\s+multilingual_model:) \S+', rf'\1 {multilingual}', flow)
    (tmp_path / 'flow.yml').write_text(re.sub(r'(?m)^(\s+aligned_to:) \S+', rf'\1 {tiny_checkpoint}', flow), encoding='utf-8')
    options = ['--flow', tmp_path / 'flow.yml', '--workspace', tmp_path / 'ws', '--backend', 'milvus']
    indexed = cli('index', video, *options, '--model', tiny_checkpoint, '--asr', 'off')
    assert indexed.returncode == 0 and indexed.stderr == ''  # no grpc AllocTimestamp tracebacks, no jieba DEBUG
    found = cli('search', 'hello', '--json', *options, '--model', tiny_checkpoint)
    assert found.returncode == 0 and found.stderr == '' and json.loads(found.stdout)[0]['text']


def test_a_missing_whisper_model_is_one_notice_line(tmp_path, tiny_checkpoint):
    from tests.speech_fixtures import video_with_tone

    video = video_with_tone(tmp_path / 'tone.mp4')
    result = cli('index', video, '--workspace', tmp_path / 'ws', '--model', tiny_checkpoint, '--asr', 'tiny',
                 env={'https_proxy': 'http://127.0.0.1:9', 'HF_HUB_OFFLINE': '1'})
    if (ROOT / 'weights' / 'faster-whisper-tiny').exists():
        pytest.skip('the tiny Whisper model is present')
    assert result.returncode == 0
    assert 'speech model' in one_line(result.stderr)  # no huggingface_hub UserWarning before it


# 7. errors blame where the bad value came from

@pytest.mark.parametrize('argv, message', [
    (['search', 'a dog', '--backend', 'foo'], "argument --backend: invalid choice: 'foo'"),
    (['eval', '--videos', 'v', '--captions', 'c', '--strategy', 'bogus'], "argument --strategy: invalid choice: 'bogus'"),
    (['search', 'a dog', '--text-model', 'klingon'], "argument --text-model: invalid choice: 'klingon'"),
])
def test_bad_option_values_blame_the_command_line(argv, message):
    result = cli(*argv)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert message in line and 'flow.yml' not in line


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a CUDA GPU')
def test_train_on_cuda_without_a_gpu_says_so(tmp_path, tiny_checkpoint, sample_videos):
    captions = tmp_path / 'captions.csv'
    captions.write_text('video_id,sentence\nbars,colour bars\npattern,a test pattern\n')
    result = cli('train', '--videos', sample_videos[0].parent, '--captions', captions, '--out', tmp_path / 'o.pt',
                 '--workspace', tmp_path / 'ws', '--model', tiny_checkpoint, '--device', 'cuda')
    assert result.returncode == 1
    assert one_line(result.stderr) == ("error: --device: device 'cuda': torch sees no CUDA GPU on this machine "
                                       '(use cpu, or auto)')


def test_an_override_an_executor_refuses_is_blamed_on_its_origin(tiny_checkpoint):
    from executors.errors import ConfigError
    from library import Library

    with pytest.raises(ConfigError, match=r"^index 'flat' \(the command line\): Indexer: "):
        Library(ROOT / 'flow.yml', origin='the command line', model=str(tiny_checkpoint), index='flat')


# 10. train on a small set: a warning instead of a trivial validation, a line per epoch in a log file,
#     and no untrained file written silently

@pytest.fixture(scope='module')
def three_videos(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp('three')
    for name, source in (('red', 'color=c=red'), ('blue', 'color=c=blue'), ('bars', 'smptebars')):
        make_video(folder / 'videos' / f'{name}.mp4', duration=1.0, size='96x72', rate=10, source=source)
    with open(folder / 'captions.csv', 'w', newline='') as f:
        csv.writer(f).writerows([('video_id', 'sentence'), ('red', 'a red screen'), ('blue', 'a blue screen'),
                                 ('bars', 'colour bars')])
    return folder / 'videos', folder / 'captions.csv'


def test_train_on_three_videos_warns_and_logs_every_epoch(tmp_path, tiny_checkpoint, three_videos):
    videos, captions = three_videos
    log = tmp_path / 'train.log'
    with open(log, 'w') as stderr_file:
        result = subprocess.run([sys.executable, str(ROOT / 'flow.py'), 'train', '--videos', str(videos),
                                 '--captions', str(captions), '--out', str(tmp_path / 'q.pt'), '--holdout', '0.1',
                                 '--epochs', '5', '--workspace', str(tmp_path / 'ws'), '--model', str(tiny_checkpoint)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr_file, text=True, timeout=300)
    assert result.returncode == 0
    lines = log.read_text().splitlines()
    warnings = [line for line in lines if line.startswith('warning: ')]
    assert len(warnings) == 1 and '3 videos are too few to validate on: --holdout 0.1 would leave 0' in warnings[0]
    assert [line.split(':')[0] for line in lines if line.startswith('epoch ')] == [f'epoch {i}/5' for i in range(1, 6)]
    assert not [line for line in lines if 'Warning' in line]  # no torch UserWarning
    assert result.stdout.splitlines()[0].startswith('trained 5 epochs on every video (no validation set); wrote ')
