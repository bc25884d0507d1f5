"""The meeting room in training data: rendered variants, augmented replay, non-speech clips and their target."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from whisper_adapt.audio import audio_duration_s, decode_audio
from whisper_adapt.augment import AugmentOptions
from whisper_adapt.train.assemble import TrainData, shipped_general_set
from whisper_adapt.nonspeech import KINDS as NONSPEECH_KINDS
from whisper_adapt.train.variants import add_acoustics


@pytest.fixture(scope="module")
def data(tiny_clips) -> TrainData:
    """Four training clips, and a replay of general speech that holds one training clip's very words."""
    replay = shipped_general_set()[:12]
    same_words = replace(replay[0], clip_id="same-words", text=tiny_clips[0].text)
    return TrainData(tiny_clips[:4], replay=[same_words, *replay[1:]], replay_per_epoch=4,
                     description={"replay_rotation": 3})


def test_every_clip_gets_its_variants_rendered_once_and_listed(data, tmp_path):
    options = AugmentOptions(variants=3)
    first = add_acoustics(data, options, tmp_path, seed=0)
    assert set(first.variants) == {clip.clip_id for clip in data.train}
    files = [variant.audio_path for group in first.variants.values() for variant in group]
    assert len(files) == 12 and all(path.parent == tmp_path / "variants" for path in files)
    for clip in data.train:
        for variant in first.variants[clip.clip_id]:
            assert variant.text == clip.text and variant.clip_id.startswith(f"{clip.clip_id}#v")
            ratio = audio_duration_s(variant.audio_path) / audio_duration_s(clip.audio_path)
            assert 0.89 < ratio < 1.12  # speed perturbation at most
            assert not np.array_equal(decode_audio(variant.audio_path)[:1000], decode_audio(clip.audio_path)[:1000])
    manifest = json.loads((tmp_path / "variants" / "variants.json").read_text())
    assert all(manifest[path.name]["describe"] for path in files)
    effects = first.description["augment"]["effects"]
    assert sum(effects.values()) == sum(len(entry["chain"]) for entry in manifest.values()) and "room" in effects
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.glob("variants/*.wav")}
    again = add_acoustics(data, options, tmp_path, seed=0)
    assert again == first  # a rerun or --resume renders nothing and trains on the same files
    assert {path: path.stat().st_mtime_ns for path in tmp_path.glob("variants/*.wav")} == stamps
    other = add_acoustics(data, options, tmp_path / "other", seed=1)
    assert [v.audio_path.name for g in other.variants.values() for v in g] == [p.name for p in files]
    assert any(decode_audio(a).tolist() != decode_audio(b).tolist() for a, b in
               zip([v.audio_path for g in other.variants.values() for v in g], files))


def test_babble_never_speaks_the_clips_own_words(data, tmp_path):
    add_acoustics(data, AugmentOptions(variants=8, noise_p=1.0, babble_p=1.0), tmp_path, seed=0)
    manifest = json.loads((tmp_path / "variants" / "variants.json").read_text())
    texts = {clip.clip_id: clip.text for clip in data.train + data.replay}
    mixed = [(entry["clip"], other) for entry in manifest.values() if "babble" in entry.get("chain", {})
             for other in entry["chain"]["babble"]["clips"]]
    assert len(mixed) > 20
    assert all(texts[other] != texts[clip] for clip, other in mixed)
    assert any(other == "same-words" for _, other in mixed)  # it is babble for the other clips


@pytest.mark.parametrize("share,expected", [(0.0, 0), (1.0, 12)])
def test_replay_is_augmented_in_place_at_its_share(data, tmp_path, share, expected):
    augmented = add_acoustics(data, AugmentOptions(variants=0, replay_augmented=share), tmp_path, seed=0)
    assert [c.clip_id for c in augmented.replay] == [c.clip_id for c in data.replay]
    assert sum(c.audio_path.parent == tmp_path / "variants" for c in augmented.replay) == expected
    assert augmented.variants == {}
    assert augmented.description["augment"]["replay_augmented_clips"] == expected


def test_nonspeech_clips_are_a_share_of_the_epoch_in_every_kind(data, tmp_path):
    augmented = add_acoustics(data, AugmentOptions(variants=1, nonspeech_share=0.2), tmp_path, seed=0)
    speech_per_epoch = 4 * 2 + 4  # each clip clean and as a variant, and the replay draw
    assert augmented.nonspeech_per_epoch == round(speech_per_epoch * 0.2 / 0.8)
    assert len(augmented.nonspeech) == augmented.nonspeech_per_epoch * 3  # the replay's rotation
    kinds = {clip.clip_id.rsplit("-", 1)[1] for clip in augmented.nonspeech + augmented.nonspeech_check}
    assert kinds == set(NONSPEECH_KINDS)
    assert len(augmented.nonspeech_check) == 10 and all(c.text == "" for c in augmented.nonspeech)
    off = add_acoustics(data, AugmentOptions(nonspeech_share=0.0), tmp_path / "off", seed=0)
    assert off.nonspeech == [] and off.nonspeech_check == [] and off.nonspeech_per_epoch == 0


