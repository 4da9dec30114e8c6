"""Dataset-level provenance documents rendered from the run model.

One model (`manifest.RunModel`), three renderings: `_manifest.json` (manifest.manifest_dict),
`datapackage.json` (Frictionless Data Package v2) and `croissant.json` (MLCommons Croissant 1.1
with RAI and PROV-O terms). The two standard documents point at the manifest by sha256, so the
manifest must be written first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..manifest import MANIFEST, RunModel, write_json
from .croissant import croissant_dict
from .datapackage import datapackage_dict

DATAPACKAGE = "datapackage.json"
CROISSANT = "croissant.json"
DOCUMENTS = (DATAPACKAGE, CROISSANT)

__all__ = ["CROISSANT", "DATAPACKAGE", "DOCUMENTS", "croissant_dict", "datapackage_dict", "write_documents"]


def write_documents(root: Path, model: RunModel) -> None:
    """Write datapackage.json and croissant.json next to the already written manifest."""
    manifest_sha = hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()
    write_json(root / DATAPACKAGE, datapackage_dict(model, manifest_sha))
    write_json(root / CROISSANT, croissant_dict(model, manifest_sha))
