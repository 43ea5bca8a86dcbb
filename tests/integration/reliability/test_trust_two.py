"""Trust, round two: hostile files fail alone, a restored backup never shrinks the library, workspaces are
created whole, and what is read back is what was stored."""
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from flow import main
from tests.factories import make_video


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_video_whose_metadata_is_not_utf8_is_indexed_and_the_batch_goes_on(capsys, tmp_path, workspace,
                                                                                  tiny_checkpoint):
    folder = tmp_path / 'videos'
    make_video(folder / 'a_cafe.mp4', duration=2, size='64x48', rate=10,
               extra_args=('-metadata', b'title=caf\xe9', '-metadata:s:v:0', b'language=\xe9n'))
    make_video(folder / 'b_good.mp4', duration=2, size='64x48', rate=10, source='smptebars')
    code, out, err = cli(capsys, 'index', folder, '--workspace', workspace, '--model', tiny_checkpoint, '--asr', 'off')
    assert 'Traceback' not in err
    assert code == 0, err
    assert '2 indexed' in out


def test_indexing_after_an_older_catalog_is_put_back_refuses_and_never_shrinks_the_embeddings(
        capsys, tmp_path, workspace, tiny_checkpoint):
    videos = [make_video(tmp_path / f'v{i}.mp4', duration=2, size='64x48', rate=10, source=source)
              for i, source in enumerate(['testsrc2', 'smptebars', 'mandelbrot'])]
    common = ('--workspace', workspace, '--model', tiny_checkpoint, '--asr', 'off')
    assert cli(capsys, 'index', videos[0], *common)[0] == 0
    backup = (workspace / 'catalog.sqlite').read_bytes()
    assert cli(capsys, 'index', videos[1], *common)[0] == 0
    newer = (workspace / 'catalog.sqlite').read_bytes()
    rows = (workspace / 'embeddings.f16').read_bytes()

    (workspace / 'catalog.sqlite').write_bytes(backup)
    code, out, err = cli(capsys, 'index', videos[2], *common)
    assert code == 1 and 'Traceback' not in err
    assert 'the catalog is older than the embeddings' in err
    assert (workspace / 'embeddings.f16').read_bytes() == rows

    (workspace / 'catalog.sqlite').write_bytes(newer)
    code, out, err = cli(capsys, 'list', '--workspace', workspace, '--json')
    assert code == 0, err
    assert len(__import__('json').loads(out)) == 2


def _subtitled_video(folder):
    video = make_video(folder / 'talk.mp4', duration=3, size='64x48', rate=10)
    (folder / 'talk.srt').write_text('1\n00:00:00,500 --> 00:00:02,000\nthe lighthouse keeper waves\n')
    return video


def test_a_catalog_whose_creation_was_cut_short_gets_its_full_text_index_back(capsys, tmp_path, workspace,
                                                                                 tiny_checkpoint):
    video = _subtitled_video(tmp_path)
    common = ('--workspace', workspace, '--model', tiny_checkpoint)
    assert cli(capsys, 'index', video, *common, '--asr', 'off')[0] == 0
    db = sqlite3.connect(workspace / 'catalog.sqlite')
    db.executescript('DROP TRIGGER cues_keys_insert; DROP TRIGGER cues_keys_delete; DROP TABLE cue_key_counts;'
                     'DROP TABLE cue_keys;')
    db.close()
    code, out, err = cli(capsys, 'search', 'lighthouse keeper', '--in', 'speech', '--json', *common)
    assert code == 0, err
    assert [r['text'] for r in __import__('json').loads(out)] == ['the lighthouse keeper waves']


def test_creating_a_catalog_is_all_or_nothing(tmp_path, monkeypatch):
    from executors.errors import WorkspaceError
    from executors.storage.local import cue_table
    from executors.storage.local.catalog import Catalog

    monkeypatch.setattr(cue_table, 'CUE_SCHEMA', cue_table.CUE_SCHEMA + 'CREATE TABLE broken (;')
    with pytest.raises(WorkspaceError):
        Catalog(tmp_path / 'catalog.sqlite', create=True)
    db = sqlite3.connect(tmp_path / 'catalog.sqlite')
    assert db.execute('SELECT name FROM sqlite_master').fetchall() == []


@pytest.mark.parametrize('argv', [['--model', '{folder}'], ['--top', '99999999999999999999'],
                                  ['--offset', '99999999999999999999']])
def test_a_folder_as_model_and_huge_page_numbers_are_one_line_errors(capsys, tmp_path, workspace, tiny_checkpoint,
                                                                     argv):
    assert cli(capsys, 'index', make_video(tmp_path / 'a.mp4', duration=2, size='64x48', rate=10),
               '--workspace', workspace, '--model', tiny_checkpoint, '--asr', 'off')[0] == 0
    argv = [a.replace('{folder}', str(tmp_path)) for a in argv]
    model = [] if '--model' in argv else ['--model', tiny_checkpoint]
    code, out, err = cli(capsys, 'search', 'a red screen', '--workspace', workspace, *model, *argv)
    assert code in (1, 2) and 'Traceback' not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith('error: ')


