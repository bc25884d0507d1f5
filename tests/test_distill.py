"""Self-distillation on replayed clips: the loss itself, and what it does to a trained model."""

from __future__ import annotations

import pytest
import torch

from whisper_adapt.train.distill import TOP_K, distillation_loss


def _teacher(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top = torch.log_softmax(logits, dim=-1).topk(TOP_K, dim=-1)
    return top.indices, top.values


def test_distillation_loss_is_zero_at_the_teacher_and_grows_when_mass_moves_elsewhere():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 64)
    ids, log_probs = _teacher(logits)
    mask = torch.tensor([[True] * 5, [False] * 5])
    assert distillation_loss(logits, ids, log_probs, mask).item() == pytest.approx(0.0, abs=1e-6)
    outside = [t for t in range(64) if t not in set(ids[0, 0].tolist())][0]
    moved = logits.clone()
    moved[0, 0, outside] += 8.0  # a token the teacher never ranked takes the probability
    assert distillation_loss(moved, ids, log_probs, mask).item() > 0.1
    unmasked_change = logits.clone()
    unmasked_change[1] += torch.randn(5, 64) * 5  # rows without a teacher do not count
    assert distillation_loss(unmasked_change, ids, log_probs, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(logits, ids, log_probs, torch.zeros_like(mask)).item() == 0.0


def test_only_positions_where_the_teacher_was_right_are_distilled():
    from whisper_adapt.train.data import IGNORE_INDEX, collate

    ids = torch.arange(4 * TOP_K).reshape(4, TOP_K)  # top-1 tokens 0, 16, 32, 48
    item = {"decoder_input_ids": (1, 2, 3, 4), "labels": (IGNORE_INDEX, 16, 99, 48), "encoder_hidden": torch.zeros(3, 2),
            "teacher_ids": ids, "teacher_log_probs": torch.zeros(4, TOP_K)}
    plain = {"decoder_input_ids": (1, 2), "labels": (5, 6), "encoder_hidden": torch.zeros(3, 2)}
    batch = collate([item, plain], pad_id=0)
    assert batch["teacher_mask"].tolist() == [[False, True, False, True], [False] * 4]


def _mean_kl_to_base(base, adapted, clips, tokenizer) -> float:
    """KL(base ‖ adapted) over the target positions of `clips`, teacher-forced on their transcripts."""
    from whisper_adapt.hf_decode import make_prompt
    from whisper_adapt.train import data as train_data

    prompt = make_prompt(tokenizer)
    examples, _ = train_data.build_examples(clips, tokenizer, prompt, None, 0.0, 0, base.config.max_target_positions)
    batch = train_data.collate([train_data.ExampleDataset(examples, 80)[i] for i in range(len(examples))], prompt.eot)
    mask = batch.pop("labels") != train_data.IGNORE_INDEX
    with torch.no_grad():
        p = torch.log_softmax(base(**batch).logits, -1)[mask]
        q = torch.log_softmax(adapted(**batch).logits, -1)[mask]
    return (p.exp() * (p - q)).sum(-1).mean().item()


@pytest.mark.slow
def test_distillation_keeps_the_replayed_clips_predictions_near_the_unadapted_model(tiny_clips, tmp_path):
    """Real base (a random tiny model spreads its probability too thin for a top-k teacher to matter): after
    training on the organization's clips, the replayed clips' predictions stay closer to the unadapted model's
    with distillation than without."""
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.models import resolve_model
    from whisper_adapt.train.adapter import load_adapted_model
    from whisper_adapt.train.assemble import TrainData, shipped_general_set
    from whisper_adapt.train.trainer import TrainOptions, train_adapter

    replay = shipped_general_set()[:6]
    data = TrainData(tiny_clips, replay=replay)
    base = load_adapted_model("base", []).eval()
    tokenizer = load_tokenizer(resolve_model("base", "hf"))
    kl = {}
    for weight in (0.0, 1.0):
        # Clean clips only: the teacher's reach is the subject here, and room variants would double the run.
        options = TrainOptions(epochs=3, batch_size=7, lr=1e-3, warmup_steps=0, distill=weight, augment=None)
        result = train_adapter("base", data, tmp_path / str(weight), options)
        adapted = load_adapted_model("base", [result.adapter_dir]).eval()
        kl[weight] = _mean_kl_to_base(base, adapted, replay, tokenizer)
    assert len(list((tmp_path / "1.0" / "teacher").glob("*.npz"))) == len(tiny_clips) + len(replay)
    assert not (tmp_path / "0.0" / "teacher").exists()
    assert kl[1.0] < 0.8 * kl[0.0], kl  # measured 0.82 vs 1.24
