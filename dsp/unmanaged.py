"""Borrowed array views for a kernel's loop: the same memory without a reference count.

numba counts references to every array it binds to a name, atomically: each njit helper a
grid-rate loop calls with state arrays (the Hampel rows, the rolling windows, the spectrum's
eight arrays) costs two atomic operations per array per call, and inlined steps that take
arrays cost as many again. A view made here has no owner (a null ``meminfo``), so those
operations become a null test. Only for arrays that outlive every use of the view: a kernel
borrows its own arguments (the caller holds them until the kernel returns).
"""

from __future__ import annotations

from typing import Any, cast

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _borrow_value(context: Any, builder: Any, ty: Any, val: Any) -> Any:
    if isinstance(ty, types.Array):
        src = context.make_array(ty)(context, builder, value=val)
        dst = context.make_array(ty)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, name, getattr(src, name))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()
    if isinstance(ty, types.BaseTuple):
        out = val
        for k, t in enumerate(cast(Any, ty).types):
            item = _borrow_value(context, builder, t, builder.extract_value(val, k))
            out = builder.insert_value(out, item, k)
        return out
    return val  # a scalar: nothing to count


def _borrow(typingctx: Any, obj: Any) -> Any:
    if not isinstance(obj, (types.Array, types.BaseTuple)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return _borrow_value(context, builder, obj, args[0])

    return obj(obj), codegen


#: ``borrow(obj)`` in njit code: ``obj`` (an array, or a tuple of arrays and scalars) with
#: every array's data, shape and strides under no owner (see the module's docstring).
borrow: Any = intrinsic(_borrow)
