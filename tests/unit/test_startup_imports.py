"""`flow.py list`, `delete` and `transcript` start without the heavy libraries (torch alone takes 1-3 s to
import): they need no model. Measured as whole processes in bench/startup.py."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ('torch', 'clip', 'faiss', 'hnswlib', 'ray', 'streamlit', 'onnxruntime', 'faster_whisper')
PROBE = """
import sys
import flow
flow.main(sys.argv[1:])
print('heavy:', *[name for name in {heavy!r} if name in sys.modules])
"""


@pytest.mark.parametrize('command', [['list'], ['delete', 'f' * 12], ['transcript', 'f' * 12]])
def test_commands_that_need_no_model_import_no_heavy_library(tmp_path, command):
    probe = subprocess.run([sys.executable, '-c', PROBE.format(heavy=HEAVY), *command, '--workspace', str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip().splitlines()[-1] == 'heavy:', f'{probe.stdout}\n{probe.stderr}'


def test_documents_take_numpy_arrays_once_torch_is_loaded_after_them():
    code = ('import numpy as np\nfrom executors.documents import FrameDoc, DocList\nimport torch\n'
            'doc = FrameDoc(embedding=np.ones(4, np.float32))\n'
            'docs = DocList[FrameDoc]([doc])\nassert float(docs[0].embedding.sum()) == 4.0\nprint(torch.ones(1).item())')
    run = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == '1.0', run.stderr
