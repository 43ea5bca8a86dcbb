"""Searches while another process indexes see the last committed state; writers take turns, and one that
never gets its turn is refused clearly."""
import json
import sqlite3
from pathlib import Path

import pytest

from executors.documents import DocList, QueryDoc
from executors.indexer import Indexer
from executors.text_encoder import TextEncoder
from library import Library
from library.pipeline import Flow

ROOT = Path(__file__).resolve().parents[3]
QUERY = 'a colourful test pattern'


def committed(workspace: Path) -> int:
    if not (workspace / 'catalog.sqlite').exists():
        return 0
    db = sqlite3.connect(f'file:{workspace / "catalog.sqlite"}?mode=ro', uri=True)
    try:
        return db.execute('SELECT count(*) FROM videos').fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not created yet
        return 0
    finally:
        db.close()


def stored_state(workspace: Path) -> tuple:
    """The catalog's rows, the embeddings and the stored videos' thumbnails (not SQLite's page layout)."""
    db = sqlite3.connect(f'file:{workspace / "catalog.sqlite"}?mode=ro', uri=True)
    rows = list(db.iterdump())
    ids = [r[0] for r in db.execute('SELECT id FROM videos')]
    db.close()
    thumbnails = {str(p): p.read_bytes() for i in ids for p in sorted((workspace / 'thumbnails' / i).iterdir())}
    return rows, (workspace / 'embeddings.f16').read_bytes(), thumbnails


def among(found: list[tuple], answers: list[list[tuple]]) -> bool:
    """Whether `found` is one of `answers`: the same moments in the same order, scores within float noise
    (the CLI's process and this one may sum in another order)."""
    return any(len(found) == len(a) and all(f[:3] == e[:3] and abs(f[3] - e[3]) <= 2e-3 for f, e in zip(found, a))
               for a in answers)


def results(matches) -> list[tuple]:
    return [(m['video_id'], round(m['start'], 3), round(m['end'], 3), round(m['score'], 3)) for m in matches]


@pytest.fixture(scope='module')
def expected(reference, tiny_checkpoint, tmp_path_factory) -> list[list[tuple]]:
    """The answer to QUERY once the first k videos of the batch are committed, for every k."""
    embedding = TextEncoder(model=str(tiny_checkpoint)).encode_queries(DocList[QueryDoc]([QueryDoc(text=QUERY)]))[0].embedding
    answers = []
    for k in range(len(reference.videos) + 1):
        folder = tmp_path_factory.mktemp(f'prefix{k}')
        indexer = Indexer(workspace=str(folder))
        indexer.index(reference.docs(list(reference.videos)[:k], folder))
        matches = indexer.search(DocList[QueryDoc]([QueryDoc(embedding=embedding)]), parameters={'top': 5})[0].matches
        answers.append(results([m.model_dump() for m in matches]))
        indexer.close()
    return answers


def test_searches_during_an_index_answer_from_the_last_committed_state(cli, second_cli, batch, expected, workspace,
                                                                       tiny_checkpoint):
    options = ('--workspace', workspace, '--model', tiny_checkpoint)
    cli.start('index', batch, *options)
    seen = []
    with Library(ROOT / 'flow.yml', workspace=str(workspace), model=str(tiny_checkpoint)) as library:
        while True:
            running = cli.pid is not None and Path(f'/proc/{cli.pid}').exists()
            before = committed(workspace)
            found = results([m.model_dump() for m in library.search(text=QUERY, top=5)])
            after = committed(workspace)
            assert among(found, expected[before:after + 1]), (before, after)  # never a half-added video
            seen.append(('flow', before))
            before = committed(workspace)
            code, out, err = second_cli.run('search', QUERY, '--top', '5', '--json', *options)
            after = committed(workspace)
            assert code == 0, err
            assert among(results(json.loads(out)), expected[before:after + 1]), (before, after)
            seen.append(('cli', before))
            if not running:
                break
    code, out, err = cli.wait()
    assert code == 0, err
    assert seen[-1][1] == len(expected) - 1  # the last searches saw the whole batch
    print(f'\nsearches while indexing (kind, committed videos): {seen}')


def test_a_workspace_opened_while_another_process_commits_sees_one_state(monkeypatch, reference, workspace):
    from executors.storage.local.catalog import Catalog
    from executors.storage.local.local_storage import HnswlibStorage

    first, second = list(reference.videos)[:2]
    writer = Indexer(workspace=str(workspace))
    writer.index(reference.docs([first], workspace))
    read_videos = Catalog.videos

    def videos_then_a_commit_elsewhere(catalog):
        rows = read_videos(catalog)
        if not committed_meanwhile:
            committed_meanwhile.append(second)
            writer.index(reference.docs([second], workspace))  # lands before the reader counts keyframe rows
        return rows

    committed_meanwhile = []
    monkeypatch.setattr(Catalog, 'videos', videos_then_a_commit_elsewhere)
    reader = HnswlibStorage(workspace)
    try:
        assert committed_meanwhile and [v.id for v in reader.videos()] == [first, second]
    finally:
        reader.close()
        writer.close()


def test_a_writer_that_never_gets_its_turn_gets_a_clear_workspace_is_locked_error(
        capsys, cli, reference, batch, workspace, tiny_checkpoint, tmp_path):
    from executors.storage.local.lock import WriteLock

    writer = Indexer(workspace=str(workspace))
    writer.index(reference.docs(list(reference.videos)[:2], workspace))
    writer.close()
    before = stored_state(workspace)
    extra = tmp_path / 'extra'
    extra.mkdir()
    (extra / 'clip5.mp4').write_bytes((batch / 'clip5.mp4').read_bytes())
    impatient = tmp_path / 'flow.yml'  # waits half a second for the other writer instead of a minute
    impatient.write_text((ROOT / 'flow.yml').read_text().replace('lock_wait: 60.0', 'lock_wait: 0.5'))
    assert 'lock_wait: 0.5' in impatient.read_text()
    held = WriteLock(workspace, wait=0)
    held.acquire()  # another process in the middle of a write that never ends
    try:
        code, out, err = cli.run('index', extra, '--flow', impatient, '--workspace', workspace, '--model', tiny_checkpoint)
        assert code == 1
        assert err.count('\n') == 1 and err.startswith('failed: ') and 'workspace is locked' in err, err
        assert '0 indexed, 0 already indexed, 1 failed' in out
        assert stored_state(workspace) == before
        with Flow(ROOT / 'flow.yml', workspace=str(workspace), model=str(tiny_checkpoint)) as flow:
            assert len(flow.post('/list')) == 2  # readers are welcome meanwhile
    finally:
        held.release()
    code, out, err = cli.run('index', extra, '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0 and '1 indexed' in out, err


def test_two_index_runs_over_the_same_files_store_each_video_once_with_its_thumbnails(cli, second_cli, batch,
                                                                                       reference, tmp_path,
                                                                                       tiny_checkpoint):
    from tests.integration.reliability.checks import check_consistent

    workspace = tmp_path / 'shared'
    options = ('--workspace', workspace, '--model', tiny_checkpoint)
    cli.start('index', batch, *options)
    code, out, err = second_cli.run('index', batch, *options)  # decodes what the first commits meanwhile
    first_code, first_out, first_err = cli.wait()
    assert (code, first_code) == (0, 0), (err, first_err)
    assert 'Traceback' not in err + first_err
    assert Path(workspace / 'thumbnails').is_dir()
    check_consistent(workspace, reference, strict=True)  # every video once, each with all its thumbnails
    code, out, _ = cli.run('index', batch, *options)
    assert f'0 indexed, {len(reference.videos)} already indexed, 0 failed' in out
