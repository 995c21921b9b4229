"""`from_fields`: the one rule building a kernel's parameter tuple from richer parameters."""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

from dsp.named import from_fields


class _Kp(NamedTuple):
    a: float
    n: int
    on: bool
    pair: tuple[float, float]


def test_fields_carry_over_by_name_and_given_ones_win() -> None:
    src = SimpleNamespace(a=2, n=3.0, on=1, pair=(1, 2), unrelated="x")
    kp = from_fields(_Kp, src, n=np.int64(7))
    assert kp == _Kp(2.0, 7, True, (1, 2))
    # one numba type per field whatever the caller passed: scalars cast, others left alone
    assert [type(v) for v in kp] == [float, int, bool, tuple]


def test_a_field_the_source_lacks_or_a_misspelt_one_is_an_error() -> None:
    with pytest.raises(AttributeError, match="pair"):
        from_fields(_Kp, SimpleNamespace(a=1.0, n=1, on=True))
    with pytest.raises(TypeError, match="paor"):
        from_fields(_Kp, SimpleNamespace(a=1.0, n=1, on=True, pair=()), paor=())
