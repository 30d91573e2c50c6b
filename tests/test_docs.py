"""Every ```python block in README.md and docs/*.md runs: the docs' examples stay true."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [(page, i, code) for page in PAGES
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))]


@pytest.mark.parametrize("page, index, code", BLOCKS, ids=[f"{p.name}-{i}" for p, i, _ in BLOCKS])
def test_doc_example_runs(page, index, code):
    from cuflow.ops.base import op, xp
    exec(compile(code, f"{page.name}[block {index}]", "exec"), {"op": op, "xp": xp, "__name__": "__doc_example__"})


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme]
    assert not missing, f"docs pages not linked from README.md: {missing}"
