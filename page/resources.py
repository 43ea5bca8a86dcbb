"""What every session of the Streamlit server shares: the Library (its models warming up in the
background, so the page draws at once) and the media server."""
import logging
import threading

import streamlit as st

from executors.errors import VcedError
from library import Library, import_models
from library.options import ORIGIN
from page.access import cookie_checker, cookie_issuer
from page.media_server import MediaServer

log = logging.getLogger(__name__)


class Loaded:
    """The shared Library, opened at once; its models are loaded by `warm`, which the page calls once it
    has drawn itself (the search box is there meanwhile), the text tower first.

    A text search waits for `text_ready`; anything else (an image search, indexing) for `ready`.
    The loading runs in a script run's own thread, as Streamlit's script runs do their work: in a thread
    of its own, beside the script runs, it stalled the page for minutes on a busy machine.
    """

    def __init__(self, library: Library):
        self.library = library
        self.notices: list[str] = []
        self.error: BaseException | None = None
        self.text_ready, self.ready = threading.Event(), threading.Event()
        self._loading = threading.Lock()

    def warm(self) -> bool:
        """Load the models here, unless they are loaded or another session's run is loading them;
        whether they were loaded here."""
        if self.ready.is_set() or not self._loading.acquire(blocking=False):
            return False
        try:
            self.library.embed_texts(['a video'])
            self.text_ready.set()
            self.notices = self.library.warm_up()
        except BaseException as e:  # shown by the page (a missing model: one line)
            self.error = e
            log.warning('loading the models failed: %s', e)
        finally:
            self.text_ready.set()
            self.ready.set()
            self._loading.release()
        return True

    def close(self) -> None:
        self.library.close()


@st.cache_resource(show_spinner='Opening the library…', on_release=Loaded.close)
def load_library(flow: str, settings: tuple[tuple[str, str], ...]) -> Loaded:
    """The Library every session shares; `settings`: the options' overrides of flow.yml (library.options),
    a value an executor refuses blamed on the command line (`streamlit run serve.py -- ...`). The model
    libraries are imported here, before any upload starts indexing in a thread of its own."""
    import_models()
    return Loaded(Library(flow, origin=ORIGIN, **dict(settings)))


def failed(loaded: Loaded) -> str | None:
    """Why the models could not load, in one line (None while loading or once loaded)."""
    if loaded.error is None:
        return None
    if isinstance(loaded.error, VcedError):
        return str(loaded.error)
    raise loaded.error


@st.cache_resource(on_release=MediaServer.close)
def media_server(host: str, port: int, guarded: bool) -> MediaServer:
    """The one media server of this Streamlit server, on the address the page listens on; `guarded`:
    only browsers signed in to the page (page.access's cookie) are served."""
    try:
        return MediaServer(host, port, allow=cookie_checker() if guarded else None,
                           sign_in=cookie_issuer() if guarded else None)
    except OSError as e:
        raise OSError(f'cannot play videos on {host or "every address"}, port {port} ({e.strerror}): '
                      'choose another with --media-port') from e
