"""`pip install -e .` gives the `vced` command and a Python API that works from any folder.

The repository's files are copied to a scratch folder and installed there (--no-deps, no build
isolation: nothing is downloaded) into a fresh virtual environment that sees this one's packages."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.factories import make_video

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_e_gives_vced_and_the_python_api_anywhere(tmp_path, tiny_checkpoint):
    tracked = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    source = tmp_path / 'vced'
    for name in tracked:
        if not name.startswith(('tests/', 'bench/', 'docs/')) and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / 'venv'
    base = getattr(sys, '_base_executable', sys.executable)
    subprocess.run([base, '-m', 'venv', '--without-pip', str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / 'bin' / 'python'), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / 'deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')  # this environment's packages
    installed = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', '--no-deps',
                                '--no-build-isolation', '-e', str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / 'elsewhere'
    video = make_video(elsewhere / 'clip.mp4', duration=2, source='smptebars')
    env = {**os.environ, 'PATH': f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop('PYTHONPATH', None)
    indexed = subprocess.run(['vced', 'index', 'clip.mp4', '--model', str(tiny_checkpoint), '--workspace', 'my-index',
                              '--asr', 'off'], cwd=elsewhere, capture_output=True, text=True, env=env, timeout=300)
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.splitlines()[-1].startswith('1 indexed, 0 already indexed, 0 failed')
    bad = subprocess.run(['vced', 'search', 'x', '--top', '0', '--workspace', 'my-index'], cwd=elsewhere,
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.endswith('(see vced search --help)\n')

    script = ("from library import Library\n"
              "with Library(workspace='my-index') as library:\n"
              "    print(library.flow.path, [v.uri for v in library.videos()])\n")
    api = subprocess.run([str(venv / 'bin' / 'python'), '-c', script], cwd=elsewhere, capture_output=True, text=True,
                         env=env, timeout=300)
    assert api.returncode == 0, api.stderr
    assert api.stdout.split() == [str(source / 'flow.yml'), f"['{video}']"]
