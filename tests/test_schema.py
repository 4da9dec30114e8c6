import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pyarrow as pa

from exporter import schema, validate

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "post-1.1.0.arrow.txt"


def _objects(node, path="#"):
    if node.get("type") in ("object", ["object", "null"]) and "properties" in node:
        yield path, node
        for name, child in node["properties"].items():
            yield from _objects(child, f"{path}/properties/{name}")
    if "items" in node:
        yield from _objects(node["items"], path + "/items")


def test_schema_is_valid_draft_2020_12_with_versioned_id():
    doc = schema.load_schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    validate.check_schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith("/post/" + doc["x-tgexport"]["version"])


def test_every_object_requires_every_property_and_forbids_others():
    for path, node in _objects(schema.load_schema()):
        assert node["required"] == list(node["properties"]), path
        assert node["additionalProperties"] is False, path


def test_arrow_schema_is_derived_with_design_type_rules():
    arrow = schema.arrow_schema()
    assert arrow.names == list(schema.load_schema()["properties"])
    assert arrow.field("post_id").type == pa.int64() and not arrow.field("post_id").nullable
    assert arrow.field("chat_id").nullable
    for name in schema.timestamp_fields():
        assert arrow.field(name).type == pa.timestamp("us", tz="UTC")
    entities = arrow.field("entities").type
    assert pa.types.is_list(entities) and pa.types.is_struct(entities.value_type)
    assert not entities.value_field.nullable
    for field in arrow:
        assert not pa.types.is_dictionary(field.type)
        assert not pa.types.is_unsigned_integer(field.type)


def test_arrow_schema_matches_golden_snapshot():
    text = schema.arrow_schema().to_string(show_field_metadata=False, show_schema_metadata=False)
    assert text + "\n" == GOLDEN.read_text(encoding="utf-8"), "regenerate tests/golden/post-1.1.0.arrow.txt"


def test_schema_found_from_editable_install():
    assert schema.schemas_dir() == ROOT / "schemas"


def test_schema_found_from_built_wheel(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tgexport-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "exporter/schemas/post.v1.schema.json" in archive.namelist()
        archive.extractall(site)
    probe = (
        "import json, exporter, exporter.schema as s; "
        "print(json.dumps([exporter.__file__, str(s.schemas_dir()), s.load_schema()['$id']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    module_file, found, schema_id = json.loads(out.stdout)
    assert module_file.startswith(str(site)) and found.startswith(str(site))
    assert schema_id == schema.schema_id()


def test_pii_annotations_cover_person_fields():
    pii = schema.pii_fields()
    for name in ("sender_id", "sender_name", "author_signature", "forward_from_name", "mentions", "text"):
        assert name in pii
    assert "entities.user_id" in pii
