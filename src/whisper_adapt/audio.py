"""Audio in and out: decode any container to 16 kHz mono float32 with PyAV, write 16-bit WAV clips.

Damaged input, decided once here for every caller:
- a file that cannot be opened, has no audio stream, or yields no samples raises `AudioError`;
- data that breaks off (a cut-off recording, a damaged frame) ends the audio where it breaks: the samples
  decoded before it are kept and a warning names the file and the time. Stopping, rather than skipping the
  bad frame as ffmpeg's command line does, keeps every returned sample at its true offset in the
  recording, which clip offsets in the corpus rely on. A truncated MP3 or WAV usually just ends early
  without any decoder error: it is then reported (a warning) when its header states a longer duration than
  it holds; an MP4/M4A cut before its index (written last by most recorders) cannot be
  opened at all and raises `AudioError`.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from whisper_adapt.files import write_atomically
from whisper_adapt.errors import AudioError, TooLongError

SAMPLE_RATE = 16000

# Recorders sold in Japan often write Shift-JIS tags. Before PyAV 19 a tag that is not UTF-8 made av.open
# fail unless told to replace it; 19 always decodes tags leniently and no longer takes the option.
_OPEN_OPTIONS = {"metadata_errors": "replace"} if int(av.__version__.split(".")[0]) < 19 else {}

# decode_audio collects these chunks; their size only bounds the transient copy made while assembling
_DECODE_CHUNK_S = 30.0
# How much shorter than its header says a file may decode before it is reported as cut off
_CUT_OFF_MARGIN_S = 0.5

logger = logging.getLogger(__name__)


def decode_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole audio track of `path` as mono float32 in [-1, 1] at `sample_rate`."""
    return np.concatenate(list(iter_audio_chunks(path, _DECODE_CHUNK_S, sample_rate)))


def iter_audio_chunks(path: str | Path, chunk_s: float, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Decode `path` lazily into mono float32 chunks of `chunk_s` seconds (the last one may be shorter).

    Memory stays at about one chunk whatever the recording's length. Errors in the file are raised as
    `AudioError` when iteration starts (or, for damage later in the file, logged as described above).
    """
    chunk_len = round(chunk_s * sample_rate)
    if chunk_len < 1:
        raise ValueError(f"chunk_s must give at least one sample at {sample_rate} Hz, got {chunk_s}")
    return _chunked(_mono_blocks(path, sample_rate), chunk_len, path)


def audio_duration_s(path: str | Path) -> float:
    """Duration of the audio track in seconds, from the container's header when it states one."""
    with _open_container(path) as container:
        stated_s = _stated_duration_s(container, _audio_stream(container, path))
        if stated_s is not None:
            return stated_s
    # Some containers (e.g. WebM written by browsers) state no duration: count the samples instead.
    return sum(len(block) for block in _mono_blocks(path, SAMPLE_RATE)) / SAMPLE_RATE


def decoded_duration_s(path: str | Path, limit_s: float | None = None) -> float:
    """Seconds of audio `path` really holds, decoding it chunk by chunk (memory: one chunk); TooLongError as
    soon as that passes `limit_s`, without decoding the rest. For input that may lie in its header."""
    samples = 0
    for chunk in iter_audio_chunks(path, _DECODE_CHUNK_S):
        samples += len(chunk)
        if limit_s is not None and samples > limit_s * SAMPLE_RATE:
            raise TooLongError(f"holds more than {limit_s / 60:g} minutes of audio", path)
    return samples / SAMPLE_RATE


def _stated_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 `samples` at `from_rate` resampled to `to_rate` (the same resampler decoding uses)."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}")
    if samples.size == 0 or from_rate == to_rate:
        return samples
    frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="fltp", layout="mono")
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="fltp", rate=to_rate)
    return np.concatenate(_to_mono(resampler, frame) + _to_mono(resampler, None))


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float `samples` as a 16-bit PCM WAV, atomically: the file is complete or absent."""
    path = Path(path)
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}")
    # Scale by 32768, the divisor decoders use for 16-bit PCM, so a round trip is exact to half a step.
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    try:
        _write_wav_atomically(path, pcm, sample_rate)
    except OSError as e:
        raise AudioError(f"cannot write WAV file ({e.strerror or e})", path) from e


def write_opus(path: str | Path, samples: np.ndarray, bit_rate: int = 32000) -> None:
    """Write mono float `samples` (16 kHz) as Ogg Opus: how the package ships its speech compactly."""
    with open(path, "wb") as f:
        _encode_lossy(f, samples, "libopus", bit_rate)


def lossy_round_trip(samples: np.ndarray, codec: str, bit_rate: int) -> np.ndarray:
    """Mono float `samples` (16 kHz) encoded with `codec` ("libopus" or "libmp3lame") at `bit_rate` bits/s
    and decoded back, the same length: what a conference line or a compressed recording does to speech."""
    buffer = io.BytesIO()
    _encode_lossy(buffer, samples, codec, bit_rate)
    buffer.seek(0)
    with av.open(buffer) as container:
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        blocks = [block for frame in container.decode(container.streams.audio[0])
                  for block in _to_mono(resampler, frame)]
    decoded = np.concatenate(blocks + _to_mono(resampler, None) + [np.zeros(0, np.float32)])
    return np.pad(decoded[: len(samples)], (0, max(0, len(samples) - len(decoded))))


_LOSSY_CONTAINERS = {"libopus": ("ogg", 48000), "libmp3lame": ("mp3", SAMPLE_RATE)}  # Opus codes only 48 kHz


def _encode_lossy(target, samples: np.ndarray, codec: str, bit_rate: int) -> None:
    container_format, rate = _LOSSY_CONTAINERS[codec]
    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_wav_atomically(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    def write(f) -> None:
        with wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())

    write_atomically(path, write)


def _open_container(path: str | Path) -> av.container.InputContainer:
    """Open `path` for reading, turning every way it can fail into an AudioError naming the file."""
    path = Path(path)
    if not path.exists():
        raise AudioError("file not found", path)
    if path.is_dir():
        raise AudioError("is a directory, not an audio file", path)
    if path.stat().st_size == 0:
        raise AudioError("file is empty (0 bytes)", path)
    try:
        return av.open(str(path), **_OPEN_OPTIONS)
    except av.error.FFmpegError as e:
        raise AudioError(f"cannot be read as audio or video; damaged, cut off or not a media file ({e.strerror})", path) from e


def _audio_stream(container: av.container.InputContainer, path: str | Path) -> av.audio.stream.AudioStream:
    stream = container.streams.best("audio")
    if stream is None:
        what = "video without sound" if container.streams.video else "no audio stream"
        raise AudioError(f"contains {what}; nothing to transcribe", path)
    return stream


def _mono_blocks(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Every decoded frame of the audio track as mono float32 at `sample_rate`, in order."""
    with _open_container(path) as container:
        stream = _audio_stream(container, path)
        resampler, source_format = None, None
        for frame in _decoded_frames(container, stream, path):
            # A stream may change rate or layout midway (e.g. MP3 files joined end to end), which one
            # resampler cannot follow: finish the old one and start another.
            frame_format = (frame.format.name, frame.layout.name, frame.sample_rate)
            if frame_format != source_format:
                if resampler is not None:
                    yield from _to_mono(resampler, None)
                # Keep the source layout and average the channels ourselves: swresample's float
                # downmix adds stereo channels at 0.707 each, which can leave [-1, 1].
                resampler, source_format = av.AudioResampler(format="fltp", rate=sample_rate), frame_format
            yield from _to_mono(resampler, frame)
        if resampler is not None:
            yield from _to_mono(resampler, None)


