"""Hostile input through the CLI: one clear line on stderr, the CLI's exit code, and nothing written."""
import os
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from executors.media.cutting import ffmpeg_path
from flow import main
from tests.factories import make_video
from tests.integration.reliability.checks import check_consistent, read_reference

SKIP = {'lock', 'catalog.sqlite-wal', 'catalog.sqlite-shm'}  # the lock and SQLite's own working files


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob('*') if p.is_file() and p.name not in SKIP}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height (and one empty data chunk): what a hostile upload looks like."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hostile')
    (folder / 'random.mp4').write_bytes(random.Random(0).randbytes(20_000))  # seeded: some random bytes probe as audio
    (folder / 'zero.mp4').write_bytes(b'')
    (folder / 'folder.mp4').mkdir()
    loop = folder / 'loop'
    loop.mkdir()
    os.symlink('self.mp4', loop / 'self.mp4')  # a symlink to itself
    good = make_video(folder / 'good.mp4', duration=1, size='64x48', rate=10, source='testsrc')
    subprocess.run([ffmpeg_path(), '-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=10', '-t', '1',
                    '-c:v', 'mpeg4', str(folder / 'mpeg4.avi')], check=True)
    data = (folder / 'mpeg4.avi').read_bytes()
    (folder / 'unknown codec.avi').write_bytes(data.replace(b'FMP4', b'QZQZ'))  # a codec no ffmpeg decodes
    (folder / 'text.png').write_text('not an image')
    (folder / '0x0.png').write_bytes(png(0, 0))
    (folder / 'huge.png').write_bytes(png(20_000, 20_000))
    return folder, good


BAD_VIDEOS = [
    ('random.mp4', 'random.mp4: not a video file'),
    ('zero.mp4', 'zero.mp4: the file is empty'),
    ('loop/self.mp4', 'self.mp4: '),
    ('unknown codec.avi', 'unknown codec.avi: unsupported video codec (QZQZ)'),
    ('missing.mp4', 'missing.mp4: no such file'),
]


@pytest.mark.parametrize('name, message', BAD_VIDEOS)
def test_a_bad_video_is_one_failed_line_exit_1_and_writes_nothing(capsys, library, tiny_checkpoint, hostile, name,
                                                                  message):
    folder, _ = hostile
    before = snapshot(library)
    code, out, err = cli(capsys, 'index', folder / name, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1  # nothing in the batch could be indexed
    assert err.count('\n') == 1 and err.startswith('failed: ') and message in err, err
    assert '0 indexed, 0 already indexed, 1 failed' in out
    assert snapshot(library) == before


def test_a_folder_named_like_a_video_and_a_folder_with_a_symlink_loop(capsys, library, tiny_checkpoint, hostile):
    folder, good = hostile
    before = snapshot(library)
    code, out, err = cli(capsys, 'index', folder / 'folder.mp4', '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and err.count('\n') == 1 and 'folder.mp4' in err and 'no video files' in err
    assert snapshot(library) == before
    loop = folder / 'loop'
    os.symlink('..', loop / 'up') if not (loop / 'up').exists() else None  # loop/up/loop/up/... never ends
    code, out, err = cli(capsys, 'index', loop, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and 'failed: self.mp4: ' in err  # 1: a file failed (after the summary)
    assert out.count(f'indexed: {loop}/up/good.mp4') == 1  # every file once, however many ways lead to it
    os.unlink(loop / 'up')


@pytest.mark.parametrize('name', ['../clips/../clips/odd name.mp4', 'émoji 🎬 clip.mp4', 'new\nline.mp4',
                                  'x; $(touch pwned) `touch pwned`.mp4', 'tab\tand\x1b[31mred.mp4'])
def test_strange_names_and_relative_paths_index_once_under_their_absolute_path(capsys, tmp_path, tiny_checkpoint,
                                                                              hostile, monkeypatch, name):
    _, good = hostile
    clips = tmp_path / 'clips'
    clips.mkdir()
    target = clips / os.path.basename(name)
    target.write_bytes(good.read_bytes())
    monkeypatch.chdir(clips)
    workspace = tmp_path / 'workspace'
    flow_yml = Path(__file__).resolve().parents[3] / 'flow.yml'
    code, out, err = cli(capsys, 'index', name, '--workspace', workspace, '--model', tiny_checkpoint, '--flow', flow_yml)
    assert code == 0, err
    code, out, err = cli(capsys, 'list', '--json', '--workspace', workspace, '--flow', flow_yml)
    import json
    stored, = json.loads(out)
    assert stored['video'] == str(target)  # absolute, without ../
    code, out, err = cli(capsys, 'list', '--workspace', workspace, '--flow', flow_yml)
    assert out.count('\n') == 1  # one line per video even when its name holds a newline
    assert '\x1b' not in out
    assert not (tmp_path / 'clips' / 'pwned').exists() and not (clips / 'pwned').exists()
    check_consistent(workspace, read_reference(workspace), strict=True)


@pytest.mark.parametrize('text', ['', ' \n\t '])
def test_an_empty_query_is_bad_usage_exit_2_and_writes_nothing(capsys, library, tiny_checkpoint, text):
    before = snapshot(library)
    code, out, err = cli(capsys, 'search', text, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 2 and out == '' and err.count('\n') == 1
    assert err.startswith('error: search needs a text, --image FILE or --video CLIP'), err
    assert snapshot(library) == before


@pytest.mark.parametrize('argv, message', [
    (['search', '--image', '{folder}/text.png'], 'text.png: not a readable image'),
    (['search', '--image', '{folder}/0x0.png'], '0x0.png: not a readable image'),
    (['search', '--image', '{folder}/huge.png'], 'huge.png: '),
    (['search', '--image', '{folder}/folder.mp4'], 'folder.mp4: not a readable image'),
    (['search', '--image', '{folder}/missing.png'], 'missing.png: not a readable image'),
])
def test_bad_queries_are_one_line_exit_1_and_write_nothing(capsys, library, tiny_checkpoint, hostile, argv, message):
    folder, _ = hostile
    before = snapshot(library)
    argv = [a.format(folder=folder) for a in argv]
    code, out, err = cli(capsys, *argv, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and out == ''
    assert err.count('\n') == 1 and err.startswith('error: ') and message in err, err
    assert snapshot(library) == before


def test_a_10000_character_query_is_cut_to_clip_s_context_and_answered(capsys, library, tiny_checkpoint, reference):
    query = ('a very long description of a red square ' * 250)[:10_000]
    code, out, err = cli(capsys, 'search', query, '--json', '--top', '3', '--workspace', library,
                         '--model', tiny_checkpoint)
    import json
    results = json.loads(out)
    assert code == 0 and len(results) == 3 and {r['video_id'] for r in results} <= set(reference.videos)


def test_a_one_frame_video_is_indexed_and_found(capsys, tmp_path, tiny_checkpoint):
    one = make_video(tmp_path / 'one.mp4', duration=0.1, size='64x48', rate=10)
    workspace = tmp_path / 'workspace'
    code, out, err = cli(capsys, 'index', one, '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0 and '(1 frame, 0 cues)' in out and '; 1 frame in' in out, err
    code, out, err = cli(capsys, 'search', 'anything', '--json', '--workspace', workspace, '--model', tiny_checkpoint)
    import json
    match, = json.loads(out)
    assert match['start'] == 0 and 0 < match['end'] <= 0.1 + 1e-6
