"""Free `--version` on a management command's parser for "model version"."""

from __future__ import annotations

from argparse import ArgumentParser


def version_option_free(parser: ArgumentParser) -> None:
    """Drop Django's program-version flag so the command can take `--version V`."""
    for action in list(parser._actions):
        if "--version" in action.option_strings:
            parser._handle_conflict_resolve(action, [("--version", action)])
