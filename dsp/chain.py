"""The estimator chain over grid-aligned blocks: E1/E2/E3, yield, uncertainty, stability, alarms.

Call :func:`init_state` once, then :func:`process_block` per block in time order. The state is
a :class:`ChainState` of plain numpy arrays that ``process_block`` updates in place and also
returns (so ``state = process_block(...)[1]`` reads naturally); copy it with
:meth:`ChainState.copy` to fork a run. Blocks of any size give bit-identical results to one pass
(window positions depend only on the absolute grid index). Physics and conventions are in the
docstrings of :mod:`dsp.kernel` and :mod:`dsp.params`; the stability index is the minimum of
per-mechanism scores in [0, 1] (deposition margin, CV of flow / density / torque, oscillation
severity = band share x min(amplitude / osc_amp_bad_bar, 1), discharge-pressure rise while
injection holds, flow-ratio deviation), because any one
failing mechanism can stop the lift and an average would hide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from . import kernel as K
from . import seawater
from .alarms import AlarmEvent, events_from_bits
from .kernel import ChainState
from .params import (
    ALARM_NAMES,
    INPUT_RANGES,
    OPTIONAL_ROLES,
    POWER_ROLES,
    REF_MAX_S,
    ROLES,
    ChainParams,
    kernel_params,
    kernel_tables,
)
from .quality import BAD
from .spectrum import osc_init

ASSAY_CAPACITY = 256  # newest assays kept; older ones no longer apply to future grid points
REF_CAPACITY = 64  # newest commanded seawater references kept (only the newest can start)


@dataclass(frozen=True)
class Block:
    """One grid-aligned block: ``values[ROLES[r]]`` and ``quality[ROLES[r]]`` per role.

    ``assay_*`` are lab assays (sampling time, REY ppm dry basis, standard uncertainty) known
    when this block is processed; repeats of assays given earlier are ignored.
    """

    t_ns: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]
    quality: dict[str, NDArray[np.uint8]]
    assay_t_ns: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    assay_rey_ppm: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    assay_u_rey_ppm: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    #: operator-commanded seawater references known now: window start and end (ns)
    ref_t_ns: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_end_ns: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True)
class ChainResult:
    """Per grid point results (float64, units in names) and alarm events of one block.

    ``ms_e2_kg_s`` is already shifted by the transit time (``transit_s``), so it lines up
    with E1. ``cum_*`` and ``gap_s`` are totals since :func:`init_state`. ``q_yield`` applies to
    rates, ``q_cumulative`` to totals (UNCERTAIN once any gap was not integrated),
    ``q_stability`` to the stability group. ``alarm_bits`` bit k is ``ALARM_NAMES[k]``.
    """

    t_ns: NDArray[np.int64]
    data: NDArray[np.float64]  # [len(OUTPUT_FIELDS), n]
    qual: NDArray[np.uint8]  # [len(QUALITY_FIELDS), n]
    alarm_bits: NDArray[np.uint8]
    events: list[AlarmEvent]

    def __getitem__(self, name: str) -> NDArray[np.float64]:
        return self.data[K.OUTPUT_FIELDS.index(name)]

    def quality(self, name: str) -> NDArray[np.uint8]:
        return self.qual[K.QUALITY_FIELDS.index(name)]

    def as_dict(self) -> dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]]:
        d: dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]] = {
            "t_ns": self.t_ns
        }
        d.update({k: self.data[i] for i, k in enumerate(K.OUTPUT_FIELDS)})
        d.update({k: self.qual[i] for i, k in enumerate(K.QUALITY_FIELDS)})
        d["alarm_bits"] = self.alarm_bits
        return d


OUTPUT_FIELDS = K.OUTPUT_FIELDS
QUALITY_FIELDS = K.QUALITY_FIELDS


def init_state(params: ChainParams) -> ChainState:
    p = params
    kp = kernel_params(p)
    osc = osc_init(p.osc_n_fft)
    n_alarm = len(ALARM_NAMES)
    scalars = np.zeros(1, K.SCALARS)
    for name in K.SCALARS_NAN:
        scalars[name] = np.nan
    scalars["grade_id"] = -1
    scalars["stop_t_ns"] = np.iinfo(np.int64).min // 2
    scalars["ref_last"] = np.iinfo(np.int64).min // 2
    return ChainState(
        scalars=scalars,
        cmp_sum=np.zeros(K.N_COMPARED),
        cmp_cnt=np.zeros(K.N_COMPARED, np.int64),
        acc_sys=np.zeros(2 * K.N_SYS),
        last_sys=np.zeros(2 * K.N_SYS),
        h_ring=np.full((3, p.hampel_window), np.nan),
        h_srt=np.zeros((3, p.hampel_window)),
        h_cnt=np.zeros(3, np.int64),
        a_ring=np.full((4, kp.cv_points), np.nan),
        a_cnt=np.zeros(4, np.int64),
        a_mom=np.zeros((4, 3)),
        b_ring=np.full((4, kp.compare_lanes), np.nan),
        b_cnt=np.zeros(4, np.int64),
        b_mom=np.zeros((4, 3)),
        hist=np.full((K.H_N, p.points(p.max_transit_s)), np.nan),
        lane=np.full((K.L_N, kp.slope_lanes), np.nan),
        z_ring=np.full(kp.zero_stretch_lanes, np.nan),
        o_ring=osc.ring,
        o_si=osc.si,
        o_sf=osc.sf,
        tab=osc.tab,
        rev=osc.rev,
        win=osc.win,
        o_y=osc.y,
        o_z=osc.z,
        al_active=np.zeros(n_alarm, np.uint8),
        al_pending=np.full(n_alarm, -1, np.int64),
        assay_t=np.zeros(0, np.int64),
        assay_g=np.zeros(0),
        assay_u=np.zeros(0),
        rejected=np.zeros(len(ROLES) + len(OPTIONAL_ROLES), np.int64),
        ref_t=np.zeros(0, np.int64),
        ref_e=np.zeros(0, np.int64),
        r_ring=np.full(round(REF_MAX_S), np.nan),
    )


def _merge_refs(state: ChainState, t: NDArray[np.int64], e: NDArray[np.int64]) -> ChainState:
    """Commanded seawater references, by start; a repeat of a start already known is one."""
    t = np.asarray(t, np.int64)
    e = np.asarray(e, np.int64)
    if t.shape != e.shape:
        raise ValueError(f"reference arrays differ in length: {t.shape}, {e.shape}")
    if t.size == 0:
        return state
    all_t = np.concatenate((state.ref_t, t))
    all_e = np.concatenate((state.ref_e, e))
    all_t, first = np.unique(all_t, return_index=True)
    all_e = all_e[first]
    return state._replace(ref_t=all_t[-REF_CAPACITY:], ref_e=all_e[-REF_CAPACITY:])


def _merge_assays(
    state: ChainState, t: NDArray[np.int64], g: NDArray[np.float64], u: NDArray[np.float64]
) -> ChainState:
    t = np.asarray(t, np.int64)
    g = np.asarray(g, np.float64)
    u = np.asarray(u, np.float64)
    if not t.shape == g.shape == u.shape:
        raise ValueError(f"assay arrays differ in length: {t.shape}, {g.shape}, {u.shape}")
    ok = np.isfinite(g) & np.isfinite(u) & (g >= 0) & (u >= 0)
    if t.size == 0 or not ok.any():
        return state
    all_t = np.concatenate((state.assay_t, t[ok]))
    all_g = np.concatenate((state.assay_g, g[ok]))
    all_u = np.concatenate((state.assay_u, u[ok]))
    # stable sort keeps the earlier-known assay first; the last of equal times wins (a re-post
    # of a corrected result replaces the old one)
    order = np.argsort(all_t, kind="stable")
    all_t, all_g, all_u = all_t[order], all_g[order], all_u[order]
    keep = np.ones(all_t.shape[0], bool)
    keep[:-1] = all_t[1:] != all_t[:-1]
    all_t, all_g, all_u = all_t[keep], all_g[keep], all_u[keep]
    all_t = all_t[-ASSAY_CAPACITY:]
    all_g = all_g[-ASSAY_CAPACITY:]
    all_u = all_u[-ASSAY_CAPACITY:]
    return state._replace(assay_t=all_t, assay_g=all_g, assay_u=all_u)


def grade_u_between(g: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Assay uncertainty including how much the grade moves until the next assay.

    From the history up to each assay: the mean square of successive differences beyond what
    the lab's own errors explain, over 3 (the mean of a random walk over a period differs
    from its start by a third of the variance of the change over the period).
    """
    if g.shape[0] < 2:
        return u
    d2 = np.diff(g) ** 2 - (u[1:] ** 2 + u[:-1] ** 2)
    mean_excess = np.cumsum(d2) / np.arange(1, g.shape[0])
    extra = np.concatenate(([0.0], np.maximum(mean_excess, 0.0) / 3.0))
    return np.sqrt(u * u + extra)


