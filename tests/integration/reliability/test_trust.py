"""Paths that used to lose a library or return wrong results: each reproduced, each now refused or repaired.

Every file of a workspace is verified before it is trusted; derived files are rebuilt from the source of
truth (the float16 rows), which no reader and no writer that failed verification ever shrinks.
"""
import json
import logging
import os
import shutil
import sqlite3
import struct
import zlib

import numpy as np
import pytest

from executors.storage.ann.base import INDEX_FILES, INDEX_KINDS
from executors.documents import DocList, QueryDoc, VideoDoc
from executors.indexer import Indexer
from flow import main
from tests.factories import write_random_clip_checkpoint
from tests.integration.reliability.checks import check_consistent

TRANSIENT = {'lock', 'catalog.sqlite-wal', 'catalog.sqlite-shm'}


def model_for(argv: list, checkpoint) -> tuple:
    """--model for the commands that take it (index and search)."""
    return ('--model', checkpoint) if argv[0] in ('index', 'search') else ()


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in TRANSIENT}


def best(folder, embeddings, kind='ivf') -> list[str]:
    indexer = Indexer(workspace=str(folder), index=kind)
    try:
        queries = DocList[QueryDoc]([QueryDoc(embedding=e) for e in embeddings])
        return [q.matches[0].video_id for q in indexer.search(queries, parameters={'top': 1})]
    finally:
        indexer.close()


@pytest.mark.parametrize('how', ['zero bytes', 'an empty database', 'tables dropped'])
@pytest.mark.parametrize('command', [['list'], ['index', '{video}']])
def test_an_emptied_catalog_next_to_stored_embeddings_is_an_error_that_touches_nothing(
        capsys, library, batch, tiny_checkpoint, how, command):
    catalog = library / 'catalog.sqlite'
    for extra in ('catalog.sqlite-wal', 'catalog.sqlite-shm'):
        (library / extra).unlink(missing_ok=True)
    if how == 'zero bytes':
        catalog.write_bytes(b'')
    elif how == 'an empty database':
        catalog.unlink()
        sqlite3.connect(catalog).execute('CREATE TABLE unrelated (x)').connection.close()
    else:
        db = sqlite3.connect(catalog)
        for table in ('frames', 'shots', 'videos'):
            db.execute(f'DROP TABLE {table}')
        db.commit()
        db.close()
    saved = files(library)
    thumbnails = sorted(p.name for p in (library / 'thumbnails').iterdir())
    argv = [a.format(video=batch / 'clip0.mp4') for a in command]
    code, out, err = cli(capsys, *argv, '--workspace', library, *model_for(argv, tiny_checkpoint))
    assert code == 1 and err.count('\n') == 1 and str(catalog) in err and 'backup' in err, err
    assert files(library) == saved  # embeddings.f16 not truncated, the graph not rebuilt
    assert sorted(p.name for p in (library / 'thumbnails').iterdir()) == thumbnails


