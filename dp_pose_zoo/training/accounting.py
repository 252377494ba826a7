"""Privacy accounting: a thin, validated layer over Opacus' accountants.

Three accountants are offered, all for the Poisson-subsampled Gaussian
mechanism that DP-SGD and Projected DP-SGD run:

* ``"prv-rel"`` (default): Opacus' ``PRVAccountant`` (Gopi et al. 2021),
  numerical composition of privacy loss random variables, asked for an error
  relative to the epsilon it measures. We report the value its
  ``get_epsilon`` returns, which is ``eps_upper`` from
  ``DiscretePRV.compute_epsilon``: the epsilon found at ``delta - delta_error``
  plus ``eps_error`` (``delta_error=delta/1000``). The discretisation and
  truncation error of the PRV method is bounded by exactly those two error
  terms (Gopi et al., Thm. 5.5) for whatever ``eps_error`` builds the grid, so
  the number is an upper bound on the true epsilon, not the central estimate
  (``eps_estimate``), which could under-state the cost. A first pass at
  ``eps_error=0.01`` measures epsilon; the reported pass uses ``eps_error`` =
  :data:`PRV_REL_EPS_ERROR` x that epsilon (0.3 %). The bound is then at most
  two such errors above the true epsilon (the estimate is within one of it;
  measured: 0.1-0.4 % above dp-accounting's PLD), where a fixed 0.01 is 5 % of
  a 0.2 budget. Of the passes the smallest upper bound is reported (each is sound).
* ``"prv"``: the same accountant at Opacus' fixed ``eps_error=0.01``: what
  checkpoints before ``prv-rel`` recorded, kept so their ledgers recompute to
  the epsilon their cards state.
* ``"rdp"``: Opacus' ``RDPAccountant`` (Mironov et al. 2019, the conversion of
  Balle et al. 2020), for parity with the paper. We evaluate it on a wider set
  of orders than Opacus' default (every integer order up to 256 plus a few
  larger ones) so the bound is not loosened by a too-short order grid.

A ledger records its accountant's name, and a name's arithmetic never changes
(a checkpoint's card is checked by recomputing its epsilon): a tighter method
gets a new name.

Opacus (and so torch) is imported lazily, so validating parameters or reading
a ledger journal stays cheap.
"""

from __future__ import annotations

import functools
import math
import warnings
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable

from ..checks import is_real
from ..errors import PrivacyError

if TYPE_CHECKING:  # pragma: no cover
    from opacus.accountants import IAccountant

ACCOUNTANTS = ("prv-rel", "prv", "rdp")
DEFAULT_ACCOUNTANT = "prv-rel"
_PRV_ACCOUNTANTS = ("prv-rel", "prv")

#: RDP orders: Opacus' default grid (1.1 .. 10.9 in steps of 0.1, 12 .. 63),
#: plus 11 (missing there) and every integer up to 256, plus a few large ones
#: that matter only for very small epsilons.
RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + [11.0] + [float(a) for a in range(12, 257)]
    + [320.0, 384.0, 512.0]
)

#: Relative gap below the target epsilon at which ``noise_for`` stops searching:
#: the sigma it returns spends between (1 - this) * target and target. With prv-rel's
#: own error (under 0.4 % measured) the true epsilon then stays within 1 % of the target.
NOISE_SEARCH_REL_TOL = 0.003

_MAX_SIGMA = 1e6

#: Largest grid the PRV accountant may build. Opacus discretises the privacy loss on
#: 2L / mesh points and holds several float64 arrays of that size (about 170 bytes per
#: point measured: 7.5e6 points took 1.2 GB); 1e6 steps at q = 0.01 need 1.1e8 points.
PRV_MAX_POINTS = 10_000_000
_PRV_BYTES_PER_POINT = 170
#: PRVAccountant.get_epsilon's default eps_error: the ``"prv"`` accountant's, and ``"prv-rel"``'s first pass.
_PRV_EPS_ERROR = 0.01
#: ``"prv-rel"``'s eps_error as a fraction of the epsilon measured. Never change it: ledgers named
#: ``"prv-rel"`` are recomputed with it, and must give the epsilon their cards state.
PRV_REL_EPS_ERROR = 0.003
#: A pass whose eps_error is within this factor of the goal is kept (another would move epsilon by < 0.1 %).
_PRV_REL_SLACK = 1.25
_PRV_REL_MAX_PASSES = 4


