"""The example analyses run against a real conversion of the example export."""

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.pipeline import ConvertRequest, convert

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "ds"
    report = convert(ConvertRequest(inputs=[str(EXAMPLES / "harbor_city_dispatch")], output=out))
    assert report.exit_code == 0
    return out


@pytest.mark.parametrize("script", ["analyze_pandas.py", "analyze_polars.py", "analyze_duckdb.py"])
def test_example_analysis_runs(dataset, script):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(dataset)], capture_output=True, text=True, check=True
    )
    assert ": 120 rows, 119 messages" in proc.stdout
    assert "  2024-02: 38" in proc.stdout
    assert "#harborcity (23)" in proc.stdout


def test_example_export_is_reproducible(tmp_path):
    target = EXAMPLES / "harbor_city_dispatch" / "result.json"
    before = target.read_bytes()
    subprocess.run([sys.executable, str(EXAMPLES / "make_example_export.py")], check=True)
    assert target.read_bytes() == before