def test_hostile_subtitle_files_are_bounded(tmp_path):
    from executors.media.subtitles import MAX_CUE_CHARS, MAX_CUES, subtitle_cues

    video = make_video(tmp_path / 'many.mp4', duration=1, size='64x48', rate=10)
    blocks = [f'{i + 1}\n00:00:{i % 60:02d},000 --> 00:00:{i % 60:02d},500\nline {i}\n' for i in range(MAX_CUES + 50)]
    (tmp_path / 'many.srt').write_text('\n'.join(blocks))
    assert len(subtitle_cues(video, 'id')) == MAX_CUES

    long = make_video(tmp_path / 'long.mp4', duration=1, size='64x48', rate=10)
    (tmp_path / 'long.srt').write_text('1\n00:00:00,000 --> 00:00:01,000\n' + 'word ' * 200_000 + '\n')
    [cue] = subtitle_cues(long, 'id')
    assert len(cue.text) <= MAX_CUE_CHARS + 2 and cue.text.startswith('word word')

    huge = make_video(tmp_path / 'huge.mp4', duration=1, size='64x48', rate=10)
    (tmp_path / 'huge.srt').write_text('1\n00:00:00,000 --> 00:00:01,000\n' + 'x' * (11 << 20) + '\n')
    assert subtitle_cues(huge, 'id') == []


def test_a_damaged_video_mean_is_computed_again_from_the_keyframes(capsys, tmp_path, workspace, tiny_checkpoint):
    import json

    videos = [make_video(tmp_path / f'v{i}.mp4', duration=2, size='64x48', rate=10, source=source)
              for i, source in enumerate(['testsrc2', 'smptebars'])]
    common = ('--workspace', workspace, '--model', tiny_checkpoint)
    assert cli(capsys, 'index', *videos, *common, '--asr', 'off')[0] == 0
    search = ('search', '--image', tmp_path / 'frame.png', '--by', 'video', '--json', *common)
    from PIL import Image
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / 'frame.png')
    before = json.loads(cli(capsys, *search)[1])

    db = sqlite3.connect(workspace / 'catalog.sqlite')
    video_id, blob = db.execute('SELECT id, mean FROM videos ORDER BY first_label LIMIT 1').fetchone()
    flipped = bytearray(blob)
    flipped[3] ^= 0x40
    db.execute('UPDATE videos SET mean = ? WHERE id = ?', (bytes(flipped), video_id))
    db.commit()
    db.close()
    code, out, err = cli(capsys, *search)
    assert code == 0 and 'Traceback' not in err
    after = json.loads(out)
    assert [(r['video_id'], round(r['score'], 4)) for r in after] == [(r['video_id'], round(r['score'], 4)) for r in before]


def _archive(tiny_checkpoint, path):
    import torch
    from clip.model import build_model

    model = build_model(torch.load(tiny_checkpoint)).float().eval()
    torch.jit.trace(model, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long))).save(path)
    return path


def test_a_torchscript_archive_given_as_model_is_read_without_running_it(tiny_checkpoint, tmp_path, monkeypatch):
    import torch

    from executors.models.clip_encoding import encode_texts
    from executors.models.clip_model import load_checkpoint

    archive = _archive(tiny_checkpoint, tmp_path / 'tiny-jit.pt')

    def refuse(*args, **kwargs):
        raise AssertionError('torch.jit.load runs the archive')

    monkeypatch.setattr(torch.jit, 'load', refuse)
    texts = ['a red car', 'two people walking a dog']
    np.testing.assert_allclose(encode_texts(load_checkpoint(str(archive), 'cpu'), texts),
                               encode_texts(load_checkpoint(str(tiny_checkpoint), 'cpu'), texts), atol=1e-6)


def test_an_archive_that_would_run_code_when_unpickled_is_refused(tiny_checkpoint, tmp_path):
    import os
    import pickle
    import zipfile

    from executors.errors import ModelError
    from executors.models.clip_model import load_checkpoint

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {tmp_path / "ran"}',)

    archive = _archive(tiny_checkpoint, tmp_path / 'tiny-jit.pt')
    hostile = tmp_path / 'hostile.pt'
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(hostile, 'w') as out:
        for item in source.infolist():
            data = pickle.dumps(Payload()) if item.filename.endswith('/data.pkl') else source.read(item)
            out.writestr(item, data)
    with pytest.raises(ModelError, match='hostile.pt is not a CLIP checkpoint VCED can load safely'):
        load_checkpoint(str(hostile), 'cpu')
    assert not (tmp_path / 'ran').exists()


