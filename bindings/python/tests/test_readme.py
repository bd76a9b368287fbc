"""The Python example in the project README (between its section markers) runs as written."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT


def _readme_python_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- section:python -->(.*?)<!-- /section:python -->", readme, re.S)
    assert section, "README.md has no python section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert len(blocks) == 1, "the python section should hold exactly one python example"
    return str(blocks[0])


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = _readme_python_example()
    assert "import batv" in code
    exec(compile(code, "README.md (python section)", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    # What the comments in the example promise.
    assert lines[0].startswith("prvs=1") and lines[0].endswith("=user@example.com")
    assert lines[1] == "bad-signature"
    assert lines[2] == "'user@example.com': untagged: the address has no prvs= tag"
    assert lines[3].startswith("False 550 5.7.1 Bounce rejected")
    assert lines[4] == "True user@example.com"
