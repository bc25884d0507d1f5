"""Training methods as small registered strategies: which parameters train, and how they are saved and merged.

- xattn (default): the cross-attention key, value and output projections (weights and biases) of chosen
  decoder layers — what worked in practice on a few hundred clips without destroying general Japanese.
- lora: LoRA (peft) on the attention projections of chosen decoder layers.
- decoder: the whole decoder (kept for comparison: it forgets on small data).
- full: everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from whisper_adapt.errors import WhisperAdaptError

XATTN_PROJECTIONS = ("k_proj", "v_proj", "out_proj")
LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class MethodOptions:
    # Decoder layers, negative from the end: (-1,) is the last layer (31 on large, 5 on base). The last two by
    # default: on the recipe benchmark (bench/recipes.py, two companies × three seeds) they reached term recall
    # 0.904–0.958 with everyday CER −0.8 to −2.4 points on every run, where the last layer alone missed 0.90 on
    # one run of the ward (0.896); the adapter is twice as big (3.2 MB on base).
    layers: tuple[int, ...] = (-1, -2)
    lora_rank: int = 8
    lora_alpha: int = 16


@dataclass(frozen=True)
class Method:
    name: str
    freezes_encoder: bool
    # Trains only the chosen decoder layers (`MethodOptions.layers`): the layers below are frozen.
    trains_chosen_layers: bool
    # Returns the model to train (peft wraps it for LoRA) with requires_grad set.
    prepare: Callable[[torch.nn.Module, MethodOptions], torch.nn.Module]
    # peft trains it: peft saves, loads and merges its adapter (a valid PEFT adapter), not our float16 changes.
    peft: bool = False


def resolve_layers(model: torch.nn.Module, layers: tuple[int, ...]) -> list[int]:
    """Absolute decoder layer indexes; an index outside the decoder is a user error."""
    count = model.config.decoder_layers
    resolved = []
    for layer in layers:
        index = layer + count if layer < 0 else layer
        if not 0 <= index < count:
            raise WhisperAdaptError(f"decoder layer {layer} does not exist: this model has layers 0–{count - 1}")
        resolved.append(index)
    return sorted(set(resolved))


def xattn_parameter_names(model: torch.nn.Module, options: MethodOptions) -> list[str]:
    names = dict(model.named_parameters())
    wanted = []
    for index in resolve_layers(model, options.layers):
        for projection in XATTN_PROJECTIONS:
            for kind in ("weight", "bias"):  # Whisper's key projection has no bias
                name = f"model.decoder.layers.{index}.encoder_attn.{projection}.{kind}"
                if name in names:
                    wanted.append(name)
    return wanted


def _train_only(model: torch.nn.Module, names: set[str]) -> torch.nn.Module:
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in names)
    return model


def _prepare_xattn(model: torch.nn.Module, options: MethodOptions) -> torch.nn.Module:
    return _train_only(model, set(xattn_parameter_names(model, options)))


def _prepare_decoder(model: torch.nn.Module, options: MethodOptions) -> torch.nn.Module:
    # The output projection is tied to the token embedding, which is a decoder parameter.
    return _train_only(model, {n for n, _ in model.named_parameters() if n.startswith("model.decoder.")})


def _prepare_full(model: torch.nn.Module, options: MethodOptions) -> torch.nn.Module:
    return _train_only(model, {n for n, _ in model.named_parameters()})


def lora_target_modules(model: torch.nn.Module, options: MethodOptions) -> list[str]:
    return [
        f"model.decoder.layers.{index}.{block}.{projection}"
        for index in resolve_layers(model, options.layers)
        for block in ("self_attn", "encoder_attn")
        for projection in LORA_PROJECTIONS
    ]


def _prepare_lora(model: torch.nn.Module, options: MethodOptions) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=0.0,
                        target_modules=lora_target_modules(model, options), bias="none")
    return get_peft_model(model, config)


METHODS: dict[str, Method] = {
    "xattn": Method("xattn", freezes_encoder=True, trains_chosen_layers=True, prepare=_prepare_xattn),
    "lora": Method("lora", freezes_encoder=True, trains_chosen_layers=True, prepare=_prepare_lora, peft=True),
    "decoder": Method("decoder", freezes_encoder=True, trains_chosen_layers=False, prepare=_prepare_decoder),
    "full": Method("full", freezes_encoder=False, trains_chosen_layers=False, prepare=_prepare_full),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise WhisperAdaptError(f"unknown method '{name}'; choose from {', '.join(METHODS)}")
    return METHODS[name]


def saved_by_peft(name: str) -> bool:
    """Whether an adapter of the method named in its adapter.json is peft's own; an unknown name is not."""
    method = METHODS.get(name)
    return method is not None and method.peft


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a method trains (for LoRA: peft's adapter tensors), detached copies on CPU."""
    if hasattr(model, "peft_config"):
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def set_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load tensors `trainable_state` returned (for LoRA: peft's adapter tensors) back into the model."""
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
    else:
        model.load_state_dict(state, strict=False)
