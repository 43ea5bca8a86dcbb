"""The layers of ../shared/DESIGN.md: each module imports only from the layers below it (imports inside
functions count too), so there is no import cycle to hide."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = {'app', 'media_server', 'page_adding', 'page_access'}
TOP = PAGE | {'flow', 'evaluation', 'training', 'ray_indexing', 'library', 'pipeline', 'executors'}
ABOVE = {  # a layer -> the top-level modules it must never import
    'executors': PAGE | {'pipeline', 'library', 'flow', 'evaluation', 'training', 'ray_indexing'},
    'pipeline': PAGE | {'library', 'flow', 'evaluation', 'training', 'ray_indexing'},
    'library': PAGE | {'flow', 'evaluation', 'training'},
    'evaluation': PAGE | {'flow', 'training'},
    'training': PAGE | {'flow'},
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names & TOP


def modules(layer: str) -> list[Path]:
    folder, single = ROOT / layer, ROOT / f'{layer}.py'
    return sorted(folder.rglob('*.py')) if folder.is_dir() else [single] if single.exists() else []


@pytest.mark.parametrize('layer', sorted(ABOVE))
def test_no_module_imports_a_layer_above_its_own(layer):
    wrong = {str(p.relative_to(ROOT)): sorted(imported(p) & ABOVE[layer]) for p in modules(layer)}
    assert {k: v for k, v in wrong.items() if v} == {}
    assert modules(layer) or layer == 'training'


def test_no_module_is_much_longer_than_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.glob('**/*.py')
            if '.venv' not in p.parts and 'tests' not in p.parts and 'bench' not in p.parts
            and (n := len(p.read_text(encoding='utf-8').splitlines())) > 330}
    assert long == {}