# ---------------------------------------------------------------- validation

def check_sample_rate(sample_rate: float) -> None:
    """Refuse a sample rate outside (0, 1]: it is the Poisson inclusion probability."""
    if not is_real(sample_rate) or not (0.0 < sample_rate <= 1.0):
        raise PrivacyError(f"sample_rate={sample_rate!r} is invalid; allowed: 0 < sample_rate <= 1")


def check_steps(steps: int) -> None:
    """Refuse a step count that is not an integer >= 1."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise PrivacyError(f"steps={steps!r} is invalid; allowed: an integer >= 1")


def check_noise_multiplier(noise_multiplier: float) -> None:
    """Refuse sigma <= 0 (no noise means no privacy) or a non-finite sigma."""
    if not is_real(noise_multiplier) or not (0.0 < noise_multiplier < math.inf):
        raise PrivacyError(
            f"noise_multiplier={noise_multiplier!r} is invalid; allowed: a finite noise_multiplier > 0"
        )


def check_delta_range(delta: float) -> None:
    """Refuse a delta outside (0, 1)."""
    if not is_real(delta) or not (0.0 < delta < 1.0):
        raise PrivacyError(f"delta={delta!r} is invalid; allowed: 0 < delta < 1")


def check_epsilon(epsilon: float) -> None:
    """Refuse a target epsilon that is not a finite number > 0."""
    if not is_real(epsilon) or not (0.0 < epsilon < math.inf):
        raise PrivacyError(f"epsilon={epsilon!r} is invalid; allowed: a finite epsilon > 0")


def check_accountant(name: str) -> None:
    """Refuse an accountant name we do not support."""
    if name not in ACCOUNTANTS:
        raise PrivacyError(f"accountant={name!r} is unknown; allowed: {', '.join(ACCOUNTANTS)}")


def check_delta(delta: float, num_private: int) -> None:
    """Refuse ``delta >= 1/N``: such a delta allows leaking one of N people outright.

    ``num_private`` is N, the number of privacy units (annotated people) in the
    private training set.
    """
    check_delta_range(delta)
    if not isinstance(num_private, int) or isinstance(num_private, bool) or num_private < 1:
        raise PrivacyError(f"num_private={num_private!r} is invalid; allowed: an integer N >= 1")
    if not delta < 1.0 / num_private:
        raise PrivacyError(
            f"delta={delta!r} is too large for N={num_private} private people; "
            f"allowed: delta < 1/N = {1.0 / num_private:.6g}"
        )


def _check_entry(noise_multiplier: float, sample_rate: float, steps: int) -> None:
    check_noise_multiplier(noise_multiplier)
    check_sample_rate(sample_rate)
    check_steps(steps)


# ---------------------------------------------------------------- accountants

@functools.lru_cache(maxsize=1)
def _rdp_class() -> type:
    """Opacus' RDP accountant evaluated on :data:`RDP_ORDERS` by default."""
    from opacus.accountants import RDPAccountant

    class WideOrderRDPAccountant(RDPAccountant):
        """``RDPAccountant`` whose default order grid is :data:`RDP_ORDERS`."""

        DEFAULT_ALPHAS = list(RDP_ORDERS)

    return WideOrderRDPAccountant


