"""The fault vocabulary is one leaf module; scenarios and the catalogue check targets with it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hil.faults
from hil.devices import resolve_target
from hil.faults import FaultKind, check_fault


def test_the_fault_vocabulary_imports_nothing_from_hil() -> None:
    tree = ast.parse(Path(hil.faults.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m == "hil" or m.startswith("hil.")]


@pytest.mark.parametrize(
    ("kind", "target", "ok"),
    [
        (FaultKind.DISCONNECT, "gateway", True),
        (FaultKind.DISCONNECT, "pt301", False),
        (FaultKind.TIMEOUT, "subsea_bus", True),
        (FaultKind.TIMEOUT, "dt201", False),
        (FaultKind.STATUS_BITS, "ai20", False),
        (FaultKind.STATUS_BITS, "ft201", True),
        (FaultKind.NAMUR_FAIL, "ai20.pt201", True),
        (FaultKind.NAMUR_FAIL, "ai20", False),
    ],
)
def test_a_target_resolved_by_the_catalogue_is_checked_by_kind(
    kind: FaultKind, target: str, ok: bool
) -> None:
    if ok:
        check_fault(kind, resolve_target(target))
    else:
        with pytest.raises(ValueError, match=kind.value):
            check_fault(kind, resolve_target(target))
