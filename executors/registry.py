"""The executors flow.yml's `uses:` can name, in one table. Each is imported only when a flow uses it,
so a flow without speech recognition never loads faster-whisper."""
import importlib

from executors.base import Executor

__all__ = ['EXECUTORS', 'executor_class']

EXECUTORS = {  # flow.yml name -> module holding the class of that name
    'VideoLoader': 'executors.video_loader',
    'SpeechReader': 'executors.speech_reader',
    'ScreenTextReader': 'executors.screen_text_reader',
    'ImageEncoder': 'executors.image_encoder',
    'TextEncoder': 'executors.text_encoder',
    'Indexer': 'executors.indexer',
}


def executor_class(name: str) -> type[Executor]:
    """The class flow.yml's `uses: name` means: a name of EXECUTORS, or `package.module.Class` for an
    executor of your own. LookupError (with the known names) for anything else."""
    if name in EXECUTORS:
        return getattr(importlib.import_module(EXECUTORS[name]), name)
    module_name, _, class_name = name.rpartition('.')
    try:
        cls = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise  # the module exists but one of its own imports is missing
        cls = None
    except AttributeError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise LookupError(f"unknown executor '{name}' (known: {', '.join(EXECUTORS)}, or module.Class of your own)")
    return cls
