"""The weights of a TorchScript archive (OpenAI's CLIP .pt files) read without running it.

torch.jit.load compiles and runs the archive's code; a file from an untrusted source could do anything
there. An archive is a zip: its `data.pkl` pickles the module tree and `data/<key>` holds the tensors'
bytes; its `code/` says which of each module's attributes are parameters and buffers. This reads those
with an unpickler that builds nothing but tensors, ordered dicts and plain records of modules.
"""
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

__all__ = ['is_archive', 'archive_state_dict']

MEMBERS = re.compile(r'^class (\w+)\(Module\):\n  __parameters__ = \[(.*?)\]\n  __buffers__ = \[(.*?)\]', re.M)


def is_archive(path: str | Path) -> bool:
    """Whether `path` is a TorchScript archive (a zip holding data.pkl and code/)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith('/data.pkl') for n in names) and any('/code/' in n for n in names)


def archive_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameters and buffers of the module an archive holds, by their state_dict names;
    pickle.UnpicklingError when it holds anything but modules and tensors."""
    with zipfile.ZipFile(path) as archive:
        root = next(n for n in archive.namelist() if n.endswith('/data.pkl'))[:-len('data.pkl')]
        members = _members(archive, root)
        module = _Unpickler(archive, root).load()
    state: dict[str, torch.Tensor] = OrderedDict()
    _collect(module, '', members, state)
    return state


class _Module:
    """A module of the archive, as a record: its class name and its attributes."""

    kind = ''

    def __setstate__(self, state):
        self.state = state


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, root: str):
        super().__init__(archive.open(root + 'data.pkl'))
        self.archive, self.root, self.classes = archive, root, {}

    def find_class(self, module: str, name: str):
        if module.startswith('__torch__'):
            return self.classes.setdefault((module, name), type(name, (_Module,), {'kind': f'{module}.{name}'}))
        if module == 'torch' and name.endswith('Storage') and isinstance(getattr(torch, name, None), type):
            return getattr(torch, name)
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ('collections', 'OrderedDict'):
            return OrderedDict
        raise pickle.UnpicklingError(f'{module}.{name} is neither a module nor a tensor')

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != 'storage':
            raise pickle.UnpicklingError(f'unknown persistent id {kind!r}')
        dtype = storage_type.dtype
        data = bytearray(self.archive.read(f'{self.root}data/{key}'))
        untyped = torch.frombuffer(data, dtype=torch.uint8).untyped_storage() if data else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def _members(archive: zipfile.ZipFile, root: str) -> dict[str, set[str]]:
    """Each module class's parameter and buffer names, from the archive's code/ (read, never run)."""
    members = {}
    for name in archive.namelist():
        if name.startswith(root + 'code/__torch__/') and name.endswith('.py'):
            module = name[len(root + 'code/'):-len('.py')].replace('/', '.')
            for cls, parameters, buffers in MEMBERS.findall(archive.read(name).decode('utf-8', 'replace')):
                members[f'{module}.{cls}'] = set(re.findall(r'"(\w+)"', parameters + buffers))
    return members


def _collect(module: _Module, prefix: str, members: dict[str, set[str]], state: dict) -> None:
    attributes = module.state if isinstance(getattr(module, 'state', None), dict) else {}
    tensors = members.get(module.kind, set())
    for name, value in attributes.items():
        if isinstance(value, _Module):
            _collect(value, f'{prefix}{name}.', members, state)
        elif name in tensors and isinstance(value, torch.Tensor):
            state[prefix + name] = value
