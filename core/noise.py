"""How much of an accuracy is sampling noise: the one rule every screen and core module uses.

An accuracy measured on ``n`` samples could have come out differently with other samples; these
functions say by how much (a 95 % Wilson interval) and whether two accuracies differ by more than
that.  Moved here from ``app/format.py`` (which re-exports them) so ``core.experiment`` can say
"beyond noise" with the same rule the screens use.
"""

from __future__ import annotations

import math


def accuracy_margin(acc: float | None, n: int | None, z: float = 1.96) -> float | None:
    """Half-width, in percentage points, of the 95 % Wilson interval of an accuracy measured on
    ``n`` samples: how far the figure could move by the luck of which samples were drawn.
    None when the sample count was not recorded."""
    if acc is None or not n or not math.isfinite(acc):
        return None
    denom = 1 + z * z / n
    half = z * math.sqrt(acc * (1 - acc) / n + z * z / (4 * n * n)) / denom
    return 100 * half


def difference_is_noise(a: float, n_a: int, b: float, n_b: int, z: float = 1.96) -> bool:
    """Whether two accuracies measured on n_a and n_b samples differ by less than sampling noise
    (a 95 % interval of their difference; with no samples recorded, nothing is called noise)."""
    if not n_a or not n_b:
        return False
    p = (a * n_a + b * n_b) / (n_a + n_b)  # pooled: the chance both come from one accuracy
    se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n_a + 1 / n_b))
    return abs(a - b) < z * se
