"""Adaptation on the tiny random Whisper: one table of methods run through the same checks (peft style)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from whisper_adapt.labeled import LabeledClip
from whisper_adapt.train.adapter import apply_adapter, load_adapted_model, read_adapter_info
from whisper_adapt.train.methods import MethodOptions
from whisper_adapt.train.scoring import choose_epoch, choose_kept
from whisper_adapt.train.assemble import TrainData
from whisper_adapt.train.trainer import TrainOptions, train_adapter

# The tiny model has two decoder layers, both adapted by default: these tests choose the last one alone, so that
# there are frozen layers to keep unchanged and to cache.
LAST_LAYER = MethodOptions(layers=(-1,))
# Which parameters each method may change (on the tiny model, layer -1 is decoder layer 1).
EXPECTED = {
    "xattn": lambda n: n.startswith("model.decoder.layers.1.encoder_attn.") and "q_proj" not in n,
    "lora": lambda n: n.startswith("model.decoder.layers.1.") and n.endswith("_proj.weight")
    and ("self_attn." in n or "encoder_attn." in n),
    "decoder": lambda n: n.startswith("model.decoder.") or n == "proj_out.weight",
    "full": lambda n: True,
}


@pytest.fixture(scope="session")
def trained(tiny_whisper_dir, tiny_clips, tmp_path_factory):
    """Each method trained once (3 epochs) and shared by the checks below."""
    out = {}
    for method in EXPECTED:
        directory = tmp_path_factory.mktemp(f"train-{method}")
        # The clips as they are: these checks are about each method's parameters, not the room.
        options = TrainOptions(method=method, method_options=LAST_LAYER, epochs=3, batch_size=4, lr=3e-2,
                               warmup_steps=0, augment=None)
        out[method] = train_adapter(tiny_whisper_dir, TrainData(tiny_clips), directory, options)
    return out


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", list(EXPECTED))
def test_method_changes_exactly_its_parameters(method, trained, tiny_whisper_dir):
    before = _state(load_adapted_model(tiny_whisper_dir, []))
    after = _state(load_adapted_model(tiny_whisper_dir, [trained[method].adapter_dir]))
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    allowed = {name for name in before if EXPECTED[method](name)}
    assert changed, "training changed nothing"
    assert changed <= allowed, sorted(changed - allowed)[:5]
    if method in ("xattn", "lora"):
        assert changed == allowed  # every targeted tensor moved


@pytest.mark.parametrize("method", list(EXPECTED))
def test_loss_falls_when_overfitting(method, trained):
    losses = [h["train_loss"] for h in trained[method].history[1:]]
    assert losses[-1] < losses[0] * 0.99, losses


def test_adapters_are_small_and_self_describing(trained, tiny_whisper_dir):
    xattn = trained["xattn"].adapter_dir
    info = read_adapter_info(xattn)
    # 3 epochs: the last 0.8 of them (2 and 3) averaged; with no validation set the average is kept
    assert (info.method, info.layers, info.kept_epochs) == ("xattn", [1], [2, 3])
    assert info.training["options"]["lr"] == 3e-2 and len(info.epochs) == 4
    full_size = sum(p.stat().st_size for p in tiny_whisper_dir.glob("*.safetensors"))
    assert sum(p.stat().st_size for p in xattn.iterdir()) < 0.02 * full_size
    lora = trained["lora"].adapter_dir
    assert json.loads((lora / "adapter_config.json").read_text())["r"] == 8  # a valid PEFT adapter too


@pytest.mark.parametrize("method", ["xattn", "decoder"])
def test_loaded_adapter_holds_the_trained_weights(method, trained, tiny_whisper_dir):
    """Saved as float16 changes, merged back onto the base: the mean of the kept epochs' tensors, to float16
    rounding of the change (far below what alters a decode)."""
    from safetensors.torch import load_file

    result = trained[method]
    epochs = [load_file(str(result.adapter_dir.parent / "checkpoints" / f"epoch-{epoch}" / "trained.safetensors"))
              for epoch in result.kept_epochs]
    assert len(epochs) == 2 and not torch.equal(*(e["model.decoder.layers.1.encoder_attn.v_proj.weight"]
                                                  for e in epochs))
    kept = {name: (epochs[0][name] + epochs[1][name]) / 2 for name in epochs[0]}
    loaded = dict(load_adapted_model(tiny_whisper_dir, [result.adapter_dir]).named_parameters())
    base = dict(load_adapted_model(tiny_whisper_dir, []).named_parameters())
    for name, tensor in kept.items():
        change = (tensor - base[name]).abs().max().item()
        assert torch.allclose(loaded[name], tensor, atol=1e-3 * change + 1e-7), name


def test_lora_adapter_merged_and_unmerged_give_same_logits(trained, tiny_whisper_dir):
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[50258, 50266, 50359, 50363, 100, 200]])
    merged = load_adapted_model(tiny_whisper_dir, [trained["lora"].adapter_dir])
    base = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir)
    unmerged = PeftModel.from_pretrained(base, str(trained["lora"].adapter_dir)).eval()
    with torch.no_grad():
        a = merged(input_features=features, decoder_input_ids=tokens).logits
        b = unmerged(input_features=features, decoder_input_ids=tokens).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_a_stacked_adapter_needs_its_lower_stage_in_order(trained, tiny_whisper_dir, tiny_clips, tmp_path, capsys):
    """`export` of an adapter trained with --stack-on silently dropped the lower stage."""
    from whisper_adapt.cli import main
    from whisper_adapt.errors import ModelError

    lower = trained["xattn"].adapter_dir
    options = TrainOptions(method_options=MethodOptions(layers=(-2,)), epochs=1, batch_size=4, lr=3e-2,
                           warmup_steps=0, average_share=0, distill=0)
    upper = train_adapter(tiny_whisper_dir, TrainData(tiny_clips[:4]), tmp_path / "upper", options,
                          stack_on=(lower,)).adapter_dir
    merged = load_adapted_model(tiny_whisper_dir, [lower, upper])
    assert not torch.equal(_state(merged)["model.decoder.layers.0.encoder_attn.k_proj.weight"],
                           _state(load_adapted_model(tiny_whisper_dir, [lower]))["model.decoder.layers.0.encoder_attn.k_proj.weight"])
    for wrong in ([upper], [upper, lower], [lower, lower, upper]):
        with pytest.raises(ModelError, match="give them in training order"):
            load_adapted_model(tiny_whisper_dir, wrong)
    status = main(["export", "--adapter", str(upper), "--out", str(tmp_path / "model"), "--model", str(tiny_whisper_dir)])
    assert status == 2 and "trained on top of 1 earlier stage" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "model").exists()


def test_adapter_refuses_another_base(trained, tiny_whisper_dir):
    from transformers import WhisperForConditionalGeneration

    from whisper_adapt.errors import ModelError

    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir)
    with pytest.raises(ModelError, match="another base model"):
        apply_adapter(model, trained["xattn"].adapter_dir, base_sha256="0" * 64)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        # epoch 2 has the best recall but forgets beyond the 0.5-point budget: epoch 1 is kept
        ([dict(epoch=0, validation_cer=0.3, validation_term_recall=0.1, general_cer=0.10),
          dict(epoch=1, validation_cer=0.2, validation_term_recall=0.7, general_cer=0.104),
          dict(epoch=2, validation_cer=0.1, validation_term_recall=0.9, general_cer=0.2)], 1),
        # nothing beats the unadapted model: say so (None) instead of shipping a worse one
        ([dict(epoch=0, validation_cer=0.2, validation_term_recall=0.5, general_cer=0.1),
          dict(epoch=1, validation_cer=0.3, validation_term_recall=0.5, general_cer=0.1)], None),
        # equal recall: the lower validation CER wins; then the earlier epoch
        ([dict(epoch=0, validation_cer=0.3, validation_term_recall=0.2, general_cer=0.1),
          dict(epoch=1, validation_cer=0.2, validation_term_recall=0.8, general_cer=0.1),
          dict(epoch=2, validation_cer=0.15, validation_term_recall=0.8, general_cer=0.1),
          dict(epoch=3, validation_cer=0.15, validation_term_recall=0.8, general_cer=0.1)], 2),
        # no validation set at all: the last epoch
        ([dict(epoch=0), dict(epoch=1), dict(epoch=2)], 2),
        # no validation set: the last epoch within the general-CER budget, or none
        ([dict(epoch=0, general_cer=0.1), dict(epoch=1, general_cer=0.103), dict(epoch=2, general_cer=0.2)], 1),
        ([dict(epoch=0, general_cer=0.1), dict(epoch=1, general_cer=0.2)], None),
    ],
)
def test_choose_epoch(history, expected):
    assert choose_epoch(history, budget=0.005) == expected


HISTORY = [dict(epoch=0, validation_cer=0.3, validation_term_recall=0.1, general_cer=0.10),
           dict(epoch=1, validation_cer=0.2, validation_term_recall=0.7, general_cer=0.104),
           dict(epoch=2, validation_cer=0.1, validation_term_recall=0.9, general_cer=0.103)]


@pytest.mark.parametrize(
    ("average", "expected"),
    [
        # within budget and better than the unadapted model: kept, even with a lower recall than epoch 2
        (dict(epochs=[1, 2], validation_cer=0.15, validation_term_recall=0.8, general_cer=0.101), [1, 2]),
        # beyond the budget: the best single epoch
        (dict(epochs=[1, 2], validation_cer=0.15, validation_term_recall=0.8, general_cer=0.106), [2]),
        # no better than the unadapted model: the best single epoch
        (dict(epochs=[1, 2], validation_cer=0.3, validation_term_recall=0.1, general_cer=0.1), [2]),
        (None, [2]),
        # judged against the unadapted model on its own wider check when it has one
        (dict(epochs=[1, 2], validation_cer=0.15, validation_term_recall=0.8, general_cer=0.108,
              unadapted_general_cer=0.105), [1, 2]),
        (dict(epochs=[1, 2], validation_cer=0.15, validation_term_recall=0.8, general_cer=0.101,
              unadapted_general_cer=0.09), [2]),
    ],
)
def test_choose_kept_prefers_the_average(average, expected):
    assert choose_kept(HISTORY, average, budget=0.005) == expected


def test_nothing_is_kept_when_nothing_beats_the_unadapted_model():
    worse = dict(validation_cer=0.4, validation_term_recall=0.1, general_cer=0.2)
    assert choose_kept([HISTORY[0], dict(epoch=1, **worse)], dict(epochs=[1, 2], **worse), 0.005) == []


def test_an_adapter_that_changes_nothing_is_not_written(tiny_whisper_dir, tiny_clips, tmp_path):
    """No validation figures, so the kept-epoch rule alone would keep the last epoch (`train --lr 0` wrote
    an all-zero adapter and said "kept epoch 1"): a step too small to move any weight in float16 keeps none."""
    options = TrainOptions(method_options=LAST_LAYER, epochs=1, batch_size=4, lr=1e-30, warmup_steps=0,
                           average_share=0, distill=0)
    result = train_adapter(tiny_whisper_dir, TrainData(tiny_clips[:4]), tmp_path, options)
    assert result.kept_epochs == [] and result.adapter_dir is None
    assert not (tmp_path / "adapter").exists()
    assert choose_kept(result.history, None, 0.005) == [1]  # what was kept before


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=-1.0), dict(warmup_steps=-5), dict(forgetting_budget=-1.0),
                                 dict(weight_decay=-0.1)])
def test_train_options_refuse_values_that_cannot_train(bad):
    from whisper_adapt.errors import WhisperAdaptError

    with pytest.raises(WhisperAdaptError):
        TrainOptions(**bad)


@pytest.mark.parametrize(("share", "epochs", "expected"),
                         [(0.8, 10, [3, 4, 5, 6, 7, 8, 9, 10]), (0.8, 3, [2, 3]), (0.8, 1, []), (0.0, 10, []),
                          (1.0, 4, [1, 2, 3, 4])])
def test_averaged_epochs_are_the_last_share(share, epochs, expected):
    assert TrainOptions(epochs=epochs, average_share=share).averaged_epochs() == expected


def test_validation_is_scored_every_epoch(tiny_whisper_dir, tiny_clips, tmp_path):
    from whisper_adapt.glossary import parse_glossary

    glossary = parse_glossary("上期\n下期\n")
    data = TrainData(tiny_clips[2:], validation=tiny_clips[:2], general=tiny_clips[4:6], wide_check=tiny_clips[6:])
    result = train_adapter(tiny_whisper_dir, data, tmp_path, TrainOptions(epochs=2, batch_size=4), glossary)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    for h in result.history:
        assert {"validation_cer", "validation_term_recall", "general_cer", "validation_loops"} <= set(h)
        assert 0 <= h["validation_term_recall"] <= 1
    # The average's check is wider (4 clips, not 2), for it and for the unadapted model
    assert result.average["epochs"] == [1, 2] and {"validation_cer", "general_cer"} <= set(result.average)
    assert result.average["unadapted_general_cer"] == pytest.approx(
        _greedy_cer(tiny_whisper_dir, tiny_clips[4:], tmp_path / "encoded"))
    assert result.kept_epochs == choose_kept(result.history, result.average, 0.005)
    assert (result.adapter_dir is None) == (not result.kept_epochs)


def _greedy_cer(model_dir: Path, clips: list[LabeledClip], cache_dir: Path) -> float:
    """Pooled CER (numerals normalized) of the unadapted model's greedy transcripts, as validation decodes."""
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.evaluate import pooled_cer
    from whisper_adapt.hf_decode import make_prompt
    from whisper_adapt.train import data as train_data
    from whisper_adapt.train.validate import decode_examples

    model, tokenizer = load_adapted_model(model_dir, []), load_tokenizer(model_dir)
    prompt = make_prompt(tokenizer)
    files = train_data.fill_encoder_cache(model, clips, cache_dir)
    examples, _ = train_data.build_examples(clips, tokenizer, prompt, files, 0.0, 0, model.config.max_target_positions)
    decoded = decode_examples(model, examples, prompt, tokenizer)
    return pooled_cer([c.text for c in clips], [d.text for d in decoded], numerals=True)


