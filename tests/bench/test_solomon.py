"""``bench.solomon``'s command line: a folder without instances is an error, not an empty table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.solomon import main


@pytest.mark.parametrize("fmt", ["solomon", "vrplib"])
def test_a_folder_without_instances_is_an_error(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from elsewhere with a relative ``--data``, the benchmark finds nothing: it says so
    and exits with a usage error instead of printing an empty table and succeeding."""
    with pytest.raises(SystemExit) as exited:
        main(["--data", str(tmp_path), "--format", fmt, "--all", "--match", "*_10_*"])
    assert exited.value.code == 2
    assert "no instances matching '*_10_*'" in capsys.readouterr().err
