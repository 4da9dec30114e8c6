"""The explicit registry of input converters (DESIGN.md §2)."""

from __future__ import annotations

from importlib import import_module

from ..errors import UsageError
from .base import Converter

# One module per format, in the order `tgexport formats` lists them.
_MODULES = {
    "tdesktop-json": "tdesktop_json",
    "tdesktop-html": "tdesktop_html",
    "telethon-json": "telethon_json",
    "tme-html": "tme_html",
    "mirror": "mirror",
    "snscrape-jsonl": "snscrape_jsonl",
    "tgdataset": "tgdataset",
}


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Converter:
    """The converter registered under `name`."""
    if name not in _MODULES:
        raise UsageError(f"unknown input format {name!r}", hint="known formats: " + ", ".join(_MODULES))
    module = import_module(f"{__name__}.{_MODULES[name]}")
    return module.CONVERTER


def all_converters() -> list[Converter]:
    return [get(name) for name in _MODULES]
