"""VCED's benchmarks: `python -m bench` writes bench/REPORT.md; `--quick` is the CI smoke run."""
