"""Routing helpers shared by the HTTP services."""

from __future__ import annotations

from werkzeug.routing import BaseConverter


class AnyTextConverter(BaseConverter):
    """The rest of the path, whatever it holds (newlines, slashes, nothing).

    For ids the view validates itself: a malformed id must get the view's 400 with its reason, not a
    404 because werkzeug's `path` converter does not match a newline or a leading slash.
    """

    regex = "(?s:.*)"
    part_isolating = False


def install_converters(app) -> None:  # type: ignore[no-untyped-def]
    """Make `<anytext:name>` available in `app`'s routes (before its blueprints are registered)."""
    app.url_map.converters["anytext"] = AnyTextConverter
