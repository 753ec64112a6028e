"""Prototype (b): the account loop in Python over the clock's steps, each step vectorised
over symbols with numpy (fills, marks, breakers, plans, records as column slices); only the
orders of a step run one by one (each order's cash and gross room depend on the ones
before it). Same account arrays, records and rules as prototype (a)
(:mod:`benchmarks.spikes.account_nb`); what is left out is listed in README.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import inputs as I
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
    HALTED,
    N_DEC,
    N_EQ,
    N_FILL,
    N_ORD,
    N_POS,
    N_RISK,
    N_STATE,
    REDUCING,
)

EPS = 1e-9


def round_qty(q: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``research_lib.broker.round_qty`` over arrays (``step``: 1.0 or the lot)."""
    with np.errstate(invalid="ignore"):
        n = np.floor(np.abs(q) / step + 1e-9)
        r = np.round(n * step, 10)
        out = np.where(q >= 0, r, -r)
    return np.where(np.isfinite(q), out, 0.0)


def _round_qty1(q: float, step: float) -> float:
    if not math.isfinite(q):
        return 0.0
    n = math.floor(abs(q) / step + 1e-9)
    r = float(np.round(n * step, 10))
    return r if q >= 0 else -r


class _Writer:
    """Appends rows to the chunk's record arrays."""

    def __init__(self, rec: I.Records) -> None:
        self.r = rec
        self.c = rec.counts

    def risk(self, step: int, i: int, kind: int, code: int, a: float, b: float) -> None:
        k = self.c[N_RISK]
        self.r.risk[k] = (step, i, kind, code, a, b)
        self.c[N_RISK] = k + 1

    def state(self, step: int, scope: int, frm: int, to: int, code: int, eq: float,
              peak: float) -> None:
        k = self.c[N_STATE]
        self.r.st[k] = (step, scope, frm, to, code, eq, peak)
        self.c[N_STATE] = k + 1