def _columns(
    block: Block, rejected: NDArray[np.int64]
) -> tuple[NDArray[np.int64], tuple[NDArray[np.float64], ...], tuple[NDArray[np.uint8], ...]]:
    """Contiguous role arrays; non-finite or absurd GOOD/UNCERTAIN values become BAD here,
    before any filter sees them (counted per role in ``rejected``)."""
    t = np.ascontiguousarray(block.t_ns, dtype=np.int64)
    n = t.shape[0]
    vals = []
    qual = []
    for r, name in enumerate(ROLES + OPTIONAL_ROLES):
        try:
            v = np.ascontiguousarray(block.values[name], dtype=np.float64)
            q = np.ascontiguousarray(block.quality[name], dtype=np.uint8)
        except KeyError:
            if name in OPTIONAL_ROLES:
                v, q = np.full(n, np.nan), np.full(n, BAD, np.uint8)
            else:
                raise ValueError(f"block lacks role {name!r}") from None
        if v.shape != (n,) or q.shape != (n,):
            raise ValueError(f"role {name!r} has shape {v.shape}/{q.shape}, expected ({n},)")
        lo, hi = INPUT_RANGES[name]
        invalid = (q < BAD) & ~((v >= lo) & (v <= hi))  # NaN and +-inf fail the range too
        if invalid.any():
            # NaN is a missing value (nothing aligned yet): BAD without a complaint
            rejected[r] += int((invalid & ~np.isnan(v)).sum())
            q = np.where(invalid, BAD, q).astype(np.uint8)
        vals.append(v)
        qual.append(q)
    return t, tuple(vals), tuple(qual)


