"""Executors of a user's own, named in flow.yml as `tests.distributed.marker.CueMarker` (or `.Pause`): under
--ray they run on the workers with their settings like the stock ones."""
import time

from executors.base import Executor, requests
from executors.documents import CueDoc, DocList, Status, VideoDoc


class CueMarker(Executor):
    """Adds one cue, `text`, at the start of each video it sees whole (its last piece)."""

    def __init__(self, text: str = 'marked'):
        self.text = text

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        for doc in docs:
            if doc.status == Status.PENDING and doc.last_chunk:
                doc.cues = DocList[CueDoc]([CueDoc(video_id=doc.video_id, start=0.0, end=0.25, text=self.text,
                                                   source='marker'), *doc.cues])
        return docs


class Pause(Executor):
    """Waits `seconds` on each piece of /index: keeps a Ray task running long enough to be killed mid-video."""

    def __init__(self, seconds: float = 0.5):
        self.seconds = seconds

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        time.sleep(self.seconds)
        return docs