@functools.lru_cache(maxsize=1)
def _prv_rel_class() -> type:
    """Opacus' PRV accountant reporting at an eps_error relative to epsilon (``"prv-rel"``)."""
    from opacus.accountants import PRVAccountant

    class RelativeErrorPRVAccountant(PRVAccountant):
        """``PRVAccountant`` whose ``get_epsilon`` runs :func:`_relative_prv_epsilon`."""

        def get_epsilon(self, delta: float, **kwargs) -> float:
            if kwargs:
                raise TypeError(f"the prv-rel accountant chooses its own error terms; got {sorted(kwargs)}")
            return _relative_prv_epsilon(self, delta)

        @classmethod
        def mechanism(cls) -> str:
            return "prv-rel"

    return RelativeErrorPRVAccountant


def make_accountant(name: str) -> "IAccountant":
    """A fresh Opacus accountant: ``PRVAccountant`` (``"prv-rel"``, ``"prv"``) or the wide-order ``RDPAccountant``.

    Its ``get_epsilon(delta)`` gives the same numbers as :func:`epsilon_for`.
    """
    check_accountant(name)
    if name == "rdp":
        return _rdp_class()()
    if name == "prv-rel":
        return _prv_rel_class()()
    from opacus.accountants import PRVAccountant

    return PRVAccountant()


