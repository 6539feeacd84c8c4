"""Each module one concern: a module under src/ that passes 500 lines is two (STYLE.md)."""

from __future__ import annotations

from pathlib import Path

MAX_LINES = 500
SRC = Path(__file__).resolve().parents[2] / "src" / "lensforge"


def oversized(root: Path) -> list[str]:
    return sorted(
        f"{path.relative_to(root)}: {lines} lines"
        for path in root.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    )


def test_no_module_passes_500_lines() -> None:
    assert len(list(SRC.rglob("*.py"))) > 50  # the scan sees the real tree
    assert oversized(SRC) == [], "split these by concern"


def test_the_scan_catches_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert oversized(tmp_path) == [f"pkg/long.py: {MAX_LINES + 1} lines"]