@pytest.mark.parametrize('kind', INDEX_KINDS)
def test_an_index_garbled_in_the_middle_at_the_same_size_is_rebuilt(library, reference, caplog, kind):
    queries = [v.embeddings[-1] for v in reference.videos.values()]
    before = best(library, queries, kind)  # (hnsw: builds and saves the graph)
    saved = library / INDEX_FILES[kind]
    data = bytearray(saved.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = np.random.default_rng(3).bytes(64)  # link ids, vectors, codes or labels
    saved.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert best(library, queries, kind) == before
    assert f'{INDEX_FILES[kind]} is damaged' in caplog.text and 'rebuilding' in caplog.text
    check_consistent(library, reference, strict=True)


@pytest.mark.parametrize('kind', INDEX_KINDS)
def test_a_restored_older_catalog_finds_every_video_it_lists(library, reference, tmp_path, kind):
    shutil.copyfile(library / 'catalog.sqlite', tmp_path / 'backup.sqlite')  # a backup, taken while closed
    ids = list(reference.videos)
    indexer = Indexer(workspace=str(library), index=kind)
    indexer.delete(DocList[VideoDoc]([VideoDoc(video_id=ids[0])]))
    indexer.close()  # saves an index from which ids[0] is removed
    shutil.copyfile(tmp_path / 'backup.sqlite', library / 'catalog.sqlite')  # the user restores the backup
    for extra in ('catalog.sqlite-wal', 'catalog.sqlite-shm'):
        (library / extra).unlink(missing_ok=True)
    assert best(library, [v.embeddings[0] for v in reference.videos.values()], kind) == ids  # ids[0] too


def test_damaged_embedding_rows_are_a_clear_error_not_a_silent_miss(library, reference):
    ids = list(reference.videos)
    rows = library / 'embeddings.f16'
    data = bytearray(rows.read_bytes())
    dim = reference.videos[ids[0]].embeddings.shape[1]
    data[8:8 + 2 * dim] = np.full(dim, 7.0, np.float16).tobytes()  # within the first video's first row
    rows.write_bytes(bytes(data))
    (library / 'ivf.faiss').unlink()  # the default index: rebuilt from the rows, which are verified first
    indexer = Indexer(workspace=str(library))
    try:
        query = DocList[QueryDoc]([QueryDoc(embedding=reference.videos[ids[0]].embeddings[1])])
        with pytest.raises(Exception, match=r'embeddings.f16: rows 0\.\.1 \(.*clip0.mp4\) are damaged'):
            indexer.search(query, parameters={'top': 3})
    finally:
        indexer.close()


def test_reading_ahead_changes_no_result_and_leaves_damaged_rows_to_report_at_first_use(library, reference):
    """The page's warm-up verifies every video's rows and reads all keyframe times; a damaged video
    does not stop it, and is still named when a search first needs it."""
    ids = list(reference.videos)

    def searched(warm: bool):
        indexer = Indexer(workspace=str(library))
        try:
            if warm:
                indexer.warm(DocList[VideoDoc]())
                assert len(indexer.storage._verified) == len(ids) and indexer.storage._times
            queries = DocList[QueryDoc]([QueryDoc(embedding=reference.videos[i].embeddings[1]) for i in ids])
            return [[(m.video_id, m.start, m.end, m.score) for m in q.matches]
                    for q in indexer.search(queries, parameters={'top': 3})]
        finally:
            indexer.close()

    assert searched(warm=True) == searched(warm=False)
    rows = library / 'embeddings.f16'
    data = bytearray(rows.read_bytes())
    dim = reference.videos[ids[0]].embeddings.shape[1]
    data[8:8 + 2 * dim] = np.full(dim, 7.0, np.float16).tobytes()  # within the first video's first row
    rows.write_bytes(bytes(data))
    indexer = Indexer(workspace=str(library))
    try:
        indexer.warm(DocList[VideoDoc]())
        assert len(indexer.storage._verified) == len(ids) - 1
        damaged = DocList[QueryDoc]([QueryDoc(embedding=reference.videos[ids[0]].embeddings[1])])
        with pytest.raises(Exception, match=r'embeddings.f16: rows 0\.\.1 \(.*clip0.mp4\) are damaged'):
            indexer.search(damaged, parameters={'top': 3})
    finally:
        indexer.close()
    (library / 'ivf.faiss').unlink()  # now the index must be rebuilt from rows that fail their check
    indexer = Indexer(workspace=str(library))
    try:
        indexer.warm(DocList[VideoDoc]())  # the page still starts; the first search names the damage
        with pytest.raises(Exception, match=r'embeddings.f16: rows 0\.\.1 \(.*clip0.mp4\) are damaged'):
            indexer.search(damaged, parameters={'top': 3})
    finally:
        indexer.close()


def test_another_checkpoint_of_the_same_width_is_refused_for_search_and_index(capsys, workspace, tiny_checkpoint, batch,
                                                                              tmp_path):
    from executors.models.clip_model import image_space_id

    library = workspace
    code, out, err = cli(capsys, 'index', batch / 'clip0.mp4', '--workspace', library, '--model', tiny_checkpoint)
    assert code == 0, err  # the workspace records the tiny checkpoint's identity
    other = write_random_clip_checkpoint(tmp_path / 'other-tiny.pt', seed=5)  # the same width, other weights
    saved = files(library)
    code, out, err = cli(capsys, 'search', 'a red square', '--workspace', library, '--model', other)
    assert code == 1 and err.count('\n') == 1, err
    assert image_space_id(str(tiny_checkpoint))[:12] in err and image_space_id(str(other))[:12] in err
    code, out, err = cli(capsys, 'index', batch / 'clip5.mp4', batch / 'clip4.mp4', '--workspace', library,
                         '--model', other)
    assert code == 1 and 'holds vectors of' in err and files(library).keys() == saved.keys()
    assert files(library)['embeddings.f16'] == saved['embeddings.f16']


def test_search_json_is_strict_and_scores_are_finite(capsys, library, tiny_checkpoint):
    code, out, err = cli(capsys, 'search', 'a red square', '--json', '--workspace', library, '--model', tiny_checkpoint)
    assert code == 0, err
    results = json.loads(out, parse_constant=lambda name: pytest.fail(f'{name} in JSON'))
    assert results and all(-1.0 <= r['score'] <= 1.0 for r in results)


def test_non_finite_embeddings_are_refused_not_stored(library, reference):
    video = reference.docs([next(iter(reference.videos))], library)[0]
    video.video_id = 'f' * 64
    video.frames[0].embedding = np.full_like(video.frames[0].embedding, np.nan)
    indexer = Indexer(workspace=str(library))
    try:
        assert [d.status for d in indexer.index(DocList[type(video)]([video]))] == ['failed']
        assert 'not finite' in video.error
        with pytest.raises(Exception, match='not finite'):
            indexer.search(DocList[QueryDoc]([QueryDoc(embedding=np.full(32, np.inf, np.float32))]), parameters={})
    finally:
        indexer.close()


def test_a_file_name_that_is_not_utf8_is_indexed_listed_and_printed(capsys, batch, workspace, tiny_checkpoint, tmp_path):
    folder = tmp_path / 'odd'
    folder.mkdir()
    odd = os.path.join(os.fsencode(folder), b'caf\xe9 clip.mp4')
    shutil.copyfile(batch / 'clip1.mp4', odd)
    shutil.copyfile(batch / 'clip2.mp4', folder / 'plain.mp4')
    code, out, err = cli(capsys, 'index', folder, '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0 and '2 indexed' in out, err
    assert 'caf\\xe9 clip.mp4' in out
    code, out, err = cli(capsys, 'list', '--json', '--workspace', workspace)
    names = sorted(os.path.basename(v['video']) for v in json.loads(out))
    assert names == ['caf\\xe9 clip.mp4', 'plain.mp4']
    code, out, err = cli(capsys, 'search', 'a clip', '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0 and 'caf\\xe9' in out


def _png(width: int, height: int, body: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + body


def test_a_truncated_png_declaring_a_huge_picture_is_refused_in_one_line(capsys, library, tiny_checkpoint, tmp_path):
    bomb = tmp_path / 'bomb.png'
    bomb.write_bytes(_png(12000, 12000, b'\x00\x00\x00\x40IDAT' + zlib.compress(b'\x00' * 4000)[:60]))
    assert len(bomb.read_bytes()) < 130
    code, out, err = cli(capsys, 'search', '--image', bomb, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and err.count('\n') == 1 and 'bomb.png' in err, err
    truncated = tmp_path / 'truncated.png'
    small = _png(64, 64, b'\x00\x00\x10\x00IDAT' + zlib.compress(b'\x00' * (64 * 193))[:40])
    truncated.write_bytes(small)
    code, out, err = cli(capsys, 'search', '--image', truncated, '--workspace', library, '--model', tiny_checkpoint)
    assert code == 1 and err.count('\n') == 1 and 'not a readable image' in err, err