def epsilon_for_history(
    history: Iterable[tuple[float, float, int]], *, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """Epsilon of a composition of Poisson-subsampled Gaussian phases.

    ``history`` is what Opacus accountants keep: ``(noise_multiplier,
    sample_rate, steps)`` per phase; the accountants compose the phases
    (RDP by summing the per-order curves, PRV by convolving the PRVs). An
    empty history has spent nothing: 0.0.
    """
    check_accountant(accountant)
    check_delta_range(delta)
    entries = [tuple(e) for e in history]
    for entry in entries:
        if len(entry) != 3:
            raise PrivacyError(f"history entry {entry!r} is malformed; allowed: (noise_multiplier, sample_rate, steps)")
        _check_entry(*entry)
    if not entries:
        return 0.0
    if accountant in _PRV_ACCOUNTANTS:
        _check_prv_grid(entries, delta)
    acc = make_accountant(accountant)
    acc.history = [(float(s), float(q), int(t)) for s, q, t in entries]
    return _get_epsilon(acc, delta)


def _prv_grid_points(history: list[tuple], delta: float, eps_error: float) -> float:
    """Points of the grid ``PRVAccountant._get_domain`` builds for ``eps_error``.

    Half-width L from ``compute_safe_domain_size`` (``max(L_rdp, eps_error) + 3``: it does not
    grow as eps_error shrinks below L_rdp), mesh ``eps_error / sqrt(T log(12 / delta_error) / 2)``.
    """
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size

    steps = [int(t) for _, _, t in history]
    delta_error = delta / 1000
    with warnings.catch_warnings():
        # Its RDP bound may sit at the edge of Opacus' order grid: a looser L is a larger grid, still sound.
        warnings.simplefilter("ignore")
        half_width = compute_safe_domain_size(
            prvs=[PoissonSubsampledGaussianPRV(float(q), float(s)) for s, q, _ in history],
            max_self_compositions=steps, eps_error=eps_error, delta_error=delta_error)
    mesh = eps_error / math.sqrt(sum(steps) * math.log(12 / delta_error) / 2)
    return 2 * half_width / mesh


def _check_prv_grid(history: list[tuple], delta: float) -> None:
    """Refuse a history whose PRV grid at eps_error 0.01 would not fit in memory, before Opacus allocates it."""
    points = _prv_grid_points(history, delta, _PRV_EPS_ERROR)
    if points > PRV_MAX_POINTS:
        gigabytes = points * _PRV_BYTES_PER_POINT / 1e9
        steps = sum(int(t) for _, _, t in history)
        raise PrivacyError(
            f"the PRV accountant would need a grid of {points:.3g} points (about {gigabytes:,.0f} GB of memory) for "
            f"{steps} steps; use the RDP accountant for a history this long (--accountant rdp)")


def _finest_prv_eps_error(history: list[tuple], delta: float) -> float:
    """The smallest eps_error whose PRV grid fits in :data:`PRV_MAX_POINTS` (points scale as 1 / eps_error).

    Four points are kept spare: ``Domain.create_aligned`` rounds both ends outwards and makes the size even.
    """
    return _PRV_EPS_ERROR * _prv_grid_points(history, delta, _PRV_EPS_ERROR) / (PRV_MAX_POINTS - 4)


def _relative_prv_epsilon(acc: "IAccountant", delta: float) -> float:
    """``"prv-rel"``: PRV's upper bound at an eps_error of :data:`PRV_REL_EPS_ERROR` x epsilon.

    Epsilon is not known before it is measured, so the first pass runs at Opacus' 0.01 and each
    next pass at 0.3 % of the bound the last one gave, until the error used is at most 1.25 x
    0.3 % of its own bound (two passes at epsilon 0.2 or 1; one at 8, where 0.01 is small enough).
    Where memory allows no grid that fine, the finest one that fits is used. Every pass gives a
    sound upper bound; the smallest is returned.
    """
    from opacus.accountants import PRVAccountant

    eps_error = _PRV_EPS_ERROR
    best = PRVAccountant.get_epsilon(acc, delta, eps_error=eps_error)
    for _ in range(_PRV_REL_MAX_PASSES):
        wanted = PRV_REL_EPS_ERROR * best
        if eps_error <= _PRV_REL_SLACK * wanted:
            break
        finer = max(wanted, _finest_prv_eps_error(acc.history, delta))
        if finer >= eps_error:
            break  # memory allows no finer grid
        eps_error = finer
        best = min(best, PRVAccountant.get_epsilon(acc, delta, eps_error=eps_error))
    return best


def _get_epsilon(acc: "IAccountant", delta: float) -> float:
    """Ask the accountant, turning its numerical failures into a PrivacyError.

    Opacus warns when the best RDP order is at the edge of the grid (the bound
    is then valid but looser) and numpy warns on log(0) for q = 1 in the PRV;
    neither changes the validity of the number, so both are silenced here.
    """
    import numpy as np

    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            warnings.simplefilter("ignore")
            eps = float(acc.get_epsilon(delta=delta))
    except (ValueError, RuntimeError, OverflowError) as e:
        raise PrivacyError(f"the {acc.mechanism()} accountant cannot compute epsilon here ({e})") from e
    if math.isnan(eps):
        raise PrivacyError(f"the {acc.mechanism()} accountant returned NaN for history {acc.history!r}")
    return eps


def epsilon_for(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = DEFAULT_ACCOUNTANT
) -> float:
    """Epsilon (an upper bound, see the module docstring) spent by ``steps`` DP-SGD steps."""
    _check_entry(noise_multiplier, sample_rate, steps)
    return epsilon_for_history([(noise_multiplier, sample_rate, steps)], delta=delta, accountant=accountant)


def steps_for(*, epochs: float | Fraction, sample_rate: float | Fraction) -> int:
    """DP steps in ``epochs`` epochs at Poisson rate q: ceil(epochs / q), computed exactly.

    One definition for planning (``dp-pose privacy --epochs``) and training (the
    trainer's schedule), so a plan predicts exactly the steps a run spends
    (3 epochs at q = 0.1 is 30 steps, not 31).
    """
    e = epochs if isinstance(epochs, Fraction) else Fraction(repr(float(epochs)))
    q = sample_rate if isinstance(sample_rate, Fraction) else Fraction(repr(float(sample_rate)))
    return max(1, math.ceil(e / q))


# ---------------------------------------------------------------- calibration

def noise_for(*, epsilon: float, delta: float, sample_rate: float, steps: int,
              accountant: str = DEFAULT_ACCOUNTANT) -> float:
    """The noise multiplier whose spent epsilon is <= ``epsilon`` and close to it.

    A bracketed search (bisection guided by interpolation) on :func:`epsilon_for` (Opacus' ``get_noise_multiplier`` stops
    at an absolute tolerance of 0.01, too loose for epsilon 0.2). The result is
    then verified: if re-accounting it exceeds the target, sigma is raised
    until it does not, so the returned sigma never over-spends the budget.
    """
    check_epsilon(epsilon)
    check_delta_range(delta)
    check_sample_rate(sample_rate)
    check_steps(steps)
    check_accountant(accountant)

    def eps_at(sigma: float) -> float:
        return epsilon_for(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta,
                           accountant=accountant)

    start = None
    if accountant in _PRV_ACCOUNTANTS:
        # The PRV accountant is slow for small sigma: start from the RDP answer,
        # which is close above the PRV one, so the bracket search stays short.
        start = noise_for(epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=steps, accountant="rdp")
    low, eps_low, high, eps_high = _bracket(eps_at, epsilon, start=start)
    sigma = _bisect(eps_at, epsilon, low, eps_low, high, eps_high)
    return _verify(eps_at, epsilon, sigma)


def _bracket(eps_at, target: float, *, start: float | None) -> tuple[float, float, float, float]:
    """Find ``low < high`` with eps(low) > target >= eps(high); ``low`` may be 0 (eps inf)."""
    high = start if start is not None else 1.0
    eps_high = eps_at(high)
    while eps_high > target:
        high *= 2.0
        if high > _MAX_SIGMA:
            raise PrivacyError(f"epsilon={target!r} is unreachable: even noise_multiplier={_MAX_SIGMA:g} spends more")
        eps_high = eps_at(high)
    factor = 0.95 if start is not None else 0.5
    low = high * factor
    while True:
        if low < 1e-3:
            return 0.0, math.inf, high, eps_high
        eps_low = eps_at(low)
        if eps_low > target:
            return low, eps_low, high, eps_high
        high, eps_high = low, eps_low
        low *= factor


def _next_guess(target: float, low: float, eps_low: float, high: float, eps_high: float) -> float:
    """Interpolate log(eps) against log(sigma) (eps is close to a power law in sigma),
    aiming just under the target, clamped so the bracket shrinks by >= 10% a step."""
    width = high - low
    lo_clamp, hi_clamp = low + 0.1 * width, high - 0.1 * width
    if low <= 0.0 or not math.isfinite(eps_low) or eps_high <= 0.0:
        return (low + high) / 2.0
    aim = target * (1.0 - NOISE_SEARCH_REL_TOL / 2.0)
    slope = (math.log(eps_high) - math.log(eps_low)) / (math.log(high) - math.log(low))
    if slope >= 0.0:
        return (low + high) / 2.0
    guess = math.exp(math.log(low) + (math.log(aim) - math.log(eps_low)) / slope)
    return min(max(guess, lo_clamp), hi_clamp)


def _bisect(eps_at, target: float, low: float, eps_low: float, high: float, eps_high: float) -> float:
    """Shrink ``[low, high]`` keeping eps(high) <= target until eps(high) is within tolerance."""
    for _ in range(200):
        if eps_high >= target * (1.0 - NOISE_SEARCH_REL_TOL) or (high - low) <= 1e-9 * high:
            break
        mid = _next_guess(target, low, eps_low, high, eps_high)
        eps_mid = eps_at(mid)
        if eps_mid <= target:
            high, eps_high = mid, eps_mid
        else:
            low, eps_low = mid, eps_mid
    return high


def _verify(eps_at, target: float, sigma: float) -> float:
    """Re-account ``sigma``; raise it by small factors until eps(sigma) <= target."""
    for _ in range(1000):
        if eps_at(sigma) <= target:
            return sigma
        sigma *= 1.0 + 1e-4
    raise PrivacyError(f"could not calibrate a noise multiplier for epsilon={target!r}")  # pragma: no cover
