"""The data dictionary: generated from the schema's annotations, and docs/data-dictionary.md kept in step."""

from pathlib import Path

from click.testing import CliRunner

from exporter import codebook
from exporter.cli import main
from exporter.schema import arrow_schema, load_schema, pii_fields

DICTIONARY = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"


def test_docs_data_dictionary_is_up_to_date():
    expected = codebook.render_markdown()
    actual = DICTIONARY.read_text(encoding="utf-8") if DICTIONARY.exists() else ""
    assert actual == expected, f"docs/data-dictionary.md is stale: regenerate it with `{codebook.REGENERATE}`"


def test_schema_markdown_command_prints_the_codebook():
    result = CliRunner().invoke(main, ["schema", "--markdown"])
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == codebook.render_markdown()


def test_every_field_says_which_input_formats_provide_it():
    props = load_schema()["properties"]
    known = set(codebook.all_formats())
    assert known == {
        "tdesktop-json",
        "tdesktop-html",
        "telethon-json",
        "tme-html",
        "mirror",
        "snscrape-jsonl",
        "tgdataset",
    }
    for name, node in props.items():
        formats = node.get(codebook.FORMATS_KEY)
        assert formats and set(formats) <= known and len(set(formats)) == len(formats), name
    assert props["forwards"][codebook.FORMATS_KEY] == ["telethon-json"]
    assert "mirror" not in props["date"][codebook.FORMATS_KEY]


def test_codebook_documents_every_field_with_types_nulls_and_pii():
    text = codebook.render_markdown()
    for field in arrow_schema():
        section = text.split(f"\n### {field.name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"Arrow type: `{field.type}`" in section, field.name
        assert "- JSON type: `" in section and "- Null: " in section and "- Provided by: " in section
        assert ("- PII: yes" in section) == (field.name in pii_fields()), field.name
    assert "`entities.user_id` | integer \\| null | `int64` | null when the source does not provide it" in text
    assert "| `year` | `int16` |" in text and "| `month` | `int8` |" in text
    assert (
        "| [`views`](#views) | integer \\| null | `int64` | yes | telethon-json, tme-html, snscrape-jsonl | no |"
        in text
    )


def test_null_semantics_follow_the_schema_types():
    assert codebook.null_semantics({"type": ["integer", "null"]}) == "null when the source does not provide it"
    assert codebook.null_semantics({"type": "array"}) == "never null; empty list when there are none"
    assert codebook.null_semantics({"type": "string"}) == "never null"
