"""The layers of the README's Design section, read from the code: each module imports only what its
layer may (imports inside functions count too), no import cycle anywhere, `__init__.py` files only
re-export, and no module is much longer than 300 lines."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ['app.py', 'serve.py', 'flow.py', 'page', 'api', 'library', 'evaluation', 'training', 'executors']
VOCABULARY = ('executors.documents', 'executors.errors')  # what every layer may name: documents and errors
MAY_IMPORT = {  # a layer -> the module prefixes it may import (besides itself and VOCABULARY)
    'app': ('page', 'library'),
    'serve': ('page',),
    'page': ('library',),
    'flow': ('api', 'library', 'evaluation', 'training'),
    'api': ('library',),
    'evaluation': ('library', 'executors.models', 'executors.vectors'),
    'training': ('library', 'evaluation', 'executors.models', 'executors.media'),
    'library': ('executors',),
    'executors': (),
}


def source_files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = ROOT / name
        files += sorted(path.rglob('*.py')) if path.is_dir() else [path] if path.exists() else []
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {module_name(p): p for p in source_files()}


def imports(path: Path) -> set[str]:
    """The project's modules `path` imports, anywhere in it (`from a import b` counts a.b when b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f'{node.module}.{alias.name}' for alias in node.names}
    return {name for name in found if name in MODULES}


def layer(module: str) -> str:
    return module.split('.')[0]


def allowed(importer: str, imported: str) -> bool:
    if layer(imported) == layer(importer) or imported.startswith(VOCABULARY):
        return True
    return any(imported == p or imported.startswith(p + '.') for p in MAY_IMPORT[layer(importer)])


def test_every_module_imports_only_what_its_layer_may():
    wrong = {m: sorted(i for i in imports(p) if not allowed(m, i)) for m, p in MODULES.items()}
    assert {m: i for m, i in wrong.items() if i} == {}


def test_no_import_cycle():
    graph = {m: {i for i in imports(p) if i != m and not m.startswith(i + '.')} for m, p in MODULES.items()}
    state, cycles = {}, []

    def visit(module, trail):
        state[module] = 'open'
        for other in sorted(graph[module]):
            if state.get(other) == 'open':
                cycles.append(trail[trail.index(other):] + [other])
            elif other not in state:
                visit(other, trail + [other])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize('path', [p for p in source_files() if p.name == '__init__.py'],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_package_inits_only_re_export(path):
    body = ast.parse(path.read_text(encoding='utf-8')).body
    doc = body[:1] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else []
    other = [n for n in body[len(doc):] if not isinstance(n, (ast.Import, ast.ImportFrom))
             and not (isinstance(n, ast.Assign) and [t.id for t in n.targets if isinstance(t, ast.Name)] == ['__all__'])]
    assert [ast.unparse(n)[:60] for n in other] == []


def test_no_private_name_is_imported_from_another_package():
    wrong = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] != layer(module):
                wrong += [f'{module}: {node.module}.{a.name}' for a in node.names if a.name.startswith('_')]
            elif isinstance(node, ast.Attribute) and node.attr in ('_MODELS', '_download'):
                wrong.append(f'{module}: .{node.attr}')
    assert wrong == []


def test_no_module_is_much_longer_than_300_lines():  # ~300: at most a tenth over
    long = {str(p.relative_to(ROOT)): n for p in source_files()
            if (n := len(p.read_text(encoding='utf-8').splitlines())) > 330}
    assert long == {}
