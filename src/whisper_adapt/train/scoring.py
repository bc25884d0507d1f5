"""Scoring an epoch and choosing the epoch to keep.

The kept epoch maximizes glossary term recall on held-out clips, subject to everyday-speech CER rising
by at most the forgetting budget over the unadapted model (epoch 0). Loss is never the criterion: choosing
by validation loss on jargon-only clips picked exactly the runs that had forgotten general Japanese.
"""

from __future__ import annotations

from collections.abc import Sequence

from whisper_adapt.glossary import Glossary


def score_epoch(name: str, references: Sequence[str], decoded: Sequence, glossary: Glossary | None) -> dict:
    """`<name>_cer`, `<name>_term_recall` (when a glossary is given) and `<name>_loops` for one set."""
    from whisper_adapt.evaluate import pooled_cer, term_scores

    hypotheses = [d.text for d in decoded]
    # Numerals normalized: an adapter that learned the organization's 三時 for 3時 has not forgotten anything.
    metrics = {f"{name}_cer": pooled_cer(references, hypotheses, numerals=True),
               f"{name}_loops": sum(d.loops for d in decoded)}
    recall = term_scores(references, hypotheses, glossary).recall if glossary is not None else None
    if recall is not None:  # None: no glossary, or no term said in this set
        metrics[f"{name}_term_recall"] = recall
    return metrics


def choose_epoch(history: Sequence[dict], budget: float) -> int | None:
    """The epoch to keep, or None when no trained epoch beats the unadapted model (epoch 0) within budget.

    Allowed: general CER ≤ unadapted general CER + budget (every epoch, when there is no general set).
    Among allowed epochs: highest term recall, then lowest validation CER, then the earliest. An epoch must
    improve on epoch 0 (recall up, or CER down at equal recall) to be worth shipping. Without validation
    figures the last epoch within budget is kept.
    """
    base, trained = history[0], list(history[1:])
    if "general_cer" in base:
        trained = [h for h in trained if h["general_cer"] <= base["general_cer"] + budget + 1e-12]
    if not trained:
        return None
    if "validation_cer" not in base:
        return trained[-1]["epoch"]

    def quality(h: dict) -> tuple[float, float]:
        return h.get("validation_term_recall", 0.0), -h["validation_cer"]

    better = [h for h in trained if quality(h) > quality(base)]
    if not better:
        return None
    return max(better, key=lambda h: (*quality(h), -h["epoch"]))["epoch"]
