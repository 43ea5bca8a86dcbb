"""What a consistent workspace looks like, checked from the outside (files, SQLite) and through the Indexer."""
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from executors.documents import DocList, FrameDoc, QueryDoc, VideoDoc
from executors.indexer import Indexer
from executors.media.thumbnails import staging_folder

WORKSPACE_FILES = {'catalog.sqlite', 'catalog.sqlite-wal', 'catalog.sqlite-shm', 'embeddings.f16', 'ivf.faiss', 'ivf.json',
                   'hnsw.bin', 'hnsw.json', 'lock', 'thumbnails'}
LEFT_BY_A_CRASH = {'ivf.tmp', 'ivf.json.tmp', 'hnsw.tmp', 'hnsw.json.tmp',  # readers ignore them; the next writer
                   'adding.json'}  # removes them (adding.json: which rows an interrupted add was writing)


@dataclass
class StoredVideo:
    path: str
    duration: float
    timestamps: np.ndarray
    thumbnails: list[str]  # file names
    shots: list[float]
    embeddings: np.ndarray  # float32 of the float16 rows on disk


@dataclass
class Reference:
    videos: dict[str, StoredVideo]  # by video_id, in the order they were indexed
    folder: Path | None = None

    def docs(self, video_ids, folder: Path) -> DocList[VideoDoc]:
        """VideoDocs as the encoder hands them to the Indexer, thumbnails written under `folder`."""
        docs = DocList[VideoDoc]()
        for video_id in video_ids:
            v = self.videos[video_id]
            thumbs = staging_folder(folder, video_id)  # where the loader leaves them for the storage
            frames = []
            for t, name, e in zip(v.timestamps, v.thumbnails, v.embeddings):
                shutil.copyfile(self.folder / 'thumbnails' / video_id / name, thumbs / name)
                frames.append(FrameDoc(video_id=video_id, timestamp=float(t), thumbnail=str(thumbs / name), embedding=e))
            docs.append(VideoDoc(uri=v.path, video_id=video_id, duration=v.duration, fps=10.0, width=64, height=48,
                                 shots=v.shots, frames=DocList[FrameDoc](frames)))
        return docs


def read_reference(folder: Path) -> Reference:
    db = sqlite3.connect(f'file:{folder / "catalog.sqlite"}?mode=ro', uri=True)
    dim = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0]
    rows = np.fromfile(folder / 'embeddings.f16', dtype=np.float16).reshape(-1, dim).astype(np.float32)
    videos = {}
    for video_id, path, duration, first, count in db.execute(
            'SELECT id, path, duration, first_label, frame_count FROM videos ORDER BY first_label'):
        frames = db.execute('SELECT timestamp, thumbnail FROM frames WHERE video = ? ORDER BY label', (video_id,)).fetchall()
        shots = [r[0] for r in db.execute('SELECT time FROM shots WHERE video = ? ORDER BY time', (video_id,))]
        videos[video_id] = StoredVideo(path, duration, np.array([f[0] for f in frames]), [Path(f[1]).name for f in frames],
                                       shots, rows[first:first + count])
    db.close()
    return Reference(videos, folder)


def check_consistent(folder: Path, reference: Reference, strict: bool) -> dict:
    """Assert what a user relies on after any crash; return what a crash left that readers ignore.

    Every listed video is complete (its frames, timestamps, shots, thumbnails and embeddings equal
    the reference) and found by its own frames; the graph holds no vector of an unlisted video; no
    frame or shot row lacks its video. `strict`: not even ignored leftovers may remain.
    """
    stored = read_reference(folder) if (folder / 'catalog.sqlite').exists() else Reference({})
    db = sqlite3.connect(f'file:{folder / "catalog.sqlite"}?mode=ro', uri=True)
    assert db.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    assert db.execute('SELECT count(*) FROM frames WHERE video NOT IN (SELECT id FROM videos)').fetchone() == (0,)
    assert db.execute('SELECT count(*) FROM shots WHERE video NOT IN (SELECT id FROM videos)').fetchone() == (0,)
    next_label = (db.execute("SELECT value FROM meta WHERE key = 'next_label'").fetchone() or (0,))[0]
    db.close()
    for video_id, video in stored.videos.items():
        expected = reference.videos[video_id]
        assert video.duration == expected.duration
        np.testing.assert_array_equal(video.timestamps, expected.timestamps)
        assert video.thumbnails == expected.thumbnails and video.shots == expected.shots
        np.testing.assert_allclose(video.embeddings, expected.embeddings, atol=2e-3)
        for name in video.thumbnails:
            with Image.open(folder / 'thumbnails' / video_id / name) as image:
                image.load()  # a complete JPEG
    dim = next(iter(reference.videos.values())).embeddings.shape[1]
    rows = (folder / 'embeddings.f16').stat().st_size / (2 * dim) if (folder / 'embeddings.f16').exists() else 0
    assert rows >= next_label
    indexer = Indexer(workspace=str(folder))
    try:
        listed = [v.video_id for v in indexer.list_videos(DocList[VideoDoc]())]
        assert sorted(listed) == sorted(stored.videos)
        frame_counts = {video_id: len(v.timestamps) for video_id, v in stored.videos.items()}
        rng = np.random.default_rng(0)
        for query in [*(v.embeddings[0] for v in stored.videos.values()), *rng.normal(size=(5, dim))] if listed else []:
            found = indexer.storage.nearest(query.astype(np.float32), 10_000)
            stray = [(v, f) for v, f in zip(found.video_ids, found.frames) if f >= frame_counts[v]]
            assert not stray, f'the graph holds vectors no listed video owns: {stray}'
        for video_id, video in stored.videos.items():
            for embedding in video.embeddings:
                query = QueryDoc(embedding=embedding)
                best = indexer.search(DocList[QueryDoc]([query]), parameters={'top': 1})[0].matches[0]
                assert best.video_id == video_id and best.score > 0.99
    finally:
        indexer.close()
    leftovers = {
        'rows': int(np.ceil(rows)) - next_label,
        'files': sorted(p.name for p in folder.iterdir() if p.name not in WORKSPACE_FILES),
        'thumbnails': sorted(p.name for p in (folder / 'thumbnails').iterdir()
                             if p.name not in stored.videos and p.name != '.staging')
        + sorted(p.name for p in (folder / 'thumbnails' / '.staging').glob('*'))
        if (folder / 'thumbnails').exists() else [],
    }
    assert set(leftovers['files']) <= LEFT_BY_A_CRASH, leftovers
    if strict:
        assert leftovers == {'rows': 0, 'files': [], 'thumbnails': []}, leftovers
    return leftovers
