"""Run every benchmark and write bench/REPORT.md (`python -m bench`), or a quick smoke run (`--quick`)."""
import argparse
import datetime
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from bench.common import markdown_table

BENCHMARKS = ['loader', 'encoders', 'indexer', 'ann', 'startup', 'footage', 'evaluation', 'speech', 'screen_text',
              'index_rate', 'text_models', 'training', 'scale', 'api']
REPORT = Path(__file__).parent / 'REPORT.md'


def machine() -> str:
    """CPU model, cores, GPU and torch version, for the report's header."""
    cpu = platform.processor() or 'unknown CPU'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    return f'{cpu}, {os.cpu_count()} cores, GPU: {gpu}, torch {torch.__version__}, Python {platform.python_version()}'


def write_report(tables: dict[str, str]) -> None:
    """Write each benchmark's table under its own heading; with --only, the others stay as they were."""
    sections = dict(re.findall(r'^## (\w+)\n\n(.*?)(?=\n## |\Z)', REPORT.read_text(encoding='utf-8'), re.S | re.M)
                    if REPORT.exists() else [])
    stamp = f'_{datetime.date.today()} on {machine()}_'
    sections.update({name: f'{stamp}\n\n{table}\n{_notes(sections.get(name, ""))}' for name, table in tables.items()})
    body = ''.join(f'\n## {name}\n\n{sections[name].strip()}\n' for name in BENCHMARKS if name in sections)
    REPORT.write_text('# VCED benchmark report\n\nReproduce: `make bench` (`python -m bench`; `--only NAME` reruns one '
                      'section). Each figure is a median over repeated runs; ratios are measured side by side in the '
                      f'same run.\n{body}', encoding='utf-8')


def _notes(section: str) -> str:
    """The paragraphs written under a section's table by hand: they stay when its figures are rerun."""
    lines = section.strip().splitlines()
    last_row = max((i for i, line in enumerate(lines) if line.startswith('|')), default=len(lines) - 1)
    notes = '\n'.join(lines[last_row + 1:]).strip()
    return f'\n{notes}\n' if notes else ''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__)
    parser.add_argument('--quick', action='store_true', help='small sizes, a smoke run for CI (under 2 minutes)')
    parser.add_argument('--only', nargs='+', choices=BENCHMARKS, default=BENCHMARKS, help='run only these')
    args = parser.parse_args(argv)

    tables = {}
    for name in args.only:
        started = time.monotonic()
        tables[name] = markdown_table(importlib.import_module(f'bench.{name}').run(quick=args.quick))
        print(f'bench.{name}: {time.monotonic() - started:.0f} s', file=sys.stderr)
        print(f'\n## {name}\n\n{tables[name]}')
    if not args.quick:
        write_report(tables)
        print(f'wrote {REPORT}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
