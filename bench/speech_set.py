"""The speech-quality set (bench/speech.py): sentences to synthesise, six queries for each, and the soundtracks.

Query types: (a) two words of the sentence, (b) its rarest word, (c) the whole sentence, (d) its key noun
with other words, (e) another form of its words (number, compound, spelling, inflection), (f) a pure
paraphrase (no content word in common). Soundtracks: espeak-ng voices at 130-190 words per minute,
silence or noise (pink at 20 and 10 dB SNR, music-like tones at 10 dB), 16 kHz mono.
"""
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

TYPES = {'a': 'two words', 'b': 'a rare word', 'c': 'whole sentence', 'd': 'key noun, other words',
         'e': 'another word form', 'f': 'paraphrase'}
# sentence, then queries a-f
SET = [
    ('The chef slices onions on a wooden board.', 'chef onions', 'slices', None, 'onions for dinner tonight',
     'slicing onion', 'a cook cutting vegetables'),
    ('She painted the front door bright green yesterday.', 'painted door', 'green', None, 'the door of the house',
     'paints the doors', 'someone coloured the entrance'),
    ('The lighthouse keeper climbed the stairs at dawn.', 'keeper stairs', 'lighthouse', None,
     'a lighthouse by the sea', 'light house keepers', 'a man went up the tower early'),
    ('Twelve pumpkins were sold at the market this morning.', 'pumpkins market', 'pumpkins', None,
     'pumpkins in a field', '12 pumpkins', 'squash bought at a fair'),
    ('The police found fingerprints on the broken window.', 'police fingerprints', 'fingerprints', None,
     'fingerprints on a cup', 'finger prints', 'officers discovered traces on the glass'),
    ('Our train leaves the station at seven fifteen.', 'train station', 'station', None, 'a station full of people',
     'trains leaving at 7.15', 'the railway departure is early'),
    ('The fire fighters rescued a cat from the tall tree.', 'rescued cat', 'rescued', None, 'a cat sleeping',
     'firefighters rescuing cats', 'a pet was saved by brave crews'),
    ('Fishing boats returned to the harbour before the storm.', 'boats harbour', 'harbour', None,
     'the harbour at night', 'harbor boat', 'ships came home ahead of bad weather'),
    ('The gardener planted tulips along the narrow path.', 'gardener tulips', 'tulips', None, 'tulips in a vase',
     'gardeners planting tulip', 'flowers were put in the ground by the walkway'),
    ('Eight students won prizes at the science fair.', 'students prizes', 'science', None, 'students in a classroom',
     '8 student', 'young people got awards for experiments'),
    ('The pilot announced a short delay because of fog.', 'pilot delay', 'fog', None, 'fog over the hills',
     'delays announced', 'the captain said we would be late'),
    ('My grandmother bakes bread every Sunday morning.', 'grandmother bread', 'bakes', None, 'fresh bread and butter',
     'baking breads', 'granny makes loaves each weekend'),
    ('The museum opens a new exhibition about ancient ships.', 'museum exhibition', 'exhibition', None,
     'a museum in the city', 'exhibitions opening', 'a gallery shows old vessels'),
    ('Heavy rain flooded the streets of the small village.', 'rain streets', 'flooded', None,
     'the village church bells', 'flooding street', 'water covered the roads of the town'),
    ("They didn't hear the alarm clock this morning.", 'alarm clock', 'alarm', None, 'an old clock on the wall',
     'didnt hear alarms', 'they overslept today'),
    ('The orchestra played a symphony for two hours.', 'orchestra symphony', 'symphony', None,
     'the orchestra tuning', 'symphonies played', 'musicians performed classical music at length'),
    ('A young boy was riding his bicycle near the river.', 'boy bicycle', 'bicycle', None, 'a bicycle shop',
     'rides bicycles', 'a child cycled by the water'),
    ('The doctor told him to drink more water.', 'doctor water', 'doctor', None, 'a doctor with a stethoscope',
     'doctors telling', 'a physician advised hydration'),
    ('Snow covered the mountains after a cold night.', 'snow mountains', 'mountains', None, 'mountains in summer',
     'snowy mountain', 'white peaks after freezing dark hours'),
    ('The baker decorated the cake with fresh strawberries.', 'cake strawberries', 'strawberries', None,
     'strawberries in a bowl', 'decorating cakes', 'a pastry was topped with red fruit'),
    ('We watched the sunset from the top of the hill.', 'sunset hill', 'sunset', None, 'the hill behind the school',
     'watching sunsets', 'we saw the evening sky from a summit'),
    ('The mechanic repaired the old truck in one afternoon.', 'mechanic truck', 'mechanic', None,
     'a truck on the highway', 'repairing trucks', 'a lorry was fixed quickly'),
    ('Thousands of birds fly south before the winter.', 'birds winter', 'south', None, 'birds on a wire',
     'bird flying', 'flocks migrate when it gets cold'),
    ('The librarian found a rare book under the counter.', 'librarian book', 'librarian', None,
     'a book about history', 'books found', 'an unusual volume turned up in the library'),
]
VOICES = [('en-us', 150), ('en-gb', 170), ('en-gb-scotland', 140), ('en-us+f3', 190), ('en-029', 130),
          ('en-gb-x-rp', 160), ('en-us+m3', 180), ('en-gb-x-gbclan', 145), ('en+f2', 175), ('en-us+f5', 155)]