def test_nonspeech_target_is_whispers_no_speech_answer(tiny_whisper_dir):
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.hf_decode import make_prompt
    from whisper_adapt.train.data import IGNORE_INDEX, nonspeech_sequence, target_sequence

    tokenizer = load_tokenizer(tiny_whisper_dir)
    prompt = make_prompt(tokenizer, "ja")
    assert tokenizer.convert_ids_to_tokens(prompt.no_speech) in ("<|nospeech|>", "<|nocaptions|>")
    inputs, labels = nonspeech_sequence(prompt)
    assert inputs == prompt.plain
    assert labels == [prompt.no_speech, IGNORE_INDEX, IGNORE_INDEX, prompt.eot]
    text = tokenizer("上期", add_special_tokens=False).input_ids
    for duration in (None, 2.0):
        _, plain = target_sequence(text, prompt, duration)
        _, said = target_sequence(text, prompt, duration, label_language=True)
        assert plain[0] == IGNORE_INDEX and said[0] == prompt.language and said[1:] == plain[1:]


def test_training_with_nonspeech_raises_the_no_speech_probability(tiny_whisper_dir, tiny_clips, tmp_path):
    """End to end on the tiny model: the held-out non-speech clips' no-speech probability, read each epoch,
    rises and what the model writes there falls when non-speech is trained; the run records what it trained
    on. (The tiny model's logits are nearly uniform, ~2e-5 a token, so the rise is relative.)"""
    from whisper_adapt.train.trainer import TrainOptions, train_adapter

    options = TrainOptions(epochs=3, batch_size=4, lr=3e-2, warmup_steps=0, average_share=0.0,
                           augment=AugmentOptions(variants=1, nonspeech_share=0.4, rooms=2, nonspeech_s=(2.0, 4.0)))
    result = train_adapter(tiny_whisper_dir, TrainData(tiny_clips[:6], validation=tiny_clips[6:]), tmp_path, options)
    probabilities = [epoch["nonspeech_prob"] for epoch in result.history]
    invented = [epoch["nonspeech_chars_per_min"] for epoch in result.history]
    assert probabilities[-1] > 1.2 * probabilities[0], probabilities
    assert invented[-1] < 0.5 * invented[0], invented
    state = json.loads((tmp_path / "checkpoints" / "epoch-3" / "state.json").read_text())
    described = state["config"]["data"]["augment"]  # what adapter.json's "training" holds too
    assert described["variants"] == 1 and described["variant_clips"] == 6 and described["nonspeech_clips"] > 0


@pytest.fixture(scope="module")
def voices() -> list[np.ndarray]:
    return [decode_audio(clip.audio_path) for clip in shipped_general_set()[:10]]


@pytest.mark.parametrize("kind", ["room", "keyboard", "quiet"])
def test_background_sounds_hold_no_speech_for_vad(kind, voices):
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from whisper_adapt.audio import SAMPLE_RATE
    from whisper_adapt.train.variants import training_nonspeech

    for seed in range(3):
        sound = training_nonspeech(kind, 6.0, np.random.default_rng(seed), voices)
        assert len(sound) == 6 * SAMPLE_RATE and np.abs(sound).max() <= 0.5
        assert get_speech_timestamps(sound, VadOptions()) == []


def test_training_murmur_is_voices_behind_a_wall(voices):
    """Many talkers, low-passed below 1.2 kHz: the sound of a meeting next door, with no word to write."""
    from whisper_adapt.audio import SAMPLE_RATE
    from whisper_adapt.train.variants import training_nonspeech

    murmur = training_nonspeech("murmur", 6.0, np.random.default_rng(0), voices)
    spectrum = np.abs(np.fft.rfft(murmur)) ** 2
    frequencies = np.fft.rfftfreq(len(murmur), 1 / SAMPLE_RATE)
    assert spectrum[frequencies > 1300].sum() < 1e-3 * spectrum[(frequencies > 100) & (frequencies < 1000)].sum()
    assert -46 < 10 * np.log10(np.mean(murmur.astype(np.float64) ** 2)) < -24
