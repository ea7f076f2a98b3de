"""The library stays readable in pieces: no function over 60 lines, no class over 150 (issue #18)."""

import ast
from pathlib import Path

LIBRARY = Path(__file__).parents[1] / "nextword"
LIMITS = {ast.FunctionDef: 60, ast.AsyncFunctionDef: 60, ast.ClassDef: 150}


def _sizes() -> dict[str, tuple[int, int]]:
    """file:qualified.name -> (lines, limit) of every function and class in the library, nested ones too."""
    sizes = {}
    pending = [(f"{path.name}:", ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(LIBRARY.glob("*.py"))]
    while pending:
        prefix, node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if type(child) in LIMITS:
                sizes[prefix + child.name] = (child.end_lineno - child.lineno + 1, LIMITS[type(child)])
                pending.append((f"{prefix}{child.name}.", child))
            else:
                pending.append((prefix, child))
    return sizes


def test_no_function_over_60_lines_and_no_class_over_150() -> None:
    too_long = {name: f"{lines} lines (at most {limit})" for name, (lines, limit) in _sizes().items() if lines > limit}
    assert too_long == {}
