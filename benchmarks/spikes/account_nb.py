"""Prototype (a): the account loop as one numba function over a range of clock steps, in
the manner of vectorbt's ``portfolio/nb.py``: the account as arrays over symbols, every
record written into preallocated structured arrays, no Python object per step.

``run_chunk`` runs steps ``[t0, t1)`` of the clock and leaves the account arrays where the
next chunk starts, so a replay streams: chunk by chunk, each chunk's records written out
and the arrays reused (memory flat in bars). The rules are those of
``research_lib.session.Session._step`` / ``_plan`` / ``_execute``, ``research_lib.risk``
and ``research_lib.broker`` for a rule baseline; what is left out is listed in README.md.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .inputs import (
    A_CASH,
    A_DAY,
    A_DSE,
    A_LAST_EQUITY,
    A_NBOOK,
    A_PEAK,
    A_SEQ,
    A_STATE,
    ACTIVE,
    B_DAILY_LOSS,
    B_DRAWDOWN,
    C_CASH_CLIPPED,
    C_GROSS_CLIPPED,
    C_REDUCING_CLIPPED,
    C_TARGET_CLIPPED,
    C_TRIMMED,
    D_BAD_QTY,
    D_BUYING_POWER,
    D_HALTED_ONLY,
    D_MAX_GROSS,
    D_MAX_POSITION,
    D_NO_EQUITY,
    D_NO_PRICE,
    D_PRICE_BAND,
    D_REDUCING_ONLY,
    D_SHORT,
    HALTED,
    J_INSUFFICIENT_CASH,
    J_PRICE_BAND_AT_FILL,
    K_BREACH,
    K_CLIP,
    K_DENIAL,
    K_REJECTION,
    N_DEC,
    N_EQ,
    N_FILL,
    N_ORD,
    N_POS,
    N_RISK,
    N_STATE,
    O_FLATTEN,
    O_SIGNAL,
    O_TRIM,
    P_ALLOW_SHORT,
    P_BAND,
    P_BUFFER,
    P_COMM_BPS,
    P_DAILY_LOSS,
    P_LONG_THR,
    P_LOT,
    P_MAX_DD,
    P_MAX_GROSS,
    P_MAX_POS,
    P_PER_SHARE,
    P_REBALANCE,
    P_SHORT_THR,
    P_SLIP,
    P_TARGET_W,
    R_BAND,
    R_CLIPPED_TO_ZERO,
    R_NONE,
    R_WARMUP,
    REDUCING,
    S_BREAKER_CLEAR,
    S_BREAKER_TRIP,
    S_NEW_DAY,
    V_DENIED,
    V_HALTED,
    V_HOLD,
    V_NO_PRICE,
    V_NO_SIGNAL,
    V_SUBMITTED,
)

EPS = 1e-9


@njit(cache=True)
def round_qty(q: float, lot: float) -> float:
    """``research_lib.broker.round_qty``: toward zero, to whole units (lot 0) or lots."""
    if not math.isfinite(q):
        return 0.0
    step = 1.0 if lot == 0.0 else lot
    n = math.floor(abs(q) / step + 1e-9)
    r = round(n * step, 10)
    return r if q >= 0 else -r


@njit(cache=True)
def _risk(risk, counts, step, i, kind, code, a, b):
    k = counts[N_RISK]
    risk[k]["step"] = step
    risk[k]["symbol"] = i
    risk[k]["kind"] = kind
    risk[k]["code"] = code
    risk[k]["a"] = a
    risk[k]["b"] = b
    counts[N_RISK] = k + 1


@njit(cache=True)
def _state(st, counts, step, scope, frm, to, code, equity, peak):
    k = counts[N_STATE]
    st[k]["step"] = step
    st[k]["scope"] = scope
    st[k]["from_state"] = frm
    st[k]["to_state"] = to
    st[k]["code"] = code
    st[k]["equity"] = equity
    st[k]["peak"] = peak
    counts[N_STATE] = k + 1


@njit(cache=True)
def _rate(prm, crypto, price):
    r = (prm[P_SLIP] + prm[P_COMM_BPS]) / 1e4
    if not crypto and price > 0:
        r += prm[P_PER_SHARE] / price
    return r


@njit(cache=True)
def run_chunk(t0, t1, w, FILLP, C, HAS, P, DAY, CRYPTO, prm,
              acct, qty, avg, realized, fees, last, prev, breaker, book,
              o_qty, o_dp, o_step, o_seq,
              s_cur, s_tq, s_target, s_prob, s_kind, s_verdict, s_reason, s_dqty, s_cand,
              s_order,
              eq, pos, dec, ords, fills, risk, st, counts):
    """Steps ``[t0, t1)`` of the clock (step number = t - w). Returns 0."""
    N = C.shape[1]
    slip = prm[P_SLIP] / 1e4
    max_pos, lev = prm[P_MAX_POS], prm[P_MAX_GROSS]
    band = prm[P_BAND]
    allow_short = prm[P_ALLOW_SHORT] != 0.0
    lot_c = prm[P_LOT]
    for t in range(t0, t1):
        step = t - w
        # -- a new session day: its start equity, REDUCING lifts (RiskEngine.start_day)
        if DAY[t] > acct[A_DAY]:
            acct[A_DAY] = DAY[t]
            acct[A_DSE] = acct[A_LAST_EQUITY]
            if not math.isfinite(acct[A_PEAK]):
                acct[A_PEAK] = acct[A_LAST_EQUITY]
            if acct[A_STATE] == REDUCING:
                acct[A_STATE] = ACTIVE
                _state(st, counts, step, -1, REDUCING, ACTIVE, S_NEW_DAY,
                       acct[A_LAST_EQUITY], acct[A_PEAK])
        # -- fills of open orders at this bar's fill price, in submission order
        nf = 0
        for j in range(N):
            if o_qty[j] != 0.0 and HAS[t, j]:
                base = FILLP[t, j]
                if math.isfinite(base) and base > 0:
                    s_order[nf] = j
                    nf += 1
        if nf > 1:  # insertion sort by sequence (a handful of orders)
            for a in range(1, nf):
                x = s_order[a]
                b = a - 1
                while b >= 0 and o_seq[s_order[b]] > o_seq[x]:
                    s_order[b + 1] = s_order[b]
                    b -= 1
                s_order[b + 1] = x
        for k in range(nf):
            j = s_order[k]
            q = o_qty[j]
            base = FILLP[t, j]
            o_qty[j] = 0.0
            move = base / o_dp[j] - 1.0
            if abs(move) > band + 1e-9:
                _risk(risk, counts, step, j, K_REJECTION, J_PRICE_BAND_AT_FILL, move, base)
                continue
            price = base * (1.0 + slip) if q > 0 else base * (1.0 - slip)
            commission = abs(q) * price * prm[P_COMM_BPS] / 1e4
            if not CRYPTO[j]:
                commission += abs(q) * prm[P_PER_SHARE]
            cash_delta = -(q * price) - commission
            if q > 0 and acct[A_CASH] + cash_delta < 0:
                _risk(risk, counts, step, j, K_REJECTION, J_INSUFFICIENT_CASH, -cash_delta,
                      acct[A_CASH])
                continue
            m = counts[N_FILL]
            fills[m]["step"] = step
            fills[m]["symbol"] = j
            fills[m]["order_step"] = o_step[j]
            fills[m]["qty"] = q
            fills[m]["price"] = price
            fills[m]["base_price"] = base
            fills[m]["commission"] = commission
            fills[m]["cash_delta"] = cash_delta
            counts[N_FILL] = m + 1
            acct[A_CASH] += cash_delta
            # Position.apply
            q0 = qty[j]
            if q0 == 0.0:  # first fill of the symbol: it joins the book (the broker's dict)
                seen = False
                for b in range(int(acct[A_NBOOK])):
                    if book[b] == j:
                        seen = True
                        break
                if not seen:
                    book[int(acct[A_NBOOK])] = j
                    acct[A_NBOOK] += 1
            q1 = round(q0 + q, 10)
            if q0 == 0.0 or (q0 > 0) == (q > 0):
                avg[j] = (q0 * avg[j] + q * price) / q1 if q1 != 0 else 0.0
            else:
                closed = min(abs(q), abs(q0))
                realized[j] += closed * (price - avg[j]) * (1.0 if q0 > 0 else -1.0)
                if q1 == 0:
                    avg[j] = 0.0
                elif (q1 > 0) != (q0 > 0):
                    avg[j] = price
            qty[j] = q1
            fees[j] += commission
        # -- prices known now
        for j in range(N):
            if HAS[t, j]:
                prev[j] = last[j]
                last[j] = C[t, j]
        # -- mark, in the broker's order (first fill first)
        net = 0.0
        gross = 0.0
        for b in range(int(acct[A_NBOOK])):
            j = book[b]
            if qty[j] != 0.0:
                v = qty[j] * last[j]
                gross += abs(v)
                net += v
        cash = acct[A_CASH]
        equity = cash + net
        # -- latches (RiskEngine.on_mark)
        if math.isfinite(equity) and (not math.isfinite(acct[A_PEAK]) or equity > acct[A_PEAK]):
            acct[A_PEAK] = equity
        peak = acct[A_PEAK]
        state = int(acct[A_STATE])
        latched = False
        if state != HALTED and math.isfinite(equity) and math.isfinite(peak) and peak > 0:
            dd = 1.0 - equity / peak
            if dd >= prm[P_MAX_DD] - EPS:
                _state(st, counts, step, -1, state, HALTED, B_DRAWDOWN, equity, peak)
                _risk(risk, counts, step, -1, K_BREACH, B_DRAWDOWN, dd, peak)
                state = HALTED
                latched = True
        if not latched and state == ACTIVE:
            dse = acct[A_DSE]
            if math.isfinite(equity) and math.isfinite(dse) and dse > 0:
                loss = 1.0 - equity / dse
                if loss >= prm[P_DAILY_LOSS] - EPS:
                    _state(st, counts, step, -1, ACTIVE, REDUCING, B_DAILY_LOSS, equity, peak)
                    _risk(risk, counts, step, -1, K_BREACH, B_DAILY_LOSS, loss, dse)
                    state = REDUCING
        acct[A_STATE] = state
        # -- per-symbol breakers (RiskEngine.observe_price)
        for j in range(N):
            if HAS[t, j]:
                ref = prev[j]
                trip = False
                if math.isfinite(ref) and ref > 0:
                    trip = abs(last[j] / ref - 1.0) > band + EPS
                if trip and not breaker[j]:
                    breaker[j] = True
                    _state(st, counts, step, j, ACTIVE, HALTED, S_BREAKER_TRIP, last[j], ref)
                elif not trip and breaker[j]:
                    breaker[j] = False
                    _state(st, counts, step, j, HALTED, ACTIVE, S_BREAKER_CLEAR, last[j], ref)
        # -- candidates: symbols with a bar; held or pending ones over the limit (all when
        #    HALTED); projected cash and gross
        nc = 0
        pend_buy = 0.0
        # the open orders' cost, summed in submission order (at most one per symbol)
        npend = 0
        for j in range(N):
            if o_qty[j] != 0.0:
                s_order[npend] = j
                npend += 1
        if npend > 1:
            for a in range(1, npend):
                x = s_order[a]
                b = a - 1
                while b >= 0 and o_seq[s_order[b]] > o_seq[x]:
                    s_order[b + 1] = s_order[b]
                    b -= 1
                s_order[b + 1] = x
        for k in range(npend):
            j = s_order[k]
            if o_qty[j] > 0:
                dp = o_dp[j]
                pend_buy += o_qty[j] * dp * (1.0 + _rate(prm, CRYPTO[j], dp))
        proj_cash = cash - pend_buy
        proj_gross = 0.0
        for j in range(N):
            cur = qty[j] + o_qty[j]
            s_cur[j] = cur
            if qty[j] != 0.0 or o_qty[j] != 0.0:
                proj_gross += abs(cur * last[j])
            cand = HAS[t, j]
            # SIMPLIFIED: a symbol whose order is still open (no bar since) gets no second
            # order; research_lib would add one (a trim or a flatten while its market is shut)
            if not cand and qty[j] != 0.0 and o_qty[j] == 0.0:
                if state == HALTED:
                    cand = True
                else:
                    price = last[j]
                    if math.isfinite(price) and price > 0 and equity > 0:
                        cand = abs(cur * price / equity) > max_pos + EPS
            if cand:
                s_cand[nc] = j
                nc += 1
        # -- plans (Session._plan)
        for k in range(nc):
            i = s_cand[k]
            price = last[i]
            cur = s_cur[i]
            prob = P[t, i] if state != HALTED else np.nan
            s_prob[i] = prob
            s_tq[i] = np.nan
            s_target[i] = np.nan
            s_reason[i] = R_NONE
            s_dqty[i] = np.nan
            s_kind[i] = O_SIGNAL
            if not (math.isfinite(price) and price > 0):
                _risk(risk, counts, step, i, K_DENIAL, D_NO_PRICE, price, 0.0)
                s_verdict[i] = V_NO_PRICE
                continue
            cur_w = cur * price / equity if equity > 0 else 0.0
            over = abs(cur_w) > max_pos + EPS
            if state == HALTED:
                if cur == 0:
                    s_verdict[i] = V_HALTED
                    s_target[i] = 0.0
                    continue
                target_w = 0.0
                s_kind[i] = O_FLATTEN
            else:
                has_raw = False
                raw = 0.0
                if math.isnan(prob):
                    if not over:
                        s_verdict[i] = V_NO_SIGNAL
                        s_reason[i] = R_WARMUP
                        continue
                else:
                    if prob > prm[P_LONG_THR]:
                        raw, has_raw = prm[P_TARGET_W], True
                    elif prob < prm[P_SHORT_THR]:
                        raw = -prm[P_TARGET_W] if allow_short else 0.0
                        has_raw = True
                if not has_raw:
                    target_w = cur_w
                    if over:
                        target_w = math.copysign(max_pos, cur_w)
                        s_kind[i] = O_TRIM
                        _risk(risk, counts, step, i, K_CLIP, C_TRIMMED, max_pos, cur_w)
                else:  # clip_target
                    wv = raw
                    if not allow_short and wv < 0:
                        wv = 0.0
                    if wv > max_pos:
                        wv = max_pos
                    elif wv < -max_pos:
                        wv = -max_pos
                    if wv != raw:
                        _risk(risk, counts, step, i, K_CLIP, C_TARGET_CLIPPED, raw, wv)
                    target_w = wv
                if state == REDUCING:
                    lo, hi = (0.0, cur_w) if cur_w >= 0 else (cur_w, 0.0)
                    clipped = min(max(target_w, lo), hi)
                    if clipped != target_w:
                        _risk(risk, counts, step, i, K_CLIP, C_REDUCING_CLIPPED, target_w,
                              clipped)
                        target_w = clipped
            s_target[i] = target_w
            lot = lot_c if CRYPTO[i] else 0.0
            tq = round_qty(target_w * equity / price, lot) if target_w != 0.0 else 0.0
            if target_w == cur_w and s_kind[i] == O_SIGNAL:
                tq = cur
            if tq == cur:
                s_verdict[i] = V_HOLD
                continue
            if (tq != 0 and cur != 0 and (tq > 0) == (cur > 0) and state == ACTIVE
                    and not over
                    and abs(tq - cur) * price / equity <= prm[P_REBALANCE] + EPS):
                s_verdict[i] = V_HOLD
                s_reason[i] = R_BAND
                continue
            s_tq[i] = tq
            s_verdict[i] = -1  # an order to execute
        # -- execution: reductions first, then increases; each in symbol order
        for phase in range(2):
            for k in range(nc):
                i = s_cand[k]
                if s_verdict[i] != -1:
                    continue
                cur = s_cur[i]
                tq = s_tq[i]
                inc = abs(tq) > abs(cur) or tq * cur < 0
                if inc != (phase == 1):
                    continue
                price = last[i]
                q = round(tq - cur, 10)
                rate = _rate(prm, CRYPTO[i], price)
                lot = lot_c if CRYPTO[i] else 0.0
                reducing = abs(cur + q) < abs(cur) and (cur + q) * cur >= 0
                if q > 0 and not reducing:
                    room = proj_cash - prm[P_BUFFER] * equity
                    if cur < 0:
                        room += -cur * price
                    max_q = max(round_qty(room / (price * (1 + rate)), lot), 0.0)
                    if q > max_q:
                        _risk(risk, counts, step, i, K_CLIP, C_CASH_CLIPPED, q, max_q)
                        q = max_q
                if not reducing and q != 0:
                    room = lev * equity - (proj_gross - abs(cur * price))
                    max_abs = max(round_qty(room / price, lot), 0.0)
                    if abs(cur + q) > max_abs and abs(cur + q) > abs(cur):
                        new_after = math.copysign(max(max_abs, abs(cur)), cur + q)
                        nq = round(new_after - cur, 10)
                        _risk(risk, counts, step, i, K_CLIP, C_GROSS_CLIPPED, q, nq)
                        q = nq
                if q == 0:
                    s_verdict[i] = V_HOLD
                    s_reason[i] = R_CLIPPED_TO_ZERO
                    continue
                # the risk engine's rules, first denial wins (RiskEngine.check)
                after = cur + q
                if cur > 0:
                    reduces = 0 <= after < cur
                elif cur < 0:
                    reduces = cur < after <= 0
                else:
                    reduces = False
                deny = 0
                ref = prev[i]
                if not math.isfinite(equity) or equity <= 0:
                    deny = D_NO_EQUITY
                elif not math.isfinite(price) or price <= 0:
                    deny = D_NO_PRICE
                elif not math.isfinite(q) or q == 0:
                    deny = D_BAD_QTY
                elif (math.isfinite(ref) and ref > 0
                      and abs(price / ref - 1.0) > band + EPS):
                    deny = D_PRICE_BAND
                elif state == HALTED and not reduces:
                    deny = D_HALTED_ONLY
                elif state == REDUCING and not reduces:
                    deny = D_REDUCING_ONLY
                elif not allow_short and after < -EPS:
                    deny = D_SHORT
                elif (abs(after * price) / equity > max_pos + EPS
                      and abs(after) > abs(cur)):
                    deny = D_MAX_POSITION
                elif ((proj_gross - abs(cur * price) + abs(after * price)) / equity
                      > lev + EPS and (proj_gross - abs(cur * price) + abs(after * price))
                      / equity > proj_gross / equity):
                    deny = D_MAX_GROSS
                elif q > 0 and not reduces and (q * price * (1.0 + rate)
                                                > proj_cash + EPS * equity):
                    deny = D_BUYING_POWER
                m = counts[N_ORD]
                ords[m]["step"] = step
                ords[m]["symbol"] = i
                ords[m]["qty"] = q
                ords[m]["decision_price"] = price
                ords[m]["kind"] = s_kind[i]
                ords[m]["denied"] = deny
                counts[N_ORD] = m + 1
                s_dqty[i] = q
                if deny != 0:
                    _risk(risk, counts, step, i, K_DENIAL, deny, q, price)
                    s_verdict[i] = V_DENIED
                    s_reason[i] = deny
                    continue
                o_qty[i] = q
                o_dp[i] = price
                o_step[i] = step
                o_seq[i] = acct[A_SEQ]
                acct[A_SEQ] += 1
                if q > 0:
                    proj_cash -= q * price * (1 + rate)
                proj_gross += abs((cur + q) * price) - abs(cur * price)
                s_verdict[i] = V_SUBMITTED
        # -- records of the step
        for k in range(nc):
            i = s_cand[k]
            m = counts[N_DEC]
            dec[m]["step"] = step
            dec[m]["symbol"] = i
            dec[m]["probability"] = s_prob[i]
            dec[m]["target"] = s_target[i]
            dec[m]["verdict"] = s_verdict[i]
            dec[m]["reason"] = s_reason[i]
            dec[m]["qty"] = s_dqty[i]
            counts[N_DEC] = m + 1
        m = counts[N_EQ]
        eq[m]["step"] = step
        eq[m]["cash"] = cash
        eq[m]["equity"] = equity
        eq[m]["gross"] = gross
        eq[m]["net"] = net
        eq[m]["peak"] = peak
        eq[m]["day_start_equity"] = acct[A_DSE]
        eq[m]["drawdown"] = 1.0 - equity / peak if math.isfinite(peak) and peak != 0 else 0.0
        eq[m]["day"] = DAY[t]
        eq[m]["state"] = state
        counts[N_EQ] = m + 1
        m = counts[N_POS]
        for j in range(N):
            mk = last[j]
            pos[m]["step"] = step
            pos[m]["symbol"] = j
            pos[m]["qty"] = qty[j]
            pos[m]["avg_price"] = avg[j]
            pos[m]["mark"] = mk
            pos[m]["value"] = qty[j] * mk if qty[j] != 0.0 else 0.0
            pos[m]["realized"] = realized[j]
            pos[m]["unrealized"] = qty[j] * (mk - avg[j]) if qty[j] != 0.0 else 0.0
            pos[m]["fees"] = fees[j]
            m += 1
        counts[N_POS] = m
        acct[A_LAST_EQUITY] = equity
    return 0


def run(inp, chunk: int = 2048, sink=None) -> None:
    """The whole replay in chunks of ``chunk`` steps; ``sink(tables)`` gets each chunk's
    records (views into buffers reused by the next chunk)."""
    from .inputs import Account, Records, warm_up

    T, N = inp.C.shape
    acc = Account.new(N, inp.initial_cash)
    warm_up(inp, acc)
    rec = Records(chunk, N)
    for t0 in range(inp.n_warmup, T, chunk):
        t1 = min(T, t0 + chunk)
        rec.counts[:] = 0
        run_chunk(t0, t1, inp.n_warmup, inp.FILLP, inp.C, inp.HAS, inp.P, inp.DAY,
                  inp.CRYPTO, inp.prm, *acc.arrays(), *rec.arrays())
        if sink is not None:
            sink(rec.tables())