def run_chunk(t0: int, t1: int, inp: I.Inputs, acc: I.Account, rec: I.Records) -> None:
    prm, a = inp.prm, acc.acct
    N = inp.C.shape[1]
    slip = prm[I.P_SLIP] / 1e4
    cbps = prm[I.P_COMM_BPS] / 1e4
    per_share = prm[I.P_PER_SHARE]
    max_pos, lev, band = prm[I.P_MAX_POS], prm[I.P_MAX_GROSS], prm[I.P_BAND]
    allow_short = prm[I.P_ALLOW_SHORT] != 0.0
    lot_step = np.where(inp.CRYPTO, prm[I.P_LOT], 1.0)
    base_rate = (prm[I.P_SLIP] + prm[I.P_COMM_BPS]) / 1e4
    noncrypto = ~inp.CRYPTO
    qty, avg, realized, fees = acc.qty, acc.avg, acc.realized, acc.fees
    last, prev, breaker, book = acc.last, acc.prev, acc.breaker, acc.book
    o_qty, o_dp, o_step, o_seq = acc.o_qty, acc.o_dp, acc.o_step, acc.o_seq
    w = _Writer(rec)
    c = rec.counts
    sym_idx = np.arange(N, dtype=np.int32)

    def rate(i: Any, price: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = np.where(noncrypto[i] & (price > 0), per_share / price, 0.0)
        return base_rate + extra

    for t in range(t0, t1):
        step = t - inp.n_warmup
        has = inp.HAS[t]
        # new session day
        if inp.DAY[t] > a[A_DAY]:
            a[A_DAY] = inp.DAY[t]
            a[A_DSE] = a[A_LAST_EQUITY]
            if not math.isfinite(a[A_PEAK]):
                a[A_PEAK] = a[A_LAST_EQUITY]
            if a[A_STATE] == REDUCING:
                a[A_STATE] = ACTIVE
                w.state(step, -1, REDUCING, ACTIVE, I.S_NEW_DAY, a[A_LAST_EQUITY], a[A_PEAK])
        # fills, in submission order
        fp = inp.FILLP[t]
        with np.errstate(invalid="ignore"):
            idx = np.flatnonzero((o_qty != 0) & has & (fp > 0) & np.isfinite(fp))
        if len(idx):
            idx = idx[np.argsort(o_seq[idx], kind="stable")]
            q = o_qty[idx].copy()
            base = fp[idx]
            o_qty[idx] = 0.0
            move = base / o_dp[idx] - 1.0
            rej = np.abs(move) > band + 1e-9
            for k in np.flatnonzero(rej):
                w.risk(step, int(idx[k]), I.K_REJECTION, I.J_PRICE_BAND_AT_FILL,
                       float(move[k]), float(base[k]))
            price = np.where(q > 0, base * (1.0 + slip), base * (1.0 - slip))
            com = np.abs(q) * price * cbps + np.where(noncrypto[idx], np.abs(q) * per_share, 0.0)
            cd = -(q * price) - com
            ok = ~rej
            cash_seq = np.cumsum(np.concatenate([[a[A_CASH]], np.where(ok, cd, 0.0)]))
            if ((q > 0) & ok & (cash_seq[1:] < 0)).any():  # a buy the cash cannot pay:
                cash = a[A_CASH]                           # sequential, as the broker
                for k in range(len(idx)):
                    if ok[k] and q[k] > 0 and cash + cd[k] < 0:
                        ok[k] = False
                        w.risk(step, int(idx[k]), I.K_REJECTION, I.J_INSUFFICIENT_CASH,
                               float(-cd[k]), cash)
                    elif ok[k]:
                        cash += cd[k]
                a[A_CASH] = cash
            else:
                a[A_CASH] = cash_seq[-1]
            idx, q, price, base, com, cd = (x[ok] for x in (idx, q, price, base, com, cd))
            m, k = c[N_FILL], len(idx)
            if k:
                f = rec.fill[m:m + k]
                f["step"], f["symbol"], f["order_step"] = step, idx, o_step[idx]
                f["qty"], f["price"], f["base_price"] = q, price, base
                f["commission"], f["cash_delta"] = com, cd
                c[N_FILL] = m + k
                # positions (Position.apply, one fill per symbol)
                q0 = qty[idx]
                new = idx[q0 == 0]
                nb = int(a[A_NBOOK])
                for j in new.tolist():
                    if j not in book[:nb]:
                        book[nb] = j
                        nb += 1
                a[A_NBOOK] = nb
                q1 = np.round(q0 + q, 10)
                opening = (q0 == 0) | ((q0 > 0) == (q > 0))
                with np.errstate(invalid="ignore", divide="ignore"):
                    add_avg = np.where(q1 != 0, (q0 * avg[idx] + q * price) / q1, 0.0)
                closed = np.minimum(np.abs(q), np.abs(q0))
                real = realized[idx] + np.where(
                    opening, 0.0, closed * (price - avg[idx]) * np.where(q0 > 0, 1.0, -1.0))
                red_avg = np.where(q1 == 0, 0.0,
                                   np.where((q1 > 0) == (q0 > 0), avg[idx], price))
                avg[idx] = np.where(opening, add_avg, red_avg)
                realized[idx] = real
                qty[idx] = q1
                fees[idx] += com
        # prices known now
        prev[has] = last[has]
        last[has] = inp.C[t, has]
        # mark in the broker's order
        nb = int(a[A_NBOOK])
        cash = a[A_CASH]
        if nb:
            bk = book[:nb]
            v = qty[bk] * last[bk]
            v = np.where(qty[bk] != 0, v, 0.0)
            net = float(np.cumsum(v)[-1])
            gross = float(np.cumsum(np.abs(v))[-1])
        else:
            net = gross = 0.0
        equity = cash + net
        # latches
        if math.isfinite(equity) and (not math.isfinite(a[A_PEAK]) or equity > a[A_PEAK]):
            a[A_PEAK] = equity
        peak = a[A_PEAK]
        state = int(a[A_STATE])
        latched = False
        if state != HALTED and math.isfinite(equity) and math.isfinite(peak) and peak > 0:
            dd = 1.0 - equity / peak
            if dd >= prm[I.P_MAX_DD] - EPS:
                w.state(step, -1, state, HALTED, I.B_DRAWDOWN, equity, peak)
                w.risk(step, -1, I.K_BREACH, I.B_DRAWDOWN, dd, peak)
                state, latched = HALTED, True
        if not latched and state == ACTIVE:
            dse = a[A_DSE]
            if math.isfinite(equity) and math.isfinite(dse) and dse > 0:
                loss = 1.0 - equity / dse
                if loss >= prm[I.P_DAILY_LOSS] - EPS:
                    w.state(step, -1, ACTIVE, REDUCING, I.B_DAILY_LOSS, equity, peak)
                    w.risk(step, -1, I.K_BREACH, I.B_DAILY_LOSS, loss, dse)
                    state = REDUCING
        a[A_STATE] = state
        # breakers
        with np.errstate(invalid="ignore", divide="ignore"):
            trip = has & np.isfinite(prev) & (prev > 0) & (np.abs(last / prev - 1.0) > band + EPS)
        flip = has & (trip != breaker)
        for j in np.flatnonzero(flip).tolist():
            if trip[j]:
                w.state(step, j, ACTIVE, HALTED, I.S_BREAKER_TRIP, last[j], prev[j])
            else:
                w.state(step, j, HALTED, ACTIVE, I.S_BREAKER_CLEAR, last[j], prev[j])
            breaker[j] = trip[j]
        # projected cash (open buys, in submission order) and gross
        pend = np.flatnonzero(o_qty != 0)
        pend_buy = 0.0
        if len(pend):
            pend = pend[np.argsort(o_seq[pend], kind="stable")]
            for j in pend.tolist():
                if o_qty[j] > 0:
                    dp = o_dp[j]
                    pend_buy += o_qty[j] * dp * (1.0 + float(rate(j, dp)))
        proj_cash = cash - pend_buy
        cur_all = qty + o_qty
        live = (qty != 0) | (o_qty != 0)
        proj_gross = float(np.cumsum(np.where(live, np.abs(cur_all * last), 0.0))[-1])
        # candidates (the same simplification as prototype (a): no second open order)
        extra = ~has & (qty != 0) & (o_qty == 0)
        if state != HALTED and extra.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                extra &= (np.isfinite(last) & (last > 0) & (equity > 0)
                          & (np.abs(cur_all * last / equity) > max_pos + EPS))
        ci = np.flatnonzero(has | extra)
        nc = len(ci)
        price = last[ci]
        cur = cur_all[ci]
        prob = inp.P[t, ci] if state != HALTED else np.full(nc, np.nan)
        verdict = np.full(nc, -1, np.int8)
        reason = np.zeros(nc, np.int8)
        target = np.full(nc, np.nan)
        kind = np.zeros(nc, np.int8)
        ev: list[tuple[int, int, int, int, float, float]] = []  # (i, order, kind, code, a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            bad_price = ~(np.isfinite(price) & (price > 0))
            cur_w = cur * price / equity if equity > 0 else np.zeros(nc)
            over = np.abs(cur_w) > max_pos + EPS
            nosig = np.isnan(prob)
            if state == HALTED:
                tw = np.zeros(nc)
                verdict[~bad_price & (cur == 0)] = I.V_HALTED
                target[~bad_price & (cur == 0)] = 0.0
                kind[:] = I.O_FLATTEN
            else:
                verdict[~bad_price & nosig & ~over] = I.V_NO_SIGNAL
                reason[~bad_price & nosig & ~over] = I.R_WARMUP
                longs = prob > prm[I.P_LONG_THR]
                shorts = prob < prm[I.P_SHORT_THR]
                has_raw = longs | shorts
                raw = np.where(longs, prm[I.P_TARGET_W],
                               -prm[I.P_TARGET_W] if allow_short else 0.0)
                wv = raw if allow_short else np.maximum(raw, 0.0)
                wv = np.clip(wv, -max_pos, max_pos)
                hold_w = np.where(over, np.copysign(max_pos, cur_w), cur_w)
                tw = np.where(has_raw, wv, hold_w)
                live_plan = verdict == -1
                for k in np.flatnonzero(live_plan & ~bad_price & ~has_raw & over).tolist():
                    kind[k] = I.O_TRIM
                    ev.append((int(ci[k]), 0, I.K_CLIP, I.C_TRIMMED, max_pos, float(cur_w[k])))
                for k in np.flatnonzero(live_plan & ~bad_price & has_raw & (wv != raw)).tolist():
                    ev.append((int(ci[k]), 0, I.K_CLIP, I.C_TARGET_CLIPPED, float(raw[k]),
                               float(wv[k])))
                if state == REDUCING:
                    lo = np.where(cur_w >= 0, 0.0, cur_w)
                    hi = np.where(cur_w >= 0, cur_w, 0.0)
                    cl = np.minimum(np.maximum(tw, lo), hi)
                    for k in np.flatnonzero(live_plan & ~bad_price & (cl != tw)).tolist():
                        ev.append((int(ci[k]), 1, I.K_CLIP, I.C_REDUCING_CLIPPED,
                                   float(tw[k]), float(cl[k])))
                    tw = cl
            for k in np.flatnonzero(bad_price).tolist():
                verdict[k] = I.V_NO_PRICE
                ev.append((int(ci[k]), 0, I.K_DENIAL, I.D_NO_PRICE, float(price[k]), 0.0))
            live_plan = verdict == -1
            target = np.where(live_plan, tw, target)
            tq = np.where(tw != 0, round_qty(tw * equity / price, lot_step[ci]), 0.0)
            tq = np.where((tw == cur_w) & (kind == I.O_SIGNAL), cur, tq)
            hold = live_plan & (tq == cur)
            verdict[hold] = I.V_HOLD
            in_band = (live_plan & ~hold & (tq != 0) & (cur != 0) & ((tq > 0) == (cur > 0))
                       & (state == ACTIVE) & ~over
                       & (np.abs(tq - cur) * price / equity <= prm[I.P_REBALANCE] + EPS))
            verdict[in_band] = I.V_HOLD
            reason[in_band] = I.R_BAND
        for e in sorted(ev, key=lambda x: (x[0], x[1])):
            w.risk(step, e[0], e[2], e[3], e[4], e[5])
        dqty = np.full(nc, np.nan)
        todo = np.flatnonzero(verdict == -1)
        if len(todo):
            inc = (np.abs(tq[todo]) > np.abs(cur[todo])) | (tq[todo] * cur[todo] < 0)
            todo = np.concatenate([todo[~inc], todo[inc]])
            for k in todo.tolist():
                i = int(ci[k])
                p, cu = float(price[k]), float(cur[k])
                qn = round(float(tq[k]) - cu, 10)
                rt = float(rate(i, p))
                step_lot = float(lot_step[i])
                reducing = abs(cu + qn) < abs(cu) and (cu + qn) * cu >= 0
                if qn > 0 and not reducing:
                    room = proj_cash - prm[I.P_BUFFER] * equity
                    if cu < 0:
                        room += -cu * p
                    max_q = max(_round_qty1(room / (p * (1 + rt)), step_lot), 0.0)
                    if qn > max_q:
                        w.risk(step, i, I.K_CLIP, I.C_CASH_CLIPPED, qn, max_q)
                        qn = max_q
                if not reducing and qn != 0:
                    room = lev * equity - (proj_gross - abs(cu * p))
                    max_abs = max(_round_qty1(room / p, step_lot), 0.0)
                    if abs(cu + qn) > max_abs and abs(cu + qn) > abs(cu):
                        nq = round(math.copysign(max(max_abs, abs(cu)), cu + qn) - cu, 10)
                        w.risk(step, i, I.K_CLIP, I.C_GROSS_CLIPPED, qn, nq)
                        qn = nq
                if qn == 0:
                    verdict[k], reason[k] = I.V_HOLD, I.R_CLIPPED_TO_ZERO
                    continue
                after = cu + qn
                reduces = (0 <= after < cu) if cu > 0 else (cu < after <= 0) if cu < 0 else False
                ref = float(prev[i])
                g_after = (proj_gross - abs(cu * p) + abs(after * p)) / equity
                deny = 0
                if not math.isfinite(equity) or equity <= 0:
                    deny = I.D_NO_EQUITY
                elif not math.isfinite(p) or p <= 0:
                    deny = I.D_NO_PRICE
                elif not math.isfinite(qn) or qn == 0:
                    deny = I.D_BAD_QTY
                elif math.isfinite(ref) and ref > 0 and abs(p / ref - 1.0) > band + EPS:
                    deny = I.D_PRICE_BAND
                elif state == HALTED and not reduces:
                    deny = I.D_HALTED_ONLY
                elif state == REDUCING and not reduces:
                    deny = I.D_REDUCING_ONLY
                elif not allow_short and after < -EPS:
                    deny = I.D_SHORT
                elif abs(after * p) / equity > max_pos + EPS and abs(after) > abs(cu):
                    deny = I.D_MAX_POSITION
                elif g_after > lev + EPS and g_after > proj_gross / equity:
                    deny = I.D_MAX_GROSS
                elif qn > 0 and not reduces and qn * p * (1.0 + rt) > proj_cash + EPS * equity:
                    deny = I.D_BUYING_POWER
                m = c[N_ORD]
                rec.ord[m] = (step, i, qn, p, kind[k], deny)
                c[N_ORD] = m + 1
                dqty[k] = qn
                if deny:
                    w.risk(step, i, I.K_DENIAL, deny, qn, p)
                    verdict[k], reason[k] = I.V_DENIED, deny
                    continue
                o_qty[i], o_dp[i], o_step[i], o_seq[i] = qn, p, step, a[A_SEQ]
                a[A_SEQ] += 1
                if qn > 0:
                    proj_cash -= qn * p * (1 + rt)
                proj_gross += abs((cu + qn) * p) - abs(cu * p)
                verdict[k] = I.V_SUBMITTED
        # records of the step
        m = c[N_DEC]
        d = rec.dec[m:m + nc]
        d["step"], d["symbol"], d["probability"], d["target"] = step, ci, prob, target
        d["verdict"], d["reason"], d["qty"] = verdict, reason, dqty
        c[N_DEC] = m + nc
        m = c[N_EQ]
        rec.eq[m] = (step, cash, equity, gross, net, peak, a[A_DSE],
                     1.0 - equity / peak if math.isfinite(peak) and peak != 0 else 0.0,
                     inp.DAY[t], state)
        c[N_EQ] = m + 1
        m = c[N_POS]
        pr = rec.pos[m:m + N]
        held = qty != 0
        pr["step"], pr["symbol"], pr["qty"], pr["avg_price"] = step, sym_idx, qty, avg
        pr["mark"], pr["realized"], pr["fees"] = last, realized, fees
        pr["value"] = np.where(held, qty * last, 0.0)
        pr["unrealized"] = np.where(held, qty * (last - avg), 0.0)
        c[N_POS] = m + N
        a[A_LAST_EQUITY] = equity


def run(inp: I.Inputs, chunk: int = 2048, sink: Any = None) -> None:
    """The whole replay in chunks of ``chunk`` steps (as prototype (a))."""
    T, N = inp.C.shape
    acc = I.Account.new(N, inp.initial_cash)
    I.warm_up(inp, acc)
    rec = I.Records(chunk, N)
    for t0 in range(inp.n_warmup, T, chunk):
        rec.counts[:] = 0
        run_chunk(t0, min(T, t0 + chunk), inp, acc, rec)
        if sink is not None:
            sink(rec.tables())
