"""Issue 2 acceptance 5: the layer contract of docs/architecture.md holds, and it catches a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(LINT, cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_the_tree_keeps_the_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pay_importing_account_is_caught(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tomato", tmp_path / "tomato", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    pay_init = tmp_path / "tomato" / "pay" / "__init__.py"
    pay_init.write_text(pay_init.read_text() + "\nimport tomato.account  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "tomato.pay -> tomato.account" in result.stdout


def test_fastapi_outside_the_gateway_is_caught(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tomato", tmp_path / "tomato", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    money = tmp_path / "tomato" / "core" / "money.py"
    money.write_text(money.read_text() + "\nimport fastapi  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "tomato.core.money -> fastapi" in result.stdout
