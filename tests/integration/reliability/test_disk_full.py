"""A full disk: every failed write is one line naming the file and the cause, after the summary of what was
done; nothing committed is lost, and once there is room again the same command finishes the batch.

The workspace lives on a small tmpfs (mounting needs root, as in CI); a filler file leaves only a few
kilobytes free, so the failing write lands on thumbnails, embeddings, the catalog or the graph.
"""
import os
import re
import shutil
import subprocess

import pytest

from flow import main
from tests.integration.reliability.checks import check_consistent

FREE_BYTES = [2_000, 12_000, 40_000, 90_000, 200_000]  # where the space runs out differs with each


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / 'disk'
    mount.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)], capture_output=True)
    if result.returncode != 0:
        if os.environ.get('CI') == 'true':
            pytest.fail(f'cannot mount a tmpfs for the disk-full tests: {result.stderr.decode().strip()}')
        pytest.skip('mounting a tmpfs needs root')
    yield mount
    subprocess.run(['umount', '-l', str(mount)], check=False)


def fill(folder, leave: int) -> None:
    """Write a filler file so that only about `leave` bytes stay free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / 'filler', 'wb') as f:
        f.write(b'\0' * max(0, free - leave))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize('free', FREE_BYTES)
def test_a_full_disk_is_one_line_per_failure_after_the_summary_and_loses_nothing(capsys, small_disk, batch, reference,
                                                                                  tiny_checkpoint, free):
    workspace = small_disk / 'workspace'
    command = ('index', batch, '--workspace', workspace, '--model', tiny_checkpoint)
    first = sorted(batch.iterdir())[:2]
    code, out, err = run(capsys, 'index', *first, *command[2:])
    assert code == 0, err
    fill(small_disk, free)

    code, out, err = run(capsys, *command)
    assert 'Traceback' not in err
    assert all(line.startswith(('failed: ', 'error: ')) for line in err.splitlines()), err
    assert re.search(r'\d+ indexed, \d+ already indexed, \d+ failed', out), out
    failed = int(re.search(r'(\d+) failed', out).group(1))
    assert failed and 'disk is full' in err, (out, err)  # 6 videos of 2 keyframes never fit in 200 KB
    assert run(capsys, 'list', '--workspace', workspace)[0] == 0  # a healthy catalog reads

    (small_disk / 'filler').unlink()
    check_consistent(workspace, reference, strict=False)
    code, out, err = run(capsys, *command)
    assert code == 0, err
    indexed, already, failed = map(int, re.search(r'(\d+) indexed, (\d+) already indexed, (\d+) failed', out).groups())
    assert (indexed + already, failed) == (len(reference.videos), 0)
    check_consistent(workspace, reference, strict=indexed > 0)
    shutil.rmtree(workspace)


@pytest.mark.parametrize('free', [3_000, 30_000, 150_000])
def test_a_workspace_first_created_on_a_full_disk_is_whole_or_repaired_once_there_is_room(
        capsys, small_disk, batch, reference, tiny_checkpoint, free):
    workspace = small_disk / 'workspace'
    command = ('index', batch, '--workspace', workspace, '--model', tiny_checkpoint)
    fill(small_disk, free)
    code, out, err = run(capsys, *command)
    assert 'Traceback' not in err and 'I/O operation' not in err
    assert all(line.startswith(('failed: ', 'error: ')) for line in err.splitlines()), err

    (small_disk / 'filler').unlink()
    code, out, err = run(capsys, *command)
    assert code == 0, err
    code, out, err = run(capsys, 'search', 'anything at all', '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0 and 'Traceback' not in err, err
    check_consistent(workspace, reference, strict=False)


def test_embeddings_the_disk_refuses_leave_the_rows_as_they_were_and_the_next_add_works(small_disk):
    import numpy as np

    from executors.errors import WorkspaceError
    from executors.storage.local.vector_store import VectorStore

    store = VectorStore(small_disk, 512)
    store.append(np.ones((4, 512), dtype=np.float32))
    fill(small_disk, 1_000)
    with pytest.raises(WorkspaceError, match='embeddings.f16: cannot store the embeddings: the disk is full'):
        store.append(np.ones((3, 512), dtype=np.float32))  # under one buffer: the write is refused at the flush
    assert store.row_count() == 4 and not store.adding_path.exists()
    (small_disk / 'filler').unlink()
    assert store.append(np.full((2, 512), 2, dtype=np.float32))[0] == 4
    assert store.row_count() == 6 and store.read(4, 2)[0, 0] == 2
    store.close()
