"""The frozen decoder prefix, computed once per clip.

When a method trains only some decoder layers (xattn, LoRA), every layer below the lowest trained one is
frozen, and its output depends only on the clip's encoder output and its (fixed) target tokens. So each
training example's hidden state entering the first trained layer is computed once, kept on disk, and every
training step runs only the trained layers and above: on base with the last layer trained that is one of
six decoder layers, and the frozen layers' cross-attention keys and values over 1500 audio frames — most of
the decoder's cost — are never recomputed. The loss is the same as the full forward's (to float rounding).

Only valid without dropout (Whisper's released models train with none); otherwise the prefix is not
cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.files import write_atomically
from whisper_adapt.train.data import Example, model_batches


def decoder_layers(model) -> torch.nn.ModuleList:
    return model.get_decoder().layers


def prefix_depth(model, trained_layers: Sequence[int] | None) -> int:
    """How many decoder layers sit below every trained one and can be cached (0: none)."""
    config = model.config
    if not trained_layers or any(getattr(config, name, 0) for name in ("dropout", "attention_dropout",
                                                                        "activation_dropout", "decoder_layerdrop")):
        return 0
    return min(trained_layers)


@contextlib.contextmanager
def _capture_input(layer: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        captured.append(args[0].detach())

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


def with_prefix_files(examples: Sequence[Example], directory: Path) -> list[Example]:
    """`examples` pointing at their cached prefix (file per position in the list)."""
    return [replace(example, prefix_file=_prefix_file(directory, index)) for index, example in enumerate(examples)]


def _prefix_file(directory: Path, index: int) -> Path:
    return directory / f"{index:06d}.npy"


@torch.no_grad()
def fill_prefix_cache(model, examples: Sequence[Example], depth: int, directory: Path, n_mels: int,
                      pad_id: int, batch_size: int = 8, advance: Callable[[int], None] | None = None) -> None:
    """Write, for each example, the hidden state entering decoder layer `depth` (float32 .npy); the files are
    the run's own (they depend on its target tokens and on any stacked adapter), rewritten on every start."""
    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    for indexes, batch in model_batches(examples, n_mels, pad_id, next(model.parameters()).device, batch_size):
        hidden = _input_of_layer(model, depth, batch)
        for row, index in enumerate(indexes):
            length = len(examples[index].decoder_input_ids)
            path = _prefix_file(directory, index)
            write_atomically(path, partial(np.save, arr=hidden[row, :length].float().cpu().numpy()))
        if advance:
            advance(len(indexes))


def _input_of_layer(model, depth: int, batch: dict) -> torch.Tensor:
    """The hidden state entering decoder layer `depth` (the layers from `depth` on are skipped)."""
    layers = decoder_layers(model)
    with _skipping(layers, range(depth, len(layers))), _capture_input(layers[depth]) as captured:
        model.get_decoder()(input_ids=batch["decoder_input_ids"], encoder_hidden_states=_encoder_states(model, batch),
                            use_cache=False)  # as in the teacher pass: a key/value cache here is only memory
    return captured[0]


def _encoder_states(model, batch: dict) -> torch.Tensor:
    if "encoder_outputs" in batch:
        return batch["encoder_outputs"][0]
    return model.get_encoder()(batch["input_features"]).last_hidden_state


class _Passthrough(torch.nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@contextlib.contextmanager
def _skipping(layers: torch.nn.ModuleList, indexes: Sequence[int]) -> Iterator[None]:
    saved = {i: layers[i] for i in indexes}
    try:
        for i in indexes:
            layers[i] = _Passthrough()
        yield
    finally:
        for i, layer in saved.items():
            layers[i] = layer


@contextlib.contextmanager
def feeding_prefix(model, depth: int) -> Iterator[Callable[[torch.Tensor], None]]:
    """Inside, the layers below `depth` are skipped and layer `depth` receives the tensor last passed to the
    yielded setter (the batch's cached prefix) instead of their output."""
    holder: list[torch.Tensor | None] = [None]

    def hook(module, args, kwargs):
        return (holder[0], *args[1:]), kwargs

    def feed(prefix: torch.Tensor) -> None:
        holder[0] = prefix

    layers = decoder_layers(model)
    handle = layers[depth].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with _skipping(layers, range(depth)):
            yield feed
    finally:
        handle.remove()