def test_a_folder_that_cannot_be_read_is_a_failed_line_and_the_rest_is_indexed(capsys, tmp_path, workspace,
                                                                               tiny_checkpoint, monkeypatch):
    import os

    folder = tmp_path / 'videos'
    make_video(folder / 'good.mp4', duration=2, size='64x48', rate=10)
    make_video(folder / 'locked' / 'hidden.mp4', duration=2, size='64x48', rate=10)
    (folder / 'locked').chmod(0)
    if os.geteuid() == 0:  # root reads a mode-000 folder anyway: refuse it as the kernel would for a user
        scandir = os.scandir

        def as_a_user(path='.'):
            if isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith('locked'):
                raise PermissionError(13, 'Permission denied', os.fspath(path))
            return scandir(path)
        monkeypatch.setattr(os, 'scandir', as_a_user)
    try:
        code, out, err = cli(capsys, 'index', folder, '--workspace', workspace, '--model', tiny_checkpoint,
                             '--asr', 'off')
    finally:
        (folder / 'locked').chmod(0o755)
    assert code == 1 and '1 indexed' in out and 'Traceback' not in err
    assert err.strip() == 'failed: locked: cannot read it (Permission denied)', err


def test_a_late_starting_clip_lasts_its_real_span_and_far_apart_keyframes_make_short_moments(
        capsys, tmp_path, workspace, tiny_checkpoint):
    import json

    late = make_video(tmp_path / 'late.mp4', duration=5, size='64x48', rate=10, extra_args=('-output_ts_offset', '100000'))
    sparse = make_video(tmp_path / 'sparse.mkv', duration=36001, size='64x48', rate=1,  # frames at 0 s, 5 h, 10 h
                        extra_args=('-vf', 'setpts=N*18000/TB', '-fps_mode', 'passthrough'))
    common = ('--workspace', workspace, '--model', tiny_checkpoint)
    assert cli(capsys, 'index', late, sparse, *common, '--asr', 'off')[0] == 0
    code, out, _ = cli(capsys, 'list', '--json', '--workspace', workspace)
    durations = {Path(v['video']).name: v['duration'] for v in json.loads(out)}
    assert durations['late.mp4'] == pytest.approx(5, abs=0.2)  # was 100005 s, listed as 27:46:45
    assert durations['sparse.mkv'] == pytest.approx(36001, abs=1)
    code, out, _ = cli(capsys, 'search', 'a test pattern', '--json', '--top', '20', '--in', 'visual', *common)
    results = json.loads(out)
    assert results and all(r['end'] - r['start'] <= 30 for r in results)  # flow.yml's max_segment


def test_a_deleted_or_swapped_thumbnail_is_never_served_and_indexing_again_draws_it_anew(capsys, tmp_path, workspace,
                                                                                       tiny_checkpoint):
    import json

    from PIL import Image

    videos = [make_video(tmp_path / f'{source}.mp4', duration=4, size='128x96', rate=10, source=source)
              for source in ('smptebars', 'testsrc2')]
    common = ('--workspace', workspace, '--model', tiny_checkpoint)
    assert cli(capsys, 'index', *videos, *common, '--asr', 'off')[0] == 0

    def thumbnails():
        code, out, _ = cli(capsys, 'search', 'a test card', '--json', '--top', '50', '--in', 'visual', *common)
        return [r['thumbnail'] for r in json.loads(out)]

    first = thumbnails()
    assert len(first) >= 2 and all(Path(t).is_file() for t in first)
    gone, swapped = Path(first[0]), Path(first[1])
    other = next(p for p in sorted(swapped.parent.glob('*.jpg')) if p != swapped)
    gone.unlink()
    swapped.write_bytes(other.read_bytes())  # another keyframe's picture, a valid JPEG
    served = thumbnails()
    assert served[0] == served[1] == '' and all(Path(t).is_file() for t in served[2:]), served

    code, out, _ = cli(capsys, 'index', *videos, *common, '--asr', 'off')
    assert code == 0 and '2 already indexed' in out
    assert thumbnails() == first  # both are drawn again where they were
    with Image.open(gone) as redrawn, Image.open(other) as stored:
        assert redrawn.size == stored.size


def test_a_cue_whose_text_was_damaged_on_disk_is_left_out_not_shown_garbled(capsys, caplog, tmp_path, workspace,
                                                                           tiny_checkpoint):
    import json

    video = make_video(tmp_path / 'fox.mp4', duration=3, size='64x48', rate=10)
    (tmp_path / 'fox.srt').write_text('1\n00:00:00,500 --> 00:00:02,000\nover the lazy dog\n\n'
                                      '2\n00:00:02,000 --> 00:00:02,900\nthe lazy cat sleeps\n')
    common = ('--workspace', workspace, '--model', tiny_checkpoint)
    assert cli(capsys, 'index', video, *common, '--asr', 'off')[0] == 0
    with sqlite3.connect(workspace / 'catalog.sqlite') as db:  # a flipped byte, as a failing disk leaves it
        db.execute("UPDATE cues SET text = 'over the mazy dog' WHERE text = 'over the lazy dog'")
    code, out, err = cli(capsys, 'search', 'lazy', '--json', '--in', 'speech', *common)
    assert code == 0 and [r['text'] for r in json.loads(out)] == ['the lazy cat sleeps']
    assert any('fail their checksum' in r.getMessage() for r in caplog.records)
    code, out, _ = cli(capsys, 'transcript', video, '--workspace', workspace)
    assert 'mazy' not in out and 'the lazy cat sleeps' in out
