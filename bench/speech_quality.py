"""The speech-quality measurement of bench/speech.py: synthesise, recognise, store, search, count hits."""
import hashlib
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import Result, with_speech
from bench.speech_set import NOISES, RATE, SET, TYPES, VOICES, queries, soundtrack, spoken
from executors.documents import CueDoc, DocList, FrameDoc, QueryDoc, VideoDoc
from executors.media.thumbnails import staging_folder

SLACK = 0.5  # seconds: a result within this of a sentence's time is at it


def measure(sentences: int) -> list[Result]:
    section = f'speech quality, {sentences} sentences in {sentences // 2} videos, Whisper base'
    return with_speech(section, lambda folder, model: _measure(section, sentences, folder, model))


def _measure(section: str, sentences: int, folder: Path, model: Path) -> list[Result]:
    from executors.indexer import Indexer
    from executors.models.whisper import Recognizer, model_for
    from executors.text_encoder import TextEncoder
    from tests.factories import write_random_clip_checkpoint

    recognizer = Recognizer(model_for(str(model), device='cpu', threads=2), beam_size=5)
    clip = write_random_clip_checkpoint(folder / 'clip-vit-b32-random.pt', preset='ViT-B/32')
    encoder = TextEncoder(model=str(clip), device='cpu', text_model='clip', runtime='torch')
    indexer = Indexer(workspace=str(folder / 'workspace'))
    rng = np.random.default_rng(0)
    truth: dict[int, tuple[str, float, float]] = {}  # sentence -> (video id, start, end)
    audio = recognising = embedding = 0.0
    cue_count = 0
    for v in range(sentences // 2):
        voice, wpm = VOICES[v % len(VOICES)]
        parts = [spoken(SET[i][0], voice, wpm) for i in (2 * v, 2 * v + 1)]
        track, starts = soundtrack(parts, NOISES[v % len(NOISES)], lead=1.0 + v % 3, rng=rng)
        video_id = hashlib.sha256(track.tobytes()).hexdigest()
        for i, (start, part) in enumerate(zip(starts, parts)):
            truth[2 * v + i] = (video_id, start, start + len(part) / RATE)
        started = time.perf_counter()
        cues = recognizer.recognise_samples(track, 0.0, video_id)
        recognising += time.perf_counter() - started
        audio += len(track) / RATE
        doc = _video_doc(folder / 'workspace', video_id, len(track) / RATE, encoder, rng)
        doc.cues = DocList[CueDoc](cues)
        started = time.perf_counter()
        encoder.handle('/index', DocList[VideoDoc]([doc]), {})
        embedding += time.perf_counter() - started
        cue_count += len(cues)
        indexer.index(DocList[VideoDoc]([doc]))
    results = _search(section, indexer, encoder, truth, sentences)
    speech_seconds = sum(end - start for _, start, end in truth.values())
    results += [
        Result(section, 'recognition real-time factor (beam 5)', recognising / audio, 'x',
               note=f'{audio:.0f} s of audio, {cue_count} cues'),
        Result(section, 'cue embeddings: CPU seconds per hour of speech', embedding / speech_seconds * 3600, 's',
               note=f'ViT-B/32 text tower (random weights, real cost), {cue_count / speech_seconds * 3600:.0f} '
                    f'cues per hour of speech, 1 KB each stored (float16)')]
    indexer.close()
    return results


def _video_doc(workspace: Path, video_id: str, duration: float, encoder, rng) -> VideoDoc:
    """A video as the loader and image encoder leave it: one keyframe a second, random unit vectors."""
    dim = encoder.towers['clip'].encode(['x']).shape[1]
    thumbs = staging_folder(workspace, video_id)
    frames = []
    for i in range(int(duration)):
        (thumbs / f'{i}.jpg').write_bytes(b'jpeg')
        vector = rng.normal(size=dim).astype(np.float32)
        frames.append(FrameDoc(video_id=video_id, timestamp=float(i), thumbnail=str(thumbs / f'{i}.jpg'),
                               embedding=vector / np.linalg.norm(vector)))
    return VideoDoc(uri=f'/bench/{video_id[:12]}.mp4', video_id=video_id, duration=duration, fps=25.0, width=160,
                    height=120, frames=DocList[FrameDoc](frames))


def _search(section: str, indexer, encoder, truth: dict, sentences: int) -> list[Result]:
    ranks: dict[tuple[str, str], list[int | None]] = {}
    errors, ties = [], 0
    for s in range(sentences):
        video_id, start, end = truth[s]
        for kind, text in queries(s).items():
            asked = encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=text)]), {})
            for within in ('speech', 'all'):
                matches = indexer.search(DocList[QueryDoc]([asked[0].model_copy()]),
                                         {'within': within, 'top': 5})[0].matches
                rank = next((r for r, m in enumerate(matches) if m.video_id == video_id
                             and m.start < end + SLACK and start - SLACK < m.end), None)
                ranks.setdefault((kind, within), []).append(rank)
                ties += within == 'all' and bool(rank) and matches[rank].score == matches[0].score  # lost a tie
                if within == 'speech' and rank == 0 and kind != 'f':
                    errors.append(abs(matches[0].start - start))
    results = []
    for kind, name in TYPES.items():
        for within in ('speech', 'all'):
            found = ranks[(kind, within)]
            hit1 = 100 * sum(r == 0 for r in found) / len(found)
            hit5 = 100 * sum(r is not None for r in found) / len(found)
            results.append(Result(section, f'({kind}) {name}, --in {within}: hit@1', hit1, '%',
                                  note=f'hit@5 {hit5:.1f}%, {len(found)} queries'))
    results.append(Result(section, 'exact-tie losses, --in all', ties, 'queries',
                          note='the right moment scored as the first but ranked below it'))
    results.append(Result(section, 'median start error, --in speech top results', statistics.median(errors) if errors
                          else float('nan'), 's', note=f'{len(errors)} results; 90th percentile '
                          f'{np.percentile(errors, 90) if errors else float("nan"):.2f} s'))
    return results
