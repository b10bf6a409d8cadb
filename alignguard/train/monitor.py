"""Live monitoring: per-term gradients every N steps and the alarms the seed's failed run needed.

Step alarms (from the per-term gradients, definitions shared with the checker via
`alignguard.gradients.stats`):
* vanished  — a term's gradient (or the net gradient) fell below `vanish_ratio` × its own peak:
              the seed's ‖∇L‖ → 0 long before the loss reached its minimum;
* cancel    — |Σ g_i| / Σ |g_i| below `min_net_ratio`: the terms cancel (∇L_orth ≈ −α ∇L_domain);
* conflict  — cos(g_i, g_j) below `min_cosine`, or outside the pair's own [min_cosine, max_cosine]
              when the spec declares it (`gradients.pairs`: terms that oppose by construction, such as
              an information bottleneck's task loss and KL, the same bounds `gradient.conflict` checks);
* share     — a term's share g_i·g/|g|² below the spec's `min_share` once past the spec's step.
Epoch alarms (from validation): plateau (loss decrease per epoch ~0, the seed's 26.5 % → 0.04 %),
constant classifier (every prediction on one side of 0.5 and no ranking:
AUROC below 0.55), z_I leaking the cell line, M(c) re-encoding U_I, T(c) rising with accessibility.

An alarm is reported when it is raised and when it clears; it does not stop training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from alignguard.errors import NonFiniteLossError


@dataclass(frozen=True)
class Alarm:
    kind: str
    subject: str
    message: str
    step: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_term_gradients(terms: Mapping[str, Any], params: Sequence[Any], scale: float = 1.0):
    """[(name, [grad per param] | None)] with one autograd.grad per term on the shared graph.

    `scale` multiplies each term first (a GradScaler's scale under fp16); None means the term has
    no gradient at all (detached or unreached). Grads stay on the parameters' device.
    """
    import torch

    result = []
    for name, term in terms.items():
        if not isinstance(term, torch.Tensor) or not term.requires_grad:
            result.append((name, None))
            continue
        grads = torch.autograd.grad(term * scale if scale != 1.0 else term, params,
                                    retain_graph=True, allow_unused=True)
        if all(g is None for g in grads):
            result.append((name, None))
        else:
            result.append((name, [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]))
    return result


def flatten(term_grads, params, scale: float = 1.0):
    """(K, P) float32 matrix of the per-term gradients divided by `scale`, for the statistics."""
    import torch

    rows = []
    for _, grads in term_grads:
        if grads is None:
            rows.append(torch.zeros(sum(p.numel() for p in params), device=params[0].device))
        else:
            rows.append(torch.cat([g.reshape(-1).float() for g in grads]) / scale)
    return torch.stack(rows)


class GradientMonitor:
    """Turns per-term gradients into a JSON record and raised / cleared alarms."""

    def __init__(self, vanish_ratio: float, min_cosine: float, min_net_ratio: float,
                 min_shares: dict[str, tuple[float, int]] | None = None, pairs: Sequence[Any] = ()):
        self.vanish_ratio = vanish_ratio
        self.min_cosine = min_cosine
        # the spec's per-pair bounds (PairBound-like: terms, min_cosine, max_cosine, why) replace min_cosine
        self.pairs = {frozenset(p.terms): p for p in pairs}
        self.min_net_ratio = min_net_ratio
        self.min_shares = min_shares or {}  # term -> (min_share, from step), from the spec
        self.peaks: dict[str, float] = {}
        self.active: dict[str, Alarm] = {}
        self.stage: int | None = None  # peaks are per curriculum stage: each trains other parameters

    def enter_stage(self, index: int) -> None:
        if index != self.stage:
            self.peaks, self.active, self.stage = {}, {}, index

    def state_dict(self) -> dict[str, Any]:
        return {"peaks": dict(self.peaks), "active": [a.as_dict() for a in self.active.values()],
                "stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.peaks = {str(k): float(v) for k, v in state.get("peaks", {}).items()}
        self.active = {a.key: a for a in (Alarm(**d) for d in state.get("active", []))}
        self.stage = state.get("stage")

    def observe(self, names: list[str], values: dict[str, float], grads, step: int):
        """grads: (K, P) tensor (rows follow names). Returns (record, raised, cleared)."""
        from alignguard.gradients.stats import gradient_stats

        if not all(_finite(v) for v in values.values()):
            bad = ", ".join(f"{n}={v}" for n, v in values.items() if not _finite(v))
            raise NonFiniteLossError(f"loss term(s) became non-finite at step {step}: {bad}")
        stats = gradient_stats(names, grads)
        if not _finite(stats.total_norm):
            raise NonFiniteLossError(f"the gradient became non-finite at step {step}")
        alive = [n for n in names if stats.norms[n] > 0]
        conditions: dict[str, Alarm] = {}
        for name in names + ["total"]:
            norm = stats.total_norm if name == "total" else stats.norms[name]
            peak = max(self.peaks.get(name, 0.0), norm)
            self.peaks[name] = peak
            weight_zero = name != "total" and values.get(name) == 0.0
            if peak > 0 and not weight_zero and norm < self.vanish_ratio * peak:
                label = "the net gradient ‖∇L‖" if name == "total" else f"the gradient of '{name}'"
                conditions[f"vanished:{name}"] = Alarm(
                    "vanished", name, f"{label} vanished: {norm:.3g}, {norm / peak:.1e} of its peak {peak:.3g}", step)
        if len(alive) >= 2 and stats.net_ratio is not None and stats.net_ratio < self.min_net_ratio:
            conditions["cancel:all"] = Alarm(
                "cancel", "all", f"the loss terms cancel: |Σ∇L_i| / Σ|∇L_i| = {stats.net_ratio:.3f} "
                f"< {self.min_net_ratio}", step)
        for (a, b), cosine in stats.cosines.items():
            alarm = self._conflict(a, b, cosine, step)
            if alarm is not None:
                conditions[alarm.key] = alarm
        for name, (minimum, from_step) in self.min_shares.items():
            share = stats.shares.get(name)
            if minimum > 0 and step >= from_step and name in stats.shares and (share is None or share < minimum):
                conditions[f"share:{name}"] = Alarm(
                    "share", name, f"'{name}' carries {0.0 if share is None else share:.4f} of the gradient, "
                    f"below the spec's min_share {minimum}", step)
        raised = [alarm for key, alarm in conditions.items() if key not in self.active]
        cleared = [alarm for key, alarm in self.active.items() if key not in conditions]
        self.active = {key: self.active.get(key, alarm) for key, alarm in conditions.items()}
        record = {
            "grad_norm": {n: stats.norms[n] for n in names},
            "grad_share": {n: stats.shares[n] for n in names},
            "grad_total_norm": stats.total_norm,
            "grad_net_ratio": stats.net_ratio,
            "grad_cosine": {f"{a}|{b}": c for (a, b), c in stats.cosines.items()},
        }
        return record, raised, cleared

    def _conflict(self, a: str, b: str, cosine: float | None, step: int) -> Alarm | None:
        if cosine is None:
            return None
        pair = self.pairs.get(frozenset((a, b)))
        if pair is None:
            if cosine >= self.min_cosine:
                return None
            return Alarm("conflict", f"{a}|{b}", f"'{a}' and '{b}' pull against each other: cos = {cosine:.2f} "
                         f"< {self.min_cosine}", step)
        why = f" ({pair.why})" if pair.why else ""
        if cosine < pair.min_cosine:
            return Alarm("conflict", f"{a}|{b}", f"'{a}' and '{b}' pull against each other more than the spec "
                         f"allows for this pair: cos = {cosine:.2f} < {pair.min_cosine:g}{why}", step)
        if cosine > pair.max_cosine:
            return Alarm("conflict", f"{a}|{b}", f"'{a}' and '{b}', which the spec says oppose by construction, "
                         f"do not: cos = {cosine:.2f} > {pair.max_cosine:g}{why}", step)
        return None


def epoch_alarms(epoch: int, step: int, loss_history: list[float], validation: dict[str, Any],
                 probes: dict[str, Any], plateau_ratio: float, leak_nats: float) -> list[Alarm]:
    """Alarms judged once per epoch from training-loss history, validation metrics and probes."""
    alarms = []
    if len(loss_history) >= 2 and loss_history[-2] > 0:
        decrease = (loss_history[-2] - loss_history[-1]) / abs(loss_history[-2])
        if decrease < plateau_ratio:
            alarms.append(Alarm("plateau", "loss", f"epoch {epoch}: training loss fell only {100 * decrease:.3f}% "
                                f"(the seed's failed run: 26.5% -> 0.04% per epoch after epoch 2)", step))
    pooled = validation["pooled"]
    rate, predicted = pooled.get("positive_rate"), pooled.get("predicted_positive_rate")
    if rate is not None and predicted is not None and (predicted == 0.0 or predicted == 1.0) \
            and not _ranks(pooled.get("auroc")):
        alarms.append(Alarm("constant", "classifier", f"every validation prediction is "
                            f"{'negative' if predicted == 0 else 'positive'} and they do not rank the examples "
                            f"(AUROC {_text(pooled.get('auroc'))}): accuracy {pooled['accuracy']:.4f} is "
                            f"the constant classifier's at a {100 * rate:.1f}% positive rate", step))
    mi = (probes.get("mi_zI_c") or {}).get("nats")
    if mi is not None and mi > leak_nats:
        alarms.append(Alarm("leak", "z_I", f"z_I predicts the cell line: I(z_I; c) = {mi:.3f} nats > {leak_nats}",
                            step))
    corr = probes.get("corr_M_UI")
    if corr is not None and corr * corr > 0.5:
        alarms.append(Alarm("entangled", "M|U_I", f"corr(M(c), U_I) = {corr:.2f}: M re-encodes the energy", step))
    # Within each cell line: pooled over cell lines, the correlation mixes their levels of T and openness.
    # None there means T is too flat within cell lines to judge (e.g. not trained yet): no alarm.
    if "corr_T_access_within" in probes:
        corr_t, scope = probes["corr_T_access_within"], "within cell lines (mean)"
    else:
        corr_t, scope = probes.get("corr_T_access"), "pooled"
    if corr_t is not None and corr_t > 0.3:
        alarms.append(Alarm("implausible", "T", f"corr(T(c), accessibility) {scope} = {corr_t:.2f} > 0: the design "
                            "wants open chromatin -> low T (sharp)", step))
    return alarms


# A calibrated model at a low positive rate may put every probability below 0.5 (where no locus is more
# likely bound than not, the Bayes classifier does too); it is the constant classifier only if its scores
# carry no ranking either. AUROC's standard error on a validation split of thousands is ~0.01.
CHANCE_AUROC = 0.55


def _ranks(auroc: float | None) -> bool:
    return auroc is not None and auroc == auroc and auroc >= CHANCE_AUROC


def _text(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _finite(value: float | None) -> bool:
    return value is not None and value == value and value not in (float("inf"), float("-inf"))
