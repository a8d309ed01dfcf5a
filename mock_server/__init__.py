"""mock_server: an offline copy of the PicWish visual API (every endpoint, status and state code), for tests."""

from .app import create_app
from .config import MockConfig

__all__ = ["MockConfig", "create_app"]
