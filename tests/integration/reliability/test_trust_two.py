"""Trust, round two: hostile files fail alone, a restored backup never shrinks the library, workspaces are
created whole, and what is read back is what was stored."""
import sqlite3

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
