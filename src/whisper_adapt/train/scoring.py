"""Scoring an epoch and choosing what to keep.

The kept model is the average of the last epochs' weights when it stays within the forgetting budget and
beats the unadapted model; otherwise the single epoch with the highest glossary term recall on held-out
clips within that budget (everyday-speech CER rising by at most the budget over the unadapted model, epoch
0). Loss is never the criterion: choosing by validation loss on jargon-only clips picked exactly the runs that
had forgotten general Japanese.
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


def score_nonspeech(decoded: Sequence, durations_s: Sequence[float]) -> dict:
    """What the model does where nobody speaks: `nonspeech_chars_per_min`, the characters it writes there that
    Whisper's silence rule (no-speech probability above its threshold while the text's log-probability is
    low) would not drop, per minute; and `nonspeech_prob`, the mean no-speech probability."""
    from whisper_adapt.evaluate import normalize_text
    from whisper_adapt.guards import GuardOptions

    guards = GuardOptions()
    kept = [d for d in decoded if not (d.no_speech_prob > guards.no_speech_prob_max
                                       and d.avg_logprob < guards.avg_logprob_min)]
    characters = sum(len(normalize_text(d.text)) for d in kept)
    return {"nonspeech_chars_per_min": characters / max(sum(durations_s) / 60, 1e-9),
            "nonspeech_prob": sum(d.no_speech_prob for d in decoded) / max(len(decoded), 1)}


def choose_kept(history: Sequence[dict], average: dict | None, budget: float) -> list[int]:
    """The epochs whose weights the adapter holds: `average["epochs"]` (their mean), one epoch, or none.

    The average is preferred to any single epoch whenever it is allowed and better than the unadapted model,
    even when an epoch scored a higher validation recall: both checks move by about a point from one epoch to
    the next by chance, and picking the luckiest epoch picked ones that forgot (bench/recipes.py).
    """
    if average is not None:
        # Judged against the unadapted model on the same (wider) check, when it had one.
        unadapted = history[0] | ({"general_cer": average["unadapted_general_cer"]}
                                  if "unadapted_general_cer" in average else {})
        if _allowed(unadapted, average, budget) and _better(history[0], average):
            return list(average["epochs"])
    epoch = choose_epoch(history, budget)
    return [] if epoch is None else [epoch]


def _allowed(base: dict, candidate: dict, budget: float) -> bool:
    return "general_cer" not in base or candidate["general_cer"] <= base["general_cer"] + budget + 1e-12


def _quality(h: dict) -> tuple[float, float]:
    return h.get("validation_term_recall", 0.0), -h["validation_cer"]


def _better(base: dict, candidate: dict) -> bool:
    return "validation_cer" not in base or _quality(candidate) > _quality(base)


def choose_epoch(history: Sequence[dict], budget: float) -> int | None:
    """The epoch to keep, or None when no trained epoch beats the unadapted model (epoch 0) within budget.

    Allowed: general CER ≤ unadapted general CER + budget (every epoch, when there is no general set).
    Among allowed epochs: highest term recall, then lowest validation CER, then the earliest. An epoch must
    improve on epoch 0 (recall up, or CER down at equal recall) to be worth shipping. Without validation
    figures the last epoch within budget is kept.
    """
    base = history[0]
    trained = [h for h in history[1:] if _allowed(base, h, budget)]
    if not trained:
        return None
    if "validation_cer" not in base:
        return trained[-1]["epoch"]
    better = [h for h in trained if _better(base, h)]
    if not better:
        return None
    return max(better, key=lambda h: (*_quality(h), -h["epoch"]))["epoch"]
