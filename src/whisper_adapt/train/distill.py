"""Self-distillation on replayed general speech: keep the adapted decoder's predictions close to the frozen
model's where the organization's words have no business.

Before training, the unadapted model reads every replayed clip once (teacher forcing on the clip's target
tokens) and its `TOP_K` most likely next tokens with their log-probabilities are kept on disk per example.
During training, each replayed example adds `weight` × the Kullback–Leibler divergence from that top-k
distribution (renormalized) to the adapted model's, averaged over target positions. Plain replay only asks
for the right token; this also asks that the runners-up (the everyday words that sound like the company's
terms) keep their probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.files import write_atomically
from whisper_adapt.train.data import Example, model_batches

TOP_K = 16


def with_teacher_files(examples: Sequence[Example], directory: Path) -> list[Example]:
    """`examples` pointing at their teacher file (one per position in the list)."""
    return [replace(example, teacher_file=directory / f"{index:06d}.npz") for index, example in enumerate(examples)]


@torch.no_grad()
def fill_teacher_cache(model, examples: Sequence[Example], n_mels: int, pad_id: int, batch_size: int = 8,
                       advance: Callable[[int], None] | None = None) -> None:
    """Write each example's teacher file: the model's top-k next tokens (int32) and their log-probabilities
    (float16) at every target position. Files belong to the run and are rewritten on every start."""
    model.eval()
    for indexes, batch in model_batches(examples, n_mels, pad_id, next(model.parameters()).device, batch_size):
        # No key/value cache: nothing is decoded after this pass, and on large-v3 the cache of every layer's
        # cross-attention keys and values is ~4 GB a batch of 8, the run's peak on a 12 GB card.
        log_probs = torch.log_softmax(model(**batch, use_cache=False).logits.float(), dim=-1)
        top = log_probs.topk(TOP_K, dim=-1)
        for row, index in enumerate(indexes):
            length = len(examples[index].decoder_input_ids)
            path = examples[index].teacher_file
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, partial(np.savez, ids=top.indices[row, :length].cpu().numpy().astype(np.int32),
                                           log_probs=top.values[row, :length].cpu().numpy().astype(np.float16)))
        if advance:
            advance(len(indexes))


def distillation_loss(logits: torch.Tensor, ids: torch.Tensor, teacher_log_probs: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of Σ_k p_k (log p_k − log q_k): p the teacher's top-k probabilities, q the
    student's full-vocabulary probabilities of those tokens — so mass moved to any other token (a company
    word) costs, which renormalizing the student over the top-k would hide."""
    if not mask.any():
        return logits.sum() * 0.0  # keeps the graph whole for data-parallel gradient sync
    teacher = teacher_log_probs[mask]
    student = torch.log_softmax(logits[mask].float(), dim=-1).gather(-1, ids[mask])
    return (teacher.exp() * (teacher - student)).sum(-1).mean()
