"""Argument checks shared by every public function.

Every public ``mtl_tl`` function validates its input with these helpers so that a
bad value fails at once, with a message that names the argument, what it got and
what is accepted, instead of failing deep inside PyTorch (or, worse, silently).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import pandas

__all__ = [
    "check_choice",
    "check_frame",
    "check_metric",
    "check_int",
    "check_float",
    "check_probability",
    "check_tensor",
    "check_type",
]


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise TypeError(f"{name} must be {names}, got {type(value).__name__}: {value!r:.80}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise ``ValueError`` listing them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not accepted; choose one of: {', '.join(map(repr, choices))}")
    return value


def check_int(name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r:.80}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    strict_min: bool = False,
) -> float:
    """Return ``float(value)`` if it is a finite real number within the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r:.80}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None:
        if strict_min and value <= min_value:
            raise ValueError(f"{name} must be > {min_value}, got {value}")
        if not strict_min and value < min_value:
            raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_frame(name: str, df: Any, columns: Sequence[str]) -> pandas.DataFrame:
    """Return ``df`` if it is a non-empty ``pandas.DataFrame`` holding every one of ``columns``."""
    import pandas  # here, not at import time: the training code never needs pandas

    check_type(name, df, pandas.DataFrame)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{name} is empty; it needs at least one row")
    return df


def check_metric(name: str, df: pandas.DataFrame, metric: str | None) -> str:
    """The metric to read from the tidy table ``df``: ``metric``, or the only one it holds if None."""
    metrics = list(dict.fromkeys(df["metric"]))
    if metric is None:
        if len(metrics) > 1:
            raise ValueError(f"{name} holds several metrics {metrics}; pass metric= one of them")
        return metrics[0]
    if metric not in metrics:
        raise ValueError(f"metric={metric!r} is not in {name}; choose one of: {metrics}")
    return metric


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1]."""
    return check_float(name, value, min_value=0.0, max_value=1.0)


def check_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    floating: bool | None = None,
    min_len: int | None = None,
) -> torch.Tensor:
    """Return ``value`` if it is a tensor of the expected rank and dtype.

    ``ndim`` and ``dtype`` accept one value or a sequence of accepted values;
    ``floating=True`` accepts any floating dtype; ``min_len`` bounds ``len(value)``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in accepted:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, accepted))} dimensions, "
                f"got shape {tuple(value.shape)}"
            )
    if dtype is not None:
        accepted_dtypes = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if value.dtype not in accepted_dtypes:
            raise TypeError(
                f"{name} must have dtype {' or '.join(map(str, accepted_dtypes))}, got {value.dtype}"
            )
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if min_len is not None and (value.ndim == 0 or len(value) < min_len):
        got = 0 if value.ndim == 0 else len(value)
        raise ValueError(f"{name} must hold at least {min_len} item(s), got {got}")
    return value