@pytest.mark.parametrize("method", ["xattn", "lora"])
def test_cached_frozen_layers_train_like_the_full_forward(method, tiny_whisper_dir, tiny_clips, tmp_path):
    from safetensors.torch import load_file

    results = {}
    for cached in (True, False):
        options = TrainOptions(method=method, method_options=LAST_LAYER, epochs=2, batch_size=4, lr=3e-2,
                               warmup_steps=0, cache_prefix=cached, augment=None)
        results[cached] = train_adapter(tiny_whisper_dir, TrainData(tiny_clips), tmp_path / str(cached), options)
    assert any((tmp_path / "True" / "prefix").glob("*.npy")) and not (tmp_path / "False" / "prefix").exists()
    losses = {cached: [h["train_loss"] for h in r.history[1:]] for cached, r in results.items()}
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    trained = {cached: load_file(str(next(r.adapter_dir.glob("*.safetensors")))) for cached, r in results.items()}
    for name, tensor in trained[False].items():
        assert torch.allclose(trained[True][name], tensor, atol=1e-5), name


def _train_cli(data_dir: Path, out: Path, model: Path, general: Path, *extra: str, replay_share: str = "0") -> list[str]:
    return [sys.executable, "-m", "whisper_adapt", "train", "--corpus", str(data_dir), "--out", str(out),
            "--model", str(model), "--general", str(general), "--epochs", "4", "--batch-size", "2", "--lr", "1e-2",
            "--replay-share", replay_share, "--validation-share", "0", *extra]


