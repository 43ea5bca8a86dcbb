"""The README's Python API snippets run exactly as written (on generated videos and a tiny CLIP)."""
import re
import shutil
from pathlib import Path

from tests.factories import make_video

ROOT = Path(__file__).resolve().parents[2]


def snippets() -> list[str]:
    section = (ROOT / 'README.md').read_text(encoding='utf-8').split('## Python API', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```python\n(.*?)```', section, re.S)


def test_the_readme_scripts_index_a_folder_and_print_the_moments(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    flow = (ROOT / 'flow.yml').read_text(encoding='utf-8')
    assert 'model: ViT-B/32' in flow
    (tmp_path / 'flow.yml').write_text(flow.replace('model: ViT-B/32', f'model: {tiny_checkpoint}'), encoding='utf-8')
    make_video(tmp_path / 'videos' / 'clip.mp4', duration=3, source='smptebars')
    make_video(tmp_path / 'videos' / 'other.mp4', duration=2, source='testsrc2')
    monkeypatch.chdir(tmp_path)
    library_script, flow_script = snippets()

    exec(compile(library_script, 'README.md', 'exec'), {})
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in out[:2]) == ['indexed', 'indexed']
    assert len(out) == 2 + 2 and all('score' in line and 'clip.mp4' in line or 'other.mp4' in line for line in out[2:])

    shutil.rmtree(tmp_path / 'my-index')
    exec(compile(flow_script, 'README.md', 'exec'), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('indexed 3.0')
    assert out[1].startswith(str(tmp_path / 'videos' / 'clip.mp4'))
