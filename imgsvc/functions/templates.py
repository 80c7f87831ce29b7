"""Raster function templates from files: what `imgsvc add --template` and `imgsvc template` register.

A template file is the rendering rule's JSON object with a ``name`` and a ``description`` beside
``rasterFunction`` / ``rasterFunctionArguments`` (docs/protocol.md §6.1); a folder holds one such file per
template (``*.json``, in name order).  Each is validated as a rule before it is registered.
"""
from __future__ import annotations

import json
from pathlib import Path

from imgsvc.catalog.records import FunctionTemplate
from imgsvc.errors import ImgsvcError, invalid
from imgsvc.functions import parse_rule

# A template file is a rule, a few KiB at most; anything far larger is not one.
MAX_TEMPLATE_BYTES = 1024 * 1024


def load_templates(path: str | Path, default: str | None = None) -> list[FunctionTemplate]:
    """The templates in the file or folder ``path``; the one named ``default`` (if any) becomes the default."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise invalid(f"{path} holds no *.json template files.")
    templates = [_load(file) for file in files]
    if default is not None and default not in {t.name for t in templates}:
        raise invalid(f"--default {default!r} is none of the templates in {path}.")
    return [FunctionTemplate(t.name, t.description, t.rule, t.name == default) for t in templates]


def _load(file: Path) -> FunctionTemplate:
    try:
        if file.stat().st_size > MAX_TEMPLATE_BYTES:
            raise invalid(f"{file} is larger than {MAX_TEMPLATE_BYTES} bytes: not a template.")
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"{file} is not a readable JSON template: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"].strip():
        raise invalid(f"{file} must be a JSON object with a \"name\" beside its rasterFunction.")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise invalid(f"{file}: \"description\" must be a string.")
    rule = {key: value for key, value in doc.items() if key not in ("name", "description")}
    try:
        parse_rule(rule)
    except ImgsvcError as error:
        raise invalid(f"{file} is not a valid rendering rule: {' '.join(error.details)}") from None
    return FunctionTemplate(name=doc["name"].strip(), description=description, rule=rule)
