"""Building the named tuples that njit kernels read, from the parameters they derive from.

A kernel's parameter tuple mostly carries values over from a richer parameter object (the
chain's :class:`dsp.params.ChainParams`, the plant's ``PlantParams``) under the same name; only
derived values and renames need spelling out. :func:`from_fields` is that one rule.
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])

#: Scalar annotations cast on the way in: numba compiles one specialisation per field type, so
#: an int where a float is meant (or a numpy scalar) would compile the kernel again.
_SCALARS = (float, int, bool)


def from_fields(cls: type[T], source: object, /, **given: Any) -> T:
    """``cls`` (a NamedTuple) with the ``given`` fields, every other field read from the
    attribute of ``source`` that has its name; scalars cast to their annotated type."""
    hints = typing.get_type_hints(cls)
    names: tuple[str, ...] = getattr(cls, "_fields")  # noqa: B009 (a NamedTuple's, not typed)
    unknown = set(given) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    values = []
    for name in names:
        v = given[name] if name in given else getattr(source, name)
        t = hints[name]
        values.append(t(v) if t in _SCALARS else v)
    return typing.cast(T, getattr(cls, "_make")(values))  # noqa: B009
