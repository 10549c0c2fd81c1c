"""Every exception class of the product lives in ``rotator/errors.py`` and is drawn in its
tree, so a newcomer finds the whole error vocabulary (and the retry decision's input) in one
place. The sandbox (a development server) and private helper classes are exempt."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import rotator
from rotator import errors

PACKAGE = Path(rotator.__file__).parent
EXCEPTION_BASES = {"Exception", "ValueError", "RuntimeError", "KeyError", "TypeError"}


def _exception_names() -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    known = _exception_names() | EXCEPTION_BASES
    strays = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" or "sandbox" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if bases & known:
                strays.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert strays == []


def test_every_error_class_is_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    missing = sorted(
        name
        for name in _exception_names()
        if name not in EXCEPTION_BASES
        and getattr(errors, name).__module__ == "rotator.errors"
        and name not in tree
    )
    assert missing == []