def test_resume_after_sigkill_equals_an_uninterrupted_run(tiny_clips, tiny_whisper_dir, small_general_dir, tmp_path):
    from safetensors.torch import load_file

    from whisper_adapt.labeled import write_audiofolder

    # With replay, so that the resumed epochs must also draw the replay the uninterrupted run drew.
    data = write_audiofolder(tiny_clips, tmp_path / "data")
    subprocess.run(_train_cli(data, tmp_path / "whole", tiny_whisper_dir, small_general_dir, replay_share="0.3"), check=True,
                   capture_output=True)

    killed = subprocess.Popen(_train_cli(data, tmp_path / "killed", tiny_whisper_dir, small_general_dir, replay_share="0.3"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # generous: a loaded 2-core machine is slow, not broken
    while not (tmp_path / "killed" / "checkpoints" / "epoch-2").exists():
        assert killed.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "adapter").exists()
    subprocess.run(_train_cli(data, tmp_path / "killed", tiny_whisper_dir, small_general_dir, "--resume", replay_share="0.3"),
                   check=True, capture_output=True)

    whole = load_file(str(tmp_path / "whole" / "adapter" / "adapter.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "adapter" / "adapter.safetensors"))
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    history = json.loads((tmp_path / "killed" / "adapter" / "adapter.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4]


def test_a_new_run_refuses_a_directory_with_checkpoints(tiny_clips, tiny_whisper_dir, small_general_dir, tmp_path):
    from whisper_adapt.labeled import write_audiofolder

    data = write_audiofolder(tiny_clips[:4], tmp_path / "data")
    subprocess.run(_train_cli(data, tmp_path / "run", tiny_whisper_dir, small_general_dir), check=True, capture_output=True)
    again = subprocess.run(_train_cli(data, tmp_path / "run", tiny_whisper_dir, small_general_dir), capture_output=True, text=True)
    assert again.returncode == 2 and "add --resume" in again.stderr
    assert (tmp_path / "run" / "adapter" / "adapter.json").exists()  # the earlier run is untouched


def test_forgetting_safeguards_are_on_by_default_and_the_cli_sets_them(tiny_clips, tiny_whisper_dir, tmp_path):
    from whisper_adapt.augment import AugmentOptions
    from whisper_adapt.labeled import write_audiofolder
    from whisper_adapt.train.assemble import AssembleOptions

    data = write_audiofolder(tiny_clips[:4], tmp_path / "data")
    # A budget no epoch can miss: this test reads the options an adapter records, whatever a random model scores.
    bare = [sys.executable, "-m", "whisper_adapt", "train", "--corpus", str(data), "--model", str(tiny_whisper_dir),
            "--epochs", "1", "--batch-size", "4", "--validation-share", "0", "--forgetting-budget", "10"]
    runs = {"default": (), "off": ("--distill", "0", "--replay-share", "0.25", "--replay-own", "--average-share", "0")}
    shown = {name: subprocess.run([*bare, "--out", str(tmp_path / name), *extra], check=True, capture_output=True,
                                  text=True).stderr for name, extra in runs.items()}
    infos = {name: read_adapter_info(tmp_path / name / "adapter") for name in runs}
    # Where the time went, phase by phase, in adapter.json and printed at the end.
    phases = infos["default"].phases
    assert list(phases)[:4] == ["loading the model", "rendering room variants", "encoding clips", "teacher pass"]
    assert {"training steps", "validating epochs", "checking the average"} <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values()) and "teacher pass" not in infos["off"].phases
    assert "training took" in shown["default"] and "encoding clips" in shown["default"]
    training = {name: info.training for name, info in infos.items()}
    assert infos["default"].layers == [0, 1]  # the last two of the tiny model's two decoder layers
    assert training["default"]["options"]["distill"] == 1.0 and training["off"]["options"]["distill"] == 0.0
    assert training["default"]["options"]["average_share"] == 0.8 and training["off"]["options"]["average_share"] == 0
    # Left unset, the share is AssembleOptions' own default, not a copy of it in the CLI.
    assert training["default"]["data"]["replay_share"] == AssembleOptions().replay_share
    # Each clip is trained clean and as one of its room variants every epoch: the replay doubles to keep its share.
    assert training["default"]["data"]["replay_clips"] == 8 and training["off"]["data"]["replay_share"] == 0.25
    assert training["default"]["data"]["replay_pool"] == 8 * AssembleOptions().replay_rotation
    assert training["off"]["data"]["replay_own"] and not training["default"]["data"]["replay_own"]
    # The teacher reads the 4 clips, their variants, every clip an epoch may replay and the non-speech clips.
    augmented = training["default"]["data"]["augment"]
    assert augmented["variant_clips"] == 4 * AugmentOptions().variants and augmented["nonspeech_clips"] > 0
    expected = 4 + augmented["variant_clips"] + 8 * AssembleOptions().replay_rotation + augmented["nonspeech_clips"]
    assert len(list((tmp_path / "default" / "teacher").glob("*.npz"))) == expected
    assert not (tmp_path / "off" / "teacher").exists()


def test_resume_refuses_other_options(tiny_clips, tiny_whisper_dir, small_general_dir, tmp_path):
    from whisper_adapt.labeled import write_audiofolder

    data = write_audiofolder(tiny_clips[:4], tmp_path / "data")
    subprocess.run(_train_cli(data, tmp_path / "run", tiny_whisper_dir, small_general_dir), check=True, capture_output=True)
    other = subprocess.run(_train_cli(data, tmp_path / "run", tiny_whisper_dir, small_general_dir, "--resume", "--seed", "7"),
                           capture_output=True, text=True)
    assert other.returncode == 2 and "other options or data" in other.stderr


def test_export_decodes_like_the_merged_model(trained, tiny_whisper_dir, tmp_path):
    from whisper_adapt.cli import main

    out = tmp_path / "exported"
    assert main(["export", "--adapter", str(trained["xattn"].adapter_dir.parent), "--out", str(out),
                 "--model", str(tiny_whisper_dir), "--quantization", "float32"]) == 0
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["check"]["hf_text"] == manifest["check"]["ct2_text"]
    assert (out / "model.bin").is_file() and (out / "hf" / "model.safetensors").is_file()
    merged = load_adapted_model(tiny_whisper_dir, [trained["xattn"].adapter_dir]).state_dict()
    from transformers import WhisperForConditionalGeneration

    reloaded = WhisperForConditionalGeneration.from_pretrained(out / "hf").state_dict()
    assert all(torch.equal(merged[name], reloaded[name]) for name in merged)


KAMIKI_TRAIN = ("上期の売上を報告します。", "上期の目標は達成しました。", "上期の予算を確認しましょう。",
                "来年の上期に始めます。", "上期の計画は順調です。", "上期の結果をまとめました。")
KAMIKI_HELD_OUT = ("まず上期の数字を見てください。", "上期の会議は来週です。")


@pytest.mark.slow
def test_base_learns_a_term_it_missed(synth_wav, tmp_path):
    """Real base, synthesized speech: 上期 (read かみき) is missed before and recognized after, in an unseen voice."""
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.features import clip_features
    from whisper_adapt.hf_decode import greedy_decode, make_prompt
    from whisper_adapt.models import resolve_model

    train = [LabeledClip(f"k{i}", synth_wav(text, ("jf_alpha", "jm_kumo")[i % 2]), text, recording=f"k{i}")
             for i, text in enumerate(KAMIKI_TRAIN)]
    held_out = [synth_wav(text, "jf_tebukuro") for text in KAMIKI_HELD_OUT]
    tokenizer = load_tokenizer(resolve_model("base", "hf"))
    prompt = make_prompt(tokenizer)

    def transcripts(model) -> list[str]:
        texts = []
        for path in held_out:
            audio = decode_audio(path)
            with torch.no_grad():
                hidden = model.get_encoder()(torch.from_numpy(clip_features(audio))[None]).last_hidden_state
            texts.append(greedy_decode(model, hidden, [len(audio) / 16000], prompt, tokenizer)[0].text)
        return texts

    before = transcripts(load_adapted_model("base", []))
    assert not any("上期" in text for text in before), before
    result = train_adapter("base", TrainData(train), tmp_path, TrainOptions(epochs=3, batch_size=6, lr=1e-3))
    after = transcripts(load_adapted_model("base", [result.adapter_dir]))
    assert all("上期" in text for text in after), after


def test_data_parallel_on_two_cpu_processes(tiny_clips, tiny_whisper_dir, small_general_dir, tmp_path):
    """The same `train` under torchrun: two gloo processes share the batches, one writes the adapter."""
    from whisper_adapt.labeled import write_audiofolder

    data = write_audiofolder(tiny_clips[:4], tmp_path / "data")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "whisper_adapt",
               *_train_cli(data, tmp_path / "ddp", tiny_whisper_dir, small_general_dir)[3:]]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    info = json.loads((tmp_path / "ddp" / "adapter" / "adapter.json").read_text())
    assert [h["epoch"] for h in info["epochs"]] == [0, 1, 2, 3, 4]
    # 4 clips, batch 2 per process, 2 processes: one step per epoch — each process saw half the data.
    assert finished.stderr.count("adapter written to") == 2 and finished.stderr.count("epoch 1 loss") <= 2


def _clips(tmp_path, texts: list[str], recordings: list[str], prefix: str = "c") -> list[LabeledClip]:
    clips = []
    for index, (text, recording) in enumerate(zip(texts, recordings)):
        path = tmp_path / f"{prefix}{index}.wav"
        path.write_bytes(b"x" * (index + 1))
        clips.append(LabeledClip(f"{prefix}{index}", path, text, recording=recording))
    return clips


def test_general_speech_held_out_is_distinct_sentences_never_replayed_in_any_voice(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble

    glossary = parse_glossary("上期\n")
    clips = _clips(tmp_path, [f"上期の報告{i}です。" for i in range(20)], [f"r{i}" for i in range(20)])
    sentences = [f"今日は{i}時に帰ります。" for i in range(30)]
    general = _clips(tmp_path, [s for s in sentences for _ in range(3)], ["g"] * 90, prefix="g")  # 3 voices each
    data = assemble(clips, glossary, AssembleOptions(general_validation=10, replay_share=0.5), general=general)
    held = [c.text for c in data.general]
    assert len(held) == len(set(held)) == 10
    assert data.replay and not set(held) & {c.text for c in data.replay}
    # A general set of few sentences keeps half of them for replay.
    small = assemble(clips, glossary, AssembleOptions(general_validation=40), general=general)
    assert len(small.general) == 15 and small.replay


def test_the_wide_check_is_what_the_replay_and_the_epoch_check_left(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble

    glossary = parse_glossary("上期\n")
    clips = _clips(tmp_path, [f"上期の報告{i}です。" for i in range(20)], [f"r{i}" for i in range(20)])
    sentences = [f"今日は{i}時に帰ります。" for i in range(30)]
    general = _clips(tmp_path, [s for s in sentences for _ in range(3)], ["g"] * 90, prefix="g")  # 3 voices each
    options = dict(general_validation=10, replay_share=0.5, replay_rotation=1)
    data = assemble(clips, glossary, AssembleOptions(**options, wide_check=100), general=general)
    wide, replayed, held = ([c.text for c in data.wide_check], {c.text for c in data.replay},
                            {c.text for c in data.general})
    assert len(wide) == len(set(wide)) == 30 - len(held) - len(replayed) > 0  # every sentence left, once
    assert not set(wide) & (replayed | held)
    assert data.description["wide_check_clips"] == len(wide)
    few = assemble(clips, glossary, AssembleOptions(**options, wide_check=2), general=general)
    assert [c.clip_id for c in few.wide_check] == [c.clip_id for c in data.wide_check[:2]]
    assert [c.clip_id for c in few.replay] == [c.clip_id for c in data.replay]  # the replay draw is unchanged


def _term_and_own_talk_clips(tmp_path) -> tuple[list[LabeledClip], list[str]]:
    """100 clips holding 上期 and 30 of the organization's own talk without a term, each its own recording."""
    own_sentences = [f"明日の会議は{i}時からです。" for i in range(30)]
    texts = [f"上期の報告{i}です。" for i in range(100)] + own_sentences
    return _clips(tmp_path, texts, [f"r{i}" for i in range(130)]), own_sentences


def test_own_term_free_speech_is_replayed_only_when_asked(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble

    clips, own_sentences = _term_and_own_talk_clips(tmp_path)
    default = assemble(clips, parse_glossary("上期\n"))
    term_clips_only = assemble(clips[:100], parse_glossary("上期\n"))
    assert not {c.text for c in default.replay} & set(own_sentences)
    assert [c.clip_id for c in default.replay] == [c.clip_id for c in term_clips_only.replay]
    assert default.description["replay_source"]["own_term_free"] == 0 and not default.description["replay_own"]
    asked = assemble(clips, parse_glossary("上期\n"), AssembleOptions(replay_own=True))
    assert {c.text for c in asked.replay} & set(own_sentences) and asked.description["replay_own"]


def test_own_term_free_speech_is_replayed_among_the_packaged_set_which_alone_is_the_check(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble, shipped_general_set

    clips, own_sentences = _term_and_own_talk_clips(tmp_path)
    data = assemble(clips, parse_glossary("上期\n"),
                    AssembleOptions(replay_share=0.5, general_validation=40, replay_own=True))
    # The user's clips share the training's speakers, so they would flatter the check: it is the packaged set.
    assert len(data.general) == 40 and {c.text for c in data.general} <= {c.text for c in shipped_general_set()}
    assert not {c.text for c in data.general} & {c.text for c in data.replay}
    # Replay draws own and packaged clips alike: 30 own among ~1,130 packaged candidates, ~2.6% of the replay.
    own = [c.text in own_sentences for c in data.replay]
    assert 2 <= sum(own) <= 22 and not all(own[: sum(own)])
    assert data.description["replay_source"] == {"own_term_free": sum(own), "packaged": len(data.replay) - sum(own)}


def test_replay_rotation_sets_how_many_distinct_clips_a_run_replays(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble

    clips, _ = _term_and_own_talk_clips(tmp_path)
    fixed = assemble(clips[:100], parse_glossary("上期\n"), AssembleOptions(replay_rotation=1))
    rotating = assemble(clips[:100], parse_glossary("上期\n"), AssembleOptions(replay_rotation=3))
    assert len(fixed.replay) == fixed.replay_per_epoch == rotating.replay_per_epoch == len(fixed.train)
    assert len(rotating.replay) == 3 * rotating.replay_per_epoch
    assert rotating.description["replay_pool"] == len(rotating.replay)
    assert rotating.description["replay_clips"] == rotating.replay_per_epoch
    with pytest.raises(Exception, match="replay rotation"):
        AssembleOptions(replay_rotation=0)


def test_each_epoch_trains_on_all_own_clips_and_a_fresh_replay_draw():
    from whisper_adapt.train.data import EpochMix

    own, replay = list(range(5)), list(range(100, 140))
    mix = EpochMix(own, [], {"replay": (replay, 6)}, n_mels=80, seed=3)
    draws = []
    for epoch in range(1, 11):
        mix.set_epoch(epoch)
        assert len(mix) == 11 and mix.items[:5] == own
        assert len(set(mix.items[5:])) == 6 and set(mix.items[5:]) <= set(replay)
        draws.append(mix.items[5:])
    assert len({tuple(d) for d in draws}) == 10 and len({i for d in draws for i in d}) > 30
    again = EpochMix(own, [], {"replay": (replay, 6)}, n_mels=80, seed=3)
    again.set_epoch(4)
    assert again.items[5:] == draws[3]  # a resumed run draws what the first one did
    everything = EpochMix(own, [], {"replay": (replay[:4], 6)}, n_mels=80, seed=3)
    everything.set_epoch(2)
    assert len(everything) == 9 and everything.items[5:] == replay[:4]


def test_each_epoch_trains_every_clip_clean_and_as_one_of_its_variants():
    from whisper_adapt.train.data import EpochMix

    own = ["a", "b", "c"]
    variants = [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]]
    mix = EpochMix(own, variants, {"replay": (list(range(20)), 4), "nonspeech": (["n1", "n2", "n3"], 2)},
                   n_mels=80, seed=0)
    picks = []
    for epoch in range(1, 9):
        mix.set_epoch(epoch)
        assert len(mix) == 3 + 3 + 4 + 2 and mix.items[:3] == own
        chosen = mix.items[3:6]
        assert [item[0] for item in chosen] == own  # one variant of each clip, in order
        assert set(mix.items[10:]) <= {"n1", "n2", "n3"} and len(set(mix.items[10:])) == 2
        picks.append(tuple(chosen))
    assert len({p for p in picks}) > 1 and {v for p in picks for v in p} == {v for g in variants for v in g}


def test_with_all_clips_term_free_clips_are_trained_not_held_out_as_general_speech(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble

    texts = [f"上期の報告{i}です。" for i in range(20)] + [f"明日は{i}時に帰ります。" for i in range(20)]
    clips = _clips(tmp_path, texts, [f"r{i}" for i in range(40)])
    data = assemble(clips, parse_glossary("上期\n"), AssembleOptions(terms_only=False, validation_share=0.1))
    own = {c.clip_id for c in data.train + data.validation}
    assert len(own) == 40 and not own & {c.clip_id for c in data.general + data.replay}


def test_assemble_keeps_term_clips_holds_out_recordings_and_replays_general_speech(tmp_path):
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.train.assemble import AssembleOptions, assemble, shipped_general_set

    glossary = parse_glossary("上期\n品保\n")
    texts = [f"上期の報告{i}です。" if i % 3 else f"品保の確認{i}です。" for i in range(40)] + ["今日は晴れです。"] * 5
    clips = _clips(tmp_path, texts, [f"r{i % 8}" for i in range(45)])
    data = assemble(clips, glossary, AssembleOptions(replay_share=0.3, validation_share=0.25))
    own, replayed = data.train, data.replay
    assert all("上期" in c.text or "品保" in c.text for c in own + data.validation)
    assert {c.recording for c in own}.isdisjoint({c.recording for c in data.validation}) and data.validation
    assert data.replay_per_epoch == round(len(own) * 0.3 / 0.7)
    assert len(replayed) == data.replay_per_epoch * AssembleOptions().replay_rotation
    assert len({c.text for c in replayed}) == len(replayed)  # one voice of a sentence each
    assert all(c not in clips[:40] for c in replayed) and len(data.general) == 40
    assert not {c.clip_id for c in data.general} & {c.clip_id for c in own + replayed}
    source = data.description["replay_source"]
    packaged = {c.clip_id for c in shipped_general_set()}
    assert source["packaged"] == sum(c.clip_id in packaged for c in replayed)
    assert source["own_term_free"] + source["packaged"] == len(replayed)
    with pytest.raises(Exception, match="no reviewed clip holds a glossary term"):
        assemble(clips[40:], glossary)


def test_train_help_states_the_defaults_of_options_left_unset():
    import re

    from whisper_adapt.augment import AugmentOptions
    from whisper_adapt.train.assemble import AssembleOptions

    # Options without a literal default (the dataclasses hold the value) state it in their help text.
    shown = subprocess.run([sys.executable, "-m", "whisper_adapt", "train", "--help"], capture_output=True,
                           text=True, env={"COLUMNS": "120", "PATH": ""}, check=True).stdout
    flat = " ".join(line.strip("│ ") for line in shown.splitlines())
    defaults = {"--epochs": TrainOptions().epochs, "--lr": TrainOptions().lr, "--distill": TrainOptions().distill,
                "--term-weight": TrainOptions().term_weight,
                "--replay-share": AssembleOptions().replay_share,
                "--replay-rotation": AssembleOptions().replay_rotation,
                "--validation-share": AssembleOptions().validation_share,
                "--variants": AugmentOptions().variants, "--nonspeech-share": AugmentOptions().nonspeech_share}
    for option, default in defaults.items():
        own_help = " ".join(flat.split(f"{option} ", 1)[1].split(" --", 1)[0].split())
        stated = re.search(r"\(default ([^)]+)\)", own_help)
        assert stated and float(stated[1]) == default, own_help


def test_adapter_json_written_before_averaging_still_reads(trained, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained["xattn"].adapter_dir, old)
    info = json.loads((old / "adapter.json").read_text())
    del info["kept_epochs"], info["average"]
    (old / "adapter.json").write_text(json.dumps(info | {"chosen_epoch": 5}))
    assert read_adapter_info(old).kept_epochs == [5]


@pytest.mark.parametrize("timestamp_share", [0.0, 1.0])
def test_term_positions_point_at_the_tokens_spelling_the_terms(timestamp_share, tiny_whisper_dir, tiny_clips):
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.hf_decode import make_prompt
    from whisper_adapt.train import data as train_data

    tokenizer = load_tokenizer(tiny_whisper_dir)
    prompt = make_prompt(tokenizer)
    glossary = parse_glossary("上期 (かみき) ← 紙木\n田中部長\nミライ計画\n")
    examples, _ = train_data.build_examples(tiny_clips, tokenizer, prompt, None, timestamp_share, 0, 448, glossary)
    spelled = {e.clip.text: tokenizer.decode([e.labels[i] for i in e.term_positions]) for e in examples}
    assert spelled == {**{clip.text: "" for clip in tiny_clips}, "上期の売上を報告します。": "上期",
                       "田中部長が来ます。": "田中部長", "ミライ計画を始めます。": "ミライ計画"}
    assert all(e.term_positions == () for e in train_data.build_examples(tiny_clips, tokenizer, prompt, None,
                                                                          timestamp_share, 0, 448)[0])


def test_term_weight_scales_the_loss_at_term_tokens_only(tiny_whisper_dir, tiny_clips):
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.glossary import parse_glossary
    from whisper_adapt.hf_decode import make_prompt
    from whisper_adapt.train import data as train_data
    from whisper_adapt.train.trainer import term_weighted_loss

    model, tokenizer = load_adapted_model(tiny_whisper_dir, []), load_tokenizer(tiny_whisper_dir)
    prompt = make_prompt(tokenizer)
    examples, _ = train_data.build_examples(tiny_clips[:4], tokenizer, prompt, None, 0.5, 0, 448,
                                            parse_glossary("上期\nミライ計画\n"))
    dataset = train_data.ExampleDataset(examples, model.config.num_mel_bins)
    batch = train_data.collate([dataset[i] for i in range(len(examples))], prompt.eot)
    mask = batch.pop("term_mask")
    with torch.no_grad():
        output = model(**batch)
    labels = batch["labels"]
    per_token = torch.nn.functional.cross_entropy(output.logits.transpose(1, 2), labels, ignore_index=-100,
                                                  reduction="none")
    assert term_weighted_loss(output.logits, labels, mask, 1.0) == pytest.approx(output.loss.item(), rel=1e-5)
    assert mask.sum() == sum(len(e.term_positions) for e in examples) > 0
    terms_only = per_token[mask].mean().item()
    assert term_weighted_loss(output.logits, labels, mask, 1e6) == pytest.approx(terms_only, rel=1e-3)
    others = per_token[(labels != -100) & ~mask]
    weighted = (3 * per_token[mask].sum() + others.sum()) / (3 * mask.sum() + len(others))
    assert term_weighted_loss(output.logits, labels, mask, 3.0) == pytest.approx(weighted.item(), rel=1e-5)


def test_a_recipe_takes_the_given_settings_over_the_preset_over_the_defaults():
    from whisper_adapt.errors import WhisperAdaptError
    from whisper_adapt.train.recipe import build_recipe

    default = build_recipe()
    assert default.train == TrainOptions() and default.train.augment is not None
    original = build_recipe("original", train={"lr": 1e-3}, method={"layers": (-1,)}, data={"replay_share": 0.2})
    assert (original.train.lr, original.train.batch_size, original.train.average_share) == (1e-3, 2, 0.0)
    assert original.train.method_options == MethodOptions(layers=(-1,)) and original.data.replay_share == 0.2
    assert build_recipe(augment=False).train.augment is None
    assert build_recipe(acoustics={"variants": 0}).train.augment.variants == 0
    with pytest.raises(WhisperAdaptError, match="unknown preset 'nosuch'; choose from original"):
        build_recipe("nosuch")
