"""CLI start-up: `flow.py list`, `transcript`, `delete` and a cold `search "text"`, each timed as a whole
process (wall and CPU seconds, median of 7 runs after an untimed one, the commands taking turns), over a workspace of 100k
keyframes (`--quick`: 5k).

The workspace holds videos of 500 synthetic keyframes (bench/indexer.py's vectors) with a few subtitle
cues each, stored in the image space of a randomly initialised ViT-B/32 checkpoint (the real weights
cannot be downloaded here; the random ones have the same size and cost). The model is given by path:
its sha256 (its image space) is remembered in weights/file_facts.json by the untimed first run, as any first
search does once per checkpoint file; a model given by name (`ViT-B/32`) is never hashed. `delete` names a video that is not stored: the start-up and the lookup, not the
rewrite of the index a real deletion does. A search is cold: a new process, the workspace's files in
the page cache; the ONNX export of the text tower (and its probe) is made by the untimed first run, as a first
search makes it once per model: later searches run it without importing torch or reading the checkpoint. Whether each command imported torch is reported too.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import Result

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / 'out'
FRAMES_PER_VIDEO = 500
BUILT = 'v1'  # bump when the workspace below changes
# The untimed first run writes the project's bytecode cache, as a user's first run does; a machine that
# forbids it (PYTHONDONTWRITEBYTECODE) would make every timed run compile the project's changed modules again.
USERS_ENV = {name: value for name, value in os.environ.items() if name != 'PYTHONDONTWRITEBYTECODE'}
PROBE = ("import sys, flow; flow.main(sys.argv[1:]); "
         "print('torch imported' if 'torch' in sys.modules else 'torch not imported', file=sys.stderr)")


def run(quick: bool = False) -> list[Result]:
    count = 5_000 if quick else 100_000
    folder = OUT / f'startup-{count}-{BUILT}'
    checkpoint, first_id = workspace(folder, count)
    common = ['--workspace', str(folder / 'workspace')]  # list, transcript and delete take no --model
    commands = {'list': ['list'], 'transcript': ['transcript', first_id], 'delete': ['delete', 'f' * 12],
                'search "text" (cold)': ['search', 'a man rides a bike along the beach', '--model', str(checkpoint)]}
    section = f'CLI start-up, {count // 1000}k keyframes'
    results = []
    for name, (wall, cpu, torch) in timed({name: argv + common for name, argv in commands.items()},
                                          repeat=2 if quick else 7).items():
        results.append(Result(section, f'{name}: wall', wall, 's', note=f'whole process, median; {torch}'))
        results.append(Result(section, f'{name}: CPU', cpu, 's', note='user + system'))
    return results


def timed(commands: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float, str]]:
    """By name, the median wall and CPU seconds of `python flow.py ARGV` over `repeat` runs after an untimed
    one, and whether it imported torch. The commands take turns, so that the machine's speed drifting during
    the run moves each of them alike."""
    walls, cpus = {name: [] for name in commands}, {name: [] for name in commands}
    for attempt in range(repeat + 1):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, 'flow.py', *argv], cwd=ROOT, env=USERS_ENV, capture_output=True, check=False)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if attempt:
                walls[name].append(wall)
                cpus[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), _torch(argv))
            for name, argv in commands.items()}


def _torch(argv: list[str]) -> str:
    """'torch imported' or 'torch not imported' by `python flow.py ARGV`."""
    probe = subprocess.run([sys.executable, '-c', PROBE, *argv], cwd=ROOT, capture_output=True, text=True)
    return probe.stderr.strip().splitlines()[-1]


def workspace(folder: Path, count: int) -> tuple[Path, str]:
    """The workspace (built once, kept in bench/out/), the checkpoint it is indexed with, a stored video's id."""
    record = folder / 'built.json'
    if record.exists():
        saved = json.loads(record.read_text())
        return folder / 'clip-random.pt', saved['first_id']
    from bench.indexer import keyframe_vectors
    from executors.documents import CueDoc
    from executors.models.clip_model import image_space_id
    from executors.storage.interface import Frames, ImageSpace, VideoRecord
    from executors.storage.local.local_storage import HnswlibStorage
    from tests.factories import write_random_clip_checkpoint

    checkpoint = write_random_clip_checkpoint(folder / 'clip-random.pt', 'ViT-B/32')
    space = ImageSpace(image_space_id(str(checkpoint)), str(checkpoint))
    storage = HnswlibStorage(folder / 'workspace')
    ids = []
    for n, first in enumerate(range(0, count, FRAMES_PER_VIDEO)):
        vectors, lengths = keyframe_vectors(min(FRAMES_PER_VIDEO, count - first), seed=n)
        times = np.arange(len(vectors), dtype=np.float64)
        video_id = f'{n:064x}'
        cues = [CueDoc(video_id=video_id, start=float(t), end=float(t) + 4, text=f'line {t} of video {n}', source='srt')
                for t in range(0, len(vectors), 60)]
        storage.add(VideoRecord(video_id, f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=640,
                                height=360), Frames(times, vectors, [''] * len(vectors)),
                    (np.cumsum(lengths)[:-1] - 0.5).tolist(), cues, space)
        ids.append(video_id)
    storage.close()
    record.write_text(json.dumps({'first_id': ids[0], 'count': count}))
    return checkpoint, ids[0]
