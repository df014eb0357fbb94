"""The pure cores never import Django, so they run and benchmark as plain Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORES = [
    "annotate/ingest",
    "annotate/aggregation.py",
    "annotate/synthetic.py",
    "modeling/ml",
    "modeling/evaluation.py",
    "modeling/estimates.py",
    "modeling/sampling.py",
    "modeling/charts.py",
]


def _modules() -> list[str]:
    found = []
    for core in CORES:
        path = ROOT / core
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        for file in files:
            module = ".".join(file.relative_to(ROOT).with_suffix("").parts)
            found.append(module.removesuffix(".__init__"))
    return found


@pytest.mark.parametrize("module", _modules())
def test_core_module_imports_without_django(module):
    code = f"import sys, {module}; sys.exit(1 if 'django' in sys.modules else 0)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(ROOT))},
        timeout=120,
    )
    assert result.returncode == 0, f"{module} pulled in Django or failed: {result.stderr[-800:]}"
