"""What every benchmark shares: timing with medians, result rows, a markdown table."""
import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Result:
    """One measured figure; `baseline` names the row of the same section it is compared with."""

    section: str
    name: str
    value: float
    unit: str
    baseline: str = ''
    note: str = ''


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
