"""docs/python.md: its ```python snippets, run in order as one program
against a real engine, print what the page says they print."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import REPO, SDK, Engine, Proc

DOC = REPO / "docs" / "python.md"


def test_python_guide_snippets_run(own_engine: Engine, tmp_path: Path) -> None:
    text = DOC.read_text()
    code = "\n\n".join(re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M))
    assert "runnel.listener.stream(run_id)" in code
    script = tmp_path / "guide.py"
    # If it hangs, every thread's stack goes to stderr and into the failure.
    script.write_text("import faulthandler\nfaulthandler.dump_traceback_later(60, exit=True)\n" + code)
    p = Proc([sys.executable, str(script)], env={**own_engine.env(), "PYTHONPATH": str(SDK)}, cwd=str(tmp_path))
    assert p.p.wait(90) == 0, "\n".join(p.out + p.lines)
    p.to.join(5)
    out = "\n".join(p.out)
    for block in re.findall(r"^prints\n\n```text\n(.*?)^```", text, flags=re.S | re.M):
        assert block.strip() in out, f"the guide says it prints:\n{block}\nbut it printed:\n{out}"
    for inline in re.findall(r"prints `([^`]+)`", text):
        assert inline in out, f"the guide says it prints {inline!r}; it printed:\n{out}"
