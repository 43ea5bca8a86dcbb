"""The options the CLI (flow.py) and the page (app.py) share: which exist, their help, their valid
values, and how they become the Flow's overrides of flow.yml. Each command adds only those it uses."""
import argparse
from dataclasses import dataclass, field

from executors.media.sampling import STRATEGIES
from executors.storage.backends import ALIASES, BACKENDS
from executors.text_encoder import TEXT_MODELS
from library.pipeline import default_flow

__all__ = ['OPTIONS', 'ORIGIN', 'Option', 'Parser', 'add_options', 'flow_path', 'overrides']

ORIGIN = 'the command line'  # what a bad override is blamed on (Library(origin=...)), rather than flow.yml


def _device(value: str) -> str:
    if value in ('auto', 'cpu', 'cuda') or value.startswith('cuda:') and value[5:].isdigit():
        return value
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, not '{value}'")


@dataclass(frozen=True)
class Option:
    """One command-line option. `override`: the flow.yml setting it replaces (None: not a flow setting)."""

    flag: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    type: object = str
    override: str | None = None
    extra: dict = field(default_factory=dict)  # further add_argument keywords (default, ...)


OPTIONS = {
    'flow': Option('--flow', 'the flow file (default: ./flow.yml, else the one installed with VCED)', 'FILE',
                   extra={'default': None}),
    'workspace': Option('--workspace', 'where the library lives (default: data/workspace, set in flow.yml)', 'DIR',
                        override='workspace'),
    'model': Option('--model', 'CLIP model: a clip.available_models() name, a checkpoint or a tuned file '
                    '(default: set in flow.yml)', 'NAME_OR_PATH', override='model'),
    'text_model': Option('--text-model', 'which text tower embeds queries (default: set in flow.yml)',
                         choices=TEXT_MODELS, override='text_model'),
    'asr': Option('--asr', 'speech recognition: a faster-whisper model name or folder, or off (default: set in flow.yml)',
                  'NAME|PATH|off', override='asr'),
    'ocr': Option('--ocr', "on-screen text: auto (the OCR wheel's models), off, or a folder of models "
                  '(default: set in flow.yml)', 'auto|off|PATH', override='ocr'),
    'backend': Option('--backend', 'where vectors, metadata and cues live: local (the workspace folder; hnswlib: its old '
                      'name) or milvus (default: set in flow.yml)', choices=(*BACKENDS, *ALIASES), override='backend'),
    'uri': Option('--uri', 'milvus: a file for Milvus Lite, or http://host:19530', 'URI', override='uri'),
    'strategy': Option('--strategy', 'keyframe sampling (default: count, as CLIP4Clip)', choices=STRATEGIES,
                       override='strategy', extra={'default': 'count'}),
    'device': Option('--device', 'cpu | cuda | cuda:N | auto (default: set in flow.yml)', 'DEVICE', type=_device,
                     override='device'),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, `error: <reason> (see <prog> --help)`, exit 2."""

    def error(self, message: str):
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


def add_options(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the shared options `names` (keys of OPTIONS) to `parser`."""
    for name in names:
        option = OPTIONS[name]
        parser.add_argument(option.flag, dest=name, help=option.help, metavar=option.metavar, choices=option.choices,
                            type=option.type, **option.extra)


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The flow.yml settings the parsed options replace (only those given)."""
    return {option.override: getattr(args, name) for name, option in OPTIONS.items()
            if option.override and getattr(args, name, None) is not None}


def flow_path(args: argparse.Namespace) -> str:
    """The flow file the options name, or the default one."""
    return getattr(args, 'flow', None) or str(default_flow())
