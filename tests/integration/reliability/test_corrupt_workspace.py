"""A damaged workspace: a truncated index is rebuilt from the stored embeddings; a damaged or missing
catalog is a clear error that names the file and how to recover, never an empty library."""
import logging
import shutil

import numpy as np
import pytest

from executors.storage.ann.base import INDEX_FILES, INDEX_KINDS
from executors.documents import DocList, QueryDoc
from executors.indexer import Indexer
from flow import main
from tests.integration.reliability.checks import check_consistent

TRANSIENT = {'lock', 'catalog.sqlite-wal', 'catalog.sqlite-shm'}  # the lock and SQLite's own working files


def hits(folder, reference, kind='ivf') -> list[list[tuple]]:
    indexer = Indexer(workspace=str(folder), index=kind)
    try:
        queries = DocList[QueryDoc]([QueryDoc(embedding=v.embeddings[-1]) for v in reference.videos.values()])
        return [[(m.video_id, m.start, m.end, round(m.score, 5)) for m in q.matches]
                for q in indexer.search(queries, parameters={'top': 5})]
    finally:
        indexer.close()


@pytest.mark.parametrize('kind', INDEX_KINDS)
@pytest.mark.parametrize('keep', [0, 0.5, 0.99])
def test_a_truncated_index_is_rebuilt_from_the_stored_embeddings_with_a_message(library, reference, caplog, keep,
                                                                                 kind):
    before = hits(library, reference, kind)  # (hnsw: builds and saves the graph)
    saved = library / INDEX_FILES[kind]
    saved.write_bytes(saved.read_bytes()[:int(saved.stat().st_size * keep)])
    with caplog.at_level(logging.WARNING):
        assert hits(library, reference, kind) == before
    assert INDEX_FILES[kind] in caplog.text and 'rebuilding it from 12 stored embeddings' in caplog.text
    check_consistent(library, reference, strict=True)


def model_for(argv: list, checkpoint) -> tuple:
    """--model for the commands that take it (index and search)."""
    return ('--model', checkpoint) if argv[0] in ('index', 'search') else ()


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def damage(folder, how):
    catalog = folder / 'catalog.sqlite'
    if how == 'missing':
        catalog.unlink()
    elif how == 'garbage':
        catalog.write_bytes(np.random.default_rng(0).bytes(catalog.stat().st_size))
    elif how == 'truncated':
        catalog.write_bytes(catalog.read_bytes()[:catalog.stat().st_size // 3])
    elif how == 'header only':
        catalog.write_bytes(catalog.read_bytes()[:100])
    else:  # the tables' pages overwritten, the header and schema intact: SQLite notices only mid-query
        data = catalog.read_bytes()
        catalog.write_bytes(data[:4096] + np.random.default_rng(1).bytes(len(data) - 4096))


@pytest.mark.parametrize('how', ['missing', 'garbage', 'truncated', 'header only', 'damaged tables'])
@pytest.mark.parametrize('command', [['list'], ['search', 'a red square'], ['index', '{video}'],
                                     ['delete', '{video}']])
def test_a_missing_or_damaged_catalog_is_a_clear_error_that_names_it_and_loses_nothing(
        capsys, library, reference, tiny_checkpoint, batch, how, command):
    damage(library, how)
    saved = {p.name: p.read_bytes() for p in library.iterdir() if p.is_file() and p.name not in TRANSIENT}
    thumbnails = sorted(p.name for p in (library / 'thumbnails').iterdir())
    argv = [a.format(video=batch / 'clip0.mp4') for a in command]
    code, out, err = cli(capsys, *argv, '--workspace', library, *model_for(argv, tiny_checkpoint))
    assert code == 1 and out == ''
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert str(library / 'catalog.sqlite') in err
    assert 'backup' in err and 'index' in err  # how to recover
    after = {p.name: p.read_bytes() for p in library.iterdir() if p.is_file() and p.name not in TRANSIENT}
    assert after == saved  # nothing rewritten, nothing created
    assert sorted(p.name for p in (library / 'thumbnails').iterdir()) == thumbnails


def test_a_missing_workspace_is_named_not_started(capsys, workspace, tiny_checkpoint):
    code, out, err = cli(capsys, 'list', '--workspace', workspace)
    assert code == 1 and out == '' and err.count('\n') == 1 and f'{workspace}: no library here yet' in err
    assert not workspace.exists()  # reading never creates one


def test_missing_embeddings_are_an_error_not_an_empty_result(capsys, library, reference, tiny_checkpoint):
    (library / 'embeddings.f16').unlink()
    (library / 'ivf.faiss').unlink()
    code, out, err = cli(capsys, 'search', 'a red square', '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and err.count('\n') == 1 and 'embeddings.f16' in err
    shutil.rmtree(library)
