"""Shared fixtures: a tiny random Whisper (fast tests) and the packaged base model (slow tests)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Keep the test run's model cache apart from the user's, but reuse the assembled base across tests."""
    import os

    cache = Path(os.environ.get("WHISPER_ADAPT_TEST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["WHISPER_ADAPT_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return cache


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, model_cache) -> Path:
    """A randomly initialised Whisper (2+2 layers, d_model 64) in Hugging Face form, with the real
    multilingual tokenizer so that CTranslate2 conversion and faster-whisper work on it."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_adapt import convert
    from whisper_adapt.models import packaged_base_dir

    base = packaged_base_dir()
    tokenizer = convert.load_tokenizer(base)
    ct2_config = convert.read_json(base / "config.json")
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        suppress_tokens=ct2_config["suppress_ids"], begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        **convert.special_token_ids(tokenizer),
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    ct2_config.pop("alignment_heads")
    model.generation_config = convert.generation_config(tokenizer, ct2_config, config)
    out = tmp_path_factory.mktemp("tiny-whisper")
    convert.save_hf_model(model, tokenizer, 80, out)
    return out


@pytest.fixture(scope="session")
def small_general_dir(tmp_path_factory) -> Path:
    """60 clips of the packaged general set as an audiofolder (`train --general`): its 40 held-out clips and
    a little replay, where the whole set would add 160 clips a random model decodes to its length limit."""
    from whisper_adapt.labeled import write_audiofolder
    from whisper_adapt.train.assemble import shipped_general_set

    return write_audiofolder(shipped_general_set()[::20][:60], tmp_path_factory.mktemp("general") / "set")


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """Where synthesized test speech is kept for the whole run."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def synth_wav(speech_dir):
    """`synth_wav(text, voice="jf_alpha", name=None) -> Path`: a 16 kHz WAV of `text` spoken by `voice`.

    Each (text, voice) is synthesized once per run (TTS costs about a second of CPU per second of speech);
    later calls return the same file. `name` picks the file's stem, for readable paths in failures.
    """
    import hashlib

    from whisper_adapt.audio import write_wav
    from whisper_adapt.synth import synthesize_speech

    made: dict[tuple[str, str], Path] = {}

    def synth(text: str, voice: str = "jf_alpha", name: str | None = None) -> Path:
        if (text, voice) not in made:
            stem = name or f"{voice}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"
            path = speech_dir / f"{stem}.wav"
            if path.exists():
                raise ValueError(f"synth_wav name {stem!r} is already used for another text or voice")
            write_wav(path, synthesize_speech(text, voice))
            made[(text, voice)] = path
        return made[(text, voice)]

    return synth


# Eight short sentences in two voices, four "recordings": the training tests' clips.
TINY_SENTENCES = ("上期の売上を報告します。", "下期の計画を説明します。", "田中部長が来ます。", "ミライ計画を始めます。",
                  "会議を始めましょう。", "資料を共有します。", "来週また話しましょう。", "ありがとうございました。")


@pytest.fixture(scope="session")
def tiny_clips(synth_wav):
    from whisper_adapt.labeled import LabeledClip

    return [LabeledClip(f"c{i}", synth_wav(text, ("jf_alpha", "jm_kumo")[i % 2]), text, recording=f"r{i % 4}")
            for i, text in enumerate(TINY_SENTENCES)]


# A meeting for the corpus tests: glossary terms (上期, 下期, ミライ計画, 田中部長), five voices, pauses of
# 0.5–2.5 s, and a stretch of murmur (three voices over each other) that no one could transcribe.
MEETING_LINES = (
    ("jf_alpha", "本日の定例会議を始めます。"),
    ("jm_kumo", "まず上期の売上について報告します。"),
    ("jf_nezumi", "下期の予算はまだ確定していません。"),
    ("jf_tebukuro", "ミライ計画の進捗はどうですか。"),
    ("jm_kumo", "田中部長から来週の予定を説明していただきます。"),
    ("jf_gongitsune", "それでは次の議題に移りましょう。"),
)
MURMUR_LINES = (("jm_kumo", "えーと、それはですね、まあ、あとで確認します。"),
                ("jf_alpha", "工場の生産ラインは順調ですが、部品の納期が少し遅れています。"))


@pytest.fixture(scope="session")
def synth_meeting(synth_wav, speech_dir):
    """`synth_meeting(name, rounds=1, murmur=True) -> (path, spans)`: a WAV of MEETING_LINES said `rounds`
    times with pauses, room noise and (once, after the first round) murmur; `spans` are the
    (start_s, end_s, text) of every spoken sentence, for checking where clips are cut."""
    import numpy as np

    from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav

    def make(name: str, rounds: int = 1, murmur: bool = True):
        path = speech_dir / f"{name}.wav"
        rng = np.random.default_rng(0)
        lines = [(decode_audio(synth_wav(text, voice)), text) for voice, text in MEETING_LINES]
        parts, spans, position = [], [], 0
        for round_ in range(rounds):
            for audio, text in lines:
                gap = np.zeros(round(rng.uniform(0.5, 2.5) * SAMPLE_RATE), np.float32)
                parts += [gap, audio]
                spans.append(((position + len(gap)) / SAMPLE_RATE, (position + len(gap) + len(audio)) / SAMPLE_RATE, text))
                position += len(gap) + len(audio)
            if round_ == 0 and murmur:
                voices = [decode_audio(synth_wav(text, voice)) for voice, text in MURMUR_LINES]
                length = max(len(v) for v in voices)
                mixed = (sum(np.pad(v, (0, length - len(v))) for v in voices) * 0.3).astype(np.float32)
                parts += [np.zeros(SAMPLE_RATE, np.float32), mixed]
                position += SAMPLE_RATE + length
        parts.append(np.zeros(SAMPLE_RATE, np.float32))
        audio = np.concatenate(parts)
        if not path.exists():
            write_wav(path, audio + rng.normal(0, 0.003, audio.size).astype(np.float32))
        return path, spans

    return make


@pytest.fixture(scope="session")
def audiofolder_set(tmp_path_factory):
    """`audiofolder_set(name, [(text, wav_path), ...]) -> Path`: a labelled set in Hugging Face audiofolder
    layout (one of the layouts `eval --test` and `--general` read), clip ids `<name>-<index>`."""
    from whisper_adapt.labeled import LabeledClip, write_audiofolder

    def make(name: str, pairs: list[tuple[str, Path]]) -> Path:
        clips = [LabeledClip(f"{name}-{index:02d}", Path(wav).resolve(), text) for index, (text, wav) in enumerate(pairs)]
        return write_audiofolder(clips, tmp_path_factory.mktemp(name))

    return make


@pytest.fixture(scope="session")
def serve_app():
    """`serve_app(app)`: a context manager running an ASGI app under uvicorn in a background thread on a
    free loopback port (the socket is bound first, so no other process can take the port); yields its URL."""
    import socket
    import threading
    import time
    from contextlib import contextmanager

    import uvicorn

    @contextmanager
    def running(app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()

    return running


@pytest.fixture(scope="session")
def longform_set(tmp_path_factory) -> Path:
    """A long-form set of one recording, 127 s: three of the demo's held-out sentences (from its speech bank,
    glossary terms in each) after 32 s of room noise, 37 s of next-room murmur and 42 s of keyboard clicks,
    then 5 s of near-silence — 92% of it without speech. `longform_set / "meeting.json"` is its reference."""
    import numpy as np

    from whisper_adapt.audio import decode_audio
    from whisper_adapt.demo import TEST_VOICE, speech_bank
    from whisper_adapt.nonspeech import build_longform, write_longform
    from whisper_adapt.resources import demo_file
    from whisper_adapt.synthcorpus import read_sentences

    bank = speech_bank()
    sentences = [(TEST_VOICE, text) for text in read_sentences(demo_file("test.txt"))[:3]]
    audio, reference = build_longform(sentences, lambda text, voice: decode_audio(bank[voice, text]),
                                      np.random.default_rng(0))
    folder = tmp_path_factory.mktemp("longform")
    write_longform(folder, "meeting", audio, reference)
    return folder


# Examples per operation and mode (valid, invalid) in the HTTP fuzz: enough to reach every refusal path,
# few enough for a couple of minutes on two busy cores.
FUZZ_EXAMPLES = 50


def fuzz_schema(app):
    """`app`'s OpenAPI schema as schemathesis fuzzes it: valid and invalid requests, `FUZZ_EXAMPLES` of each
    per operation, derived deterministically (no example database)."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(modes=list(GenerationMode), max_examples=FUZZ_EXAMPLES, deterministic=True,
                                    database="none")
    return schema


@pytest.fixture(scope="session")
def voice_clips() -> dict[str, list]:
    """voice → its first ten packaged recordings (data/general_ja: jf_alpha, jf_gongitsune, jf_nezumi,
    jm_kumo) as 16 kHz arrays: real voices for speaker tests, nothing synthesized."""
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.labeled import read_audiofolder
    from whisper_adapt.resources import general_set_folder

    clips, _ = read_audiofolder(general_set_folder())
    voices: dict[str, list] = {}
    for clip in clips:
        if len(voices.setdefault(clip.speaker, [])) < 10:
            voices[clip.speaker].append(decode_audio(clip.audio_path))
    return voices


@pytest.fixture(scope="session")
def conversation(voice_clips, tmp_path_factory):
    """A recording of jf_alpha and jm_kumo taking turns (A B A B A B, 0.8 s pauses), its WAV path and the
    spans [(start_s, end_s, voice)] of each turn."""
    import numpy as np

    from whisper_adapt.audio import SAMPLE_RATE, write_wav

    pause = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    parts, spans, position = [pause], [], len(pause)
    for index in range(6):
        voice = ("jf_alpha", "jm_kumo")[index % 2]
        clip = voice_clips[voice][index // 2]
        spans.append((position / SAMPLE_RATE, (position + len(clip)) / SAMPLE_RATE, voice))
        parts += [clip, pause]
        position += len(clip) + len(pause)
    path = tmp_path_factory.mktemp("conversation") / "conversation.wav"
    write_wav(path, np.concatenate(parts))
    return path, spans


@pytest.fixture(scope="session")
def speaker_embedder():
    from whisper_adapt.speakers import load_embedder

    return load_embedder()
