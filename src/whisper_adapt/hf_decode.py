"""Greedy decoding of a Hugging Face Whisper: the prompt's special tokens and a short guarded greedy loop.

Training scores every epoch with it (train/validate.py, on cached encoder outputs) and export checks the
merged model against its CTranslate2 conversion with it. The decode is our own short greedy loop rather
than `generate()`: it takes encoder outputs directly, suppresses the same tokens faster-whisper does, stops
at a length proportional to the clip's duration, and collapses loops with the same guards as `transcribe`,
so one looping clip can neither hang an epoch nor dominate its score.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.guards import GuardOptions, collapse_repeats, count_loops

# Japanese speech rarely exceeds ~12 characters (about as many tokens) a second; twice that plus a margin
# bounds a looping decode without ever cutting real speech.
TOKENS_PER_S_MAX = 25
TOKENS_MARGIN = 10


@dataclass(frozen=True)
class Prompt:
    """Whisper's special tokens for a language, looked up once from the tokenizer."""

    sot: int
    language: int
    transcribe: int
    no_timestamps: int
    eot: int
    no_speech: int  # what Whisper predicts after <|startoftranscript|> where nobody speaks

    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1

    @property
    def plain(self) -> list[int]:
        return [self.sot, self.language, self.transcribe, self.no_timestamps]


def make_prompt(tokenizer, language: str = "ja") -> Prompt:
    ids = tokenizer.convert_tokens_to_ids
    language_id = ids(f"<|{language}|>")
    if language_id == tokenizer.unk_token_id:
        raise WhisperAdaptError(f"unknown language '{language}' for this model's tokenizer")
    # Whisper large-v3 names it <|nospeech|>; the earlier multilingual vocabularies <|nocaptions|>.
    no_speech = ids("<|nospeech|>")
    if no_speech == tokenizer.unk_token_id:
        no_speech = ids("<|nocaptions|>")
    return Prompt(ids("<|startoftranscript|>"), language_id, ids("<|transcribe|>"), ids("<|notimestamps|>"),
                  ids("<|endoftext|>"), no_speech)


@dataclass(frozen=True)
class Decoded:
    text: str
    loops: int
    no_speech_prob: float = 0.0  # of <|nospeech|> right after <|startoftranscript|>, as faster-whisper reads it
    avg_logprob: float = 0.0  # mean log-probability of the decoded tokens (0 when none)


def suppressed_ids(model, prompt: Prompt) -> list[int]:
    """Tokens never produced in plain transcription: Whisper's suppress list and every special token
    except end-of-text (timestamps included, as this decode runs without them)."""
    vocab = model.config.vocab_size
    special = [i for i in range(prompt.eot + 1, vocab)]
    return sorted(set(model.generation_config.suppress_tokens or []) | set(special))


@functools.cache
def _cache_keyword() -> str:
    """The name transformers gives the decoder's KV cache: `cache` in recent 5.x, `past_key_values` before (that
    name is deprecated and goes in 5.40). Read off the class, so PEFT or DDP wrappers around it do not matter."""
    from transformers import WhisperForConditionalGeneration

    taken = inspect.signature(WhisperForConditionalGeneration.forward).parameters
    return "cache" if "cache" in taken else "past_key_values"


@torch.no_grad()
def greedy_decode(model, hidden: torch.Tensor, durations_s: Sequence[float], prompt: Prompt,
                  tokenizer, guards: GuardOptions = GuardOptions(), max_tokens: int | None = None) -> list[Decoded]:
    """Decode a batch of encoder outputs [batch, frames, d_model] greedily with a KV cache; `max_tokens`
    bounds every clip's output further."""
    batch = hidden.shape[0]
    device = hidden.device
    per_clip_limit = [min(int(TOKENS_MARGIN + TOKENS_PER_S_MAX * d), max_tokens or 10**6) for d in durations_s]
    limit = min(model.config.max_target_positions - len(prompt.plain), max(per_clip_limit))
    suppress = torch.tensor(suppressed_ids(model, prompt), device=device)
    begin_suppress = torch.tensor(model.generation_config.begin_suppress_tokens or [], device=device, dtype=torch.long)
    tokens = torch.tensor([prompt.plain] * batch, device=device)
    generated = [[] for _ in range(batch)]
    done = [False] * batch
    past = None
    keyword = _cache_keyword()
    encoder_outputs = (hidden,)
    step_input = tokens
    no_speech = torch.zeros(batch)
    logprob_sums = torch.zeros(batch)
    for step in range(limit):
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=step_input, use_cache=True, **{keyword: past})
        past = getattr(out, keyword)
        if step == 0:
            no_speech = out.logits[:, 0, :].float().softmax(dim=-1)[:, prompt.no_speech].cpu()
        logits = out.logits[:, -1, :].float()
        logits[:, suppress] = -torch.inf
        if step == 0 and len(begin_suppress):
            logits[:, begin_suppress] = -torch.inf
        next_tokens = logits.argmax(dim=-1)
        chosen = logits.log_softmax(dim=-1).gather(1, next_tokens[:, None])[:, 0].cpu()
        for row, token in enumerate(next_tokens.tolist()):
            if done[row]:
                continue
            if token == prompt.eot or len(generated[row]) >= per_clip_limit[row]:
                done[row] = True
            else:
                generated[row].append(token)
                logprob_sums[row] += chosen[row]
        if all(done):
            break
        step_input = next_tokens[:, None]
    return [_finish(tokenizer.decode(ids, skip_special_tokens=True), guards, float(no_speech[row]),
                    float(logprob_sums[row]) / max(len(ids), 1)) for row, ids in enumerate(generated)]


def _finish(text: str, guards: GuardOptions, no_speech_prob: float, avg_logprob: float) -> Decoded:
    text = text.strip()
    return Decoded(collapse_repeats(text, guards), count_loops(text, guards), no_speech_prob, avg_logprob)