NOISES = ['silence', 'pink 20 dB', 'pink 10 dB', 'music 10 dB']
RATE = 16000
PAUSE = 3.0  # seconds of silence between a video's sentences


def queries(index: int) -> dict[str, str]:
    sentence, *rest = SET[index]
    return {kind: (sentence if query is None else query) for kind, query in zip(TYPES, rest)}


def spoken(text: str, voice: str, words_per_minute: int) -> np.ndarray:
    """espeak-ng's rendering of `text` as 16 kHz float32 samples, silence trimmed from both ends."""
    with tempfile.NamedTemporaryFile(suffix='.wav') as out:
        subprocess.run(['espeak-ng', '-v', voice, '-s', str(words_per_minute), '-w', out.name, text], check=True,
                       capture_output=True)
        with wave.open(out.name) as w:
            rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    samples = data.astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    samples = samples[loud[0]:loud[-1] + 1] if len(loud) else samples
    times = np.arange(0, len(samples) / rate, 1 / RATE)
    return np.interp(times, np.arange(len(samples)) / rate, samples).astype(np.float32)


def soundtrack(parts: list[np.ndarray], noise: str, lead: float, rng) -> tuple[np.ndarray, list[float]]:
    """Sentences after `lead` seconds, PAUSE apart, with `noise` mixed in; the samples and each sentence's start."""
    pieces, starts, at = [np.zeros(int(lead * RATE), np.float32)], [], lead
    for part in parts:
        starts.append(round(at, 3))
        pieces += [part, np.zeros(int(PAUSE * RATE), np.float32)]
        at += (len(part) + int(PAUSE * RATE)) / RATE
    track = np.concatenate(pieces)
    speech_rms = float(np.sqrt(np.mean(np.concatenate(parts) ** 2)))
    if noise != 'silence':
        snr = float(noise.split()[1])
        background = _pink(len(track), rng) if noise.startswith('pink') else _tones(len(track), rng)
        background *= speech_rms / 10 ** (snr / 20) / float(np.sqrt(np.mean(background ** 2)))
        track = track + background
    return np.clip(track, -1, 1).astype(np.float32), starts


def _pink(count: int, rng) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=count))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, count).astype(np.float32)


def _tones(count: int, rng) -> np.ndarray:
    """Chords of three sine tones changing every half second (a stand-in for background music)."""
    t = np.arange(count) / RATE
    notes = 220 * 2 ** (rng.integers(0, 24, size=(int(count / RATE / 0.5) + 1, 3)) / 12)
    step = np.minimum((t / 0.5).astype(int), len(notes) - 1)
    return sum(np.sin(2 * np.pi * notes[step, i] * t) for i in range(3)).astype(np.float32)
