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