def _power(
    block: Block, vals: tuple[NDArray[np.float64], ...], qual: tuple[NDArray[np.uint8], ...]
) -> NDArray[np.float64]:
    """The drives' shaft power (kW): the sum of the power roles the block carries, NaN where
    any of them is BAD (or everywhere, when it carries none)."""
    n = block.t_ns.shape[0]
    names = ROLES + OPTIONAL_ROLES
    present = [names.index(r) for r in POWER_ROLES if r in block.values]
    if not present:
        return np.full(n, np.nan)
    total = np.zeros(n)
    for r in present:
        total += np.where(qual[r] < BAD, vals[r], np.nan)
    return total


def seawater_deck(
    params: ChainParams, t_deck: NDArray[np.float64], p_line_bar: NDArray[np.float64]
) -> NDArray[np.float64]:
    """rho_w per grid point: TEOS-10 at the deck temperature and line pressure (or constant)."""
    if not params.teos10:
        return np.full(t_deck.shape[0], params.rho_w)
    return seawater.deck_density(
        params.salinity_g_kg, t_deck, p_line_bar, params.t_deck_c, params.p_deck_bar
    )


def process_block(
    params: ChainParams, state: ChainState, block: Block
) -> tuple[ChainResult, ChainState]:
    """Run the chain over one block; ``state`` is updated in place and returned."""
    t, vals, qual = _columns(block, state.rejected)
    if t.shape[0] > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("block t_ns must be strictly increasing")
    state = _merge_assays(state, block.assay_t_ns, block.assay_rey_ppm, block.assay_u_rey_ppm)
    state = _merge_refs(state, block.ref_t_ns, block.ref_end_ns)
    kp = kernel_params(params)
    i_deck = len(ROLES) + OPTIONAL_ROLES.index("t_deck_c")
    t_deck = np.where(qual[i_deck] < BAD, vals[i_deck], np.nan)
    power = _power(block, vals, qual)
    i_line = ROLES.index("p_return_deck_bar")
    p_line = np.where(qual[i_line] < BAD, vals[i_line], np.nan)
    rho_w = seawater_deck(params, t_deck, p_line)
    vals, qual = vals[: len(ROLES)], qual[: len(ROLES)]
    n = t.shape[0]
    out = np.empty((K.O_N, n))
    oq = np.empty((K.Q_N, n), np.uint8)
    bits = np.empty(n, np.uint8)
    prev_bits = int(state.scalars["alarm_bits"][0])
    K.chain_kernel(
        t,
        vals,
        qual,
        rho_w,
        power,
        kp,
        kernel_tables(params),
        state.assay_t,
        state.assay_g,
        grade_u_between(state.assay_g, state.assay_u),
        state,
        out,
        oq,
        bits,
    )
    if n:
        state.scalars["alarm_bits"] = int(bits[-1])
    alarm_rows = (K.O_MARGIN, K.O_OSC_SEV, K.O_PLUG, K.O_CVT, K.O_FIZ, K.O_Z)
    events = events_from_bits(ALARM_NAMES, t, bits, out, prev_bits, alarm_rows)
    return ChainResult(t, out, oq, bits, events), state