def _decoded_frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                    path: str | Path) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`, ending at the first damaged packet (see the module docstring)."""
    decoded_s = 0.0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                decoded_s += frame.samples / frame.sample_rate
                yield frame
    except av.error.FFmpegError as e:
        if decoded_s == 0.0:
            raise AudioError(f"damaged audio data ({e.strerror})", path) from e
        logger.warning("%s: audio data damaged or cut off after %.1f s (%s); using the audio before it",
                       path, decoded_s, e.strerror)
        return
    stated_s = _stated_duration_s(container, stream)
    # A file cut short (an upload or copy that stopped) often decodes without any error: only its header
    # still tells the full length. Encoder delay and padding differ by milliseconds, not by this margin.
    if stated_s is not None and stated_s - decoded_s > max(_CUT_OFF_MARGIN_S, 0.01 * stated_s):
        logger.warning("%s: ends after %.1f s but its header says %.1f s: the file looks cut off; using the "
                       "audio it holds", path, decoded_s, stated_s)


def _to_mono(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> list[np.ndarray]:
    """Resample `frame` (None flushes the resampler) and average its channels, clipped to [-1, 1]."""
    blocks = []
    for out in resampler.resample(frame):
        planes = out.to_ndarray()
        mono = planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)
        # Lossy decoders overshoot slightly on loud input; callers are promised [-1, 1].
        blocks.append(np.clip(mono, -1.0, 1.0))
    return blocks


def _chunked(blocks: Iterator[np.ndarray], chunk_len: int, path: str | Path) -> Iterator[np.ndarray]:
    """Regroup variable-size `blocks` into arrays of exactly `chunk_len` samples (the last may be shorter)."""
    pending: list[np.ndarray] = []
    pending_len = 0
    total = 0
    for block in blocks:
        pending.append(block)
        pending_len += len(block)
        total += len(block)
        if pending_len >= chunk_len:
            joined = np.concatenate(pending)
            full = len(joined) - len(joined) % chunk_len
            for start in range(0, full, chunk_len):
                yield joined[start:start + chunk_len]
            pending, pending_len = [joined[full:]], len(joined) - full
    if total == 0:
        raise AudioError("contains no audio samples", path)
    if pending_len:
        yield np.concatenate(pending)
