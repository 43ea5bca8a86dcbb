"""What a server may do, from `flow.py serve`'s options."""
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ['Settings']

MB = 1024 * 1024


@dataclass
class Settings:
    allow_dirs: list[Path]  # server-side paths POST /v1/videos may index: these folders and what lies below them
    upload_dir: Path  # where uploaded videos are saved (and then indexed)
    max_upload_mb: int = 2048  # the largest video upload, in MB
    max_image_mb: int = 20  # the largest query image (POST /v1/search), in MB
    max_body_kb: int = 64  # any other request body (JSON), in kB
    token_hashes: list[bytes] = field(default_factory=list)  # empty: no token needed (loopback only)
    cors_origins: list[str] = field(default_factory=list)  # browsers' origins allowed to call the API; empty: none
    warm_timeout: float = 600.0  # seconds a search waits for the models to load at start-up

    def __post_init__(self):
        self.allow_dirs = [Path(d).expanduser().resolve() for d in self.allow_dirs]
        self.upload_dir = Path(self.upload_dir).expanduser().resolve()

    def body_limits(self) -> tuple[dict[str, int], int]:
        """The largest body by path, and for every other path."""
        return {'/v1/videos': self.max_upload_mb * MB, '/v1/search': self.max_image_mb * MB}, self.max_body_kb * 1024
