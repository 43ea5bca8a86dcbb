"""Run every benchmark and write bench/REPORT.md (`python -m bench`), or a quick smoke run (`--quick`)."""
import argparse
import datetime
import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench.common import Result, markdown_table

BENCHMARKS = ['loader', 'encoders', 'indexer', 'evaluation']
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__)
    parser.add_argument('--quick', action='store_true', help='small sizes, a smoke run for CI (under 2 minutes)')
    parser.add_argument('--only', nargs='+', choices=BENCHMARKS, default=BENCHMARKS, help='run only these')
    args = parser.parse_args(argv)

    results: list[Result] = []
    for name in args.only:
        started = time.monotonic()
        results += importlib.import_module(f'bench.{name}').run(quick=args.quick)
        print(f'bench.{name}: {time.monotonic() - started:.0f} s', file=sys.stderr)
    table = markdown_table(results)
    print(table)
    if not args.quick:
        REPORT.write_text(
            f'# VCED benchmark report\n\n{datetime.date.today()} on {machine()}.\n'
            f'Reproduce: `make bench` (`python -m bench`). Each figure is a median over repeated runs; '
            f'ratios are measured side by side in the same run.\n\n{table}\n', encoding='utf-8')
        print(f'wrote {REPORT}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
