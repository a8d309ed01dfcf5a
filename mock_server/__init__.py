"""The offline copy of the PicWish visual API (every endpoint, status and state code), for tests. Importing the
package needs nothing but the client: Flask loads with `create_app`, so a client-only install of the wheel (whose
pytest plugin imports this package) never breaks the user's pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import MockConfig

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["MockConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
