"""The corpus store: a directory with `corpus.db` (SQLite, the source of truth) and `audio/` (16 kHz clips).

This module is the only one that touches the SQL; the review page, `prepare`, training and evaluation use
the `Corpus` methods below.

Crash safety, decided here for every writer:
- SQLite in WAL mode with synchronous=FULL: a committed transaction survives a crash or a power cut
  (NORMAL would be enough for a killed process, but this store is where people's corrections live, and
  a commit is one per clip or per draft batch, so the extra fsync costs little).
- A clip's WAV is written atomically (temporary name, fsync, rename) BEFORE its row is committed, so a row
  always has its audio. A kill between the two leaves an orphan WAV without a row; `sweep_orphans`
  (run by every writer at start, under the writer lock) removes those and half-written temporary files.
- Every text change bumps the clip's `version` and is kept in `revisions` with time and origin;
  `revise_text` takes the version the caller saw and raises ConflictError if someone saved in between.
- Writers that add clips (prepare, import) hold an exclusive lock on `.writer.lock`, released by the OS
  even on kill -9, so two of them never interleave and the sweep never removes a WAV being added.

Text origins: `prepare` (new clip, no text yet), `draft:<model>`, `import:<source>`, `person:<name>`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from whisper_adapt.errors import ConflictError, CorpusError
from whisper_adapt.glossary import Glossary, count_terms
from whisper_adapt.labeled import LabeledClip
from whisper_adapt.transcript import Word

DB_NAME = "corpus.db"
AUDIO_DIR = "audio"
FORMAT = "whisper-adapt-corpus"
SCHEMA_VERSION = 1
STATUSES = ("draft", "reviewed", "rejected")
# Origins whose text a new draft may replace: nobody has typed anything into the clip yet.
_REDRAFTABLE = ("prepare", "draft:")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,           -- readable, used in clip ids
    path TEXT NOT NULL,                  -- where it was read from (informative)
    sha256 TEXT UNIQUE,                  -- identity of a prepared file; NULL for imported sets
    duration_s REAL,
    segment_options TEXT,                -- JSON; a resumed run cuts with the same options
    complete INTEGER NOT NULL DEFAULT 0, -- 1 once all of its clips are in
    added_at TEXT NOT NULL
);
CREATE TABLE clips (
    id TEXT PRIMARY KEY,
    recording_id INTEGER NOT NULL REFERENCES recordings(id),
    start_s REAL, end_s REAL,            -- offsets in the recording; NULL for imported clips
    duration_s REAL NOT NULL,
    audio TEXT NOT NULL UNIQUE,          -- relative to the corpus directory
    speaker TEXT NOT NULL DEFAULT '',
    draft_text TEXT, draft_model TEXT,   -- NULL until drafted
    draft_words TEXT,                    -- JSON [[start_s, end_s, word, probability], ...], clip-relative
    text TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'reviewed', 'rejected')),
    version INTEGER NOT NULL,
    text_origin TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX clips_by_recording ON clips(recording_id, start_s);
CREATE INDEX clips_by_status ON clips(status);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    clip_id TEXT NOT NULL REFERENCES clips(id),
    version INTEGER NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    origin TEXT NOT NULL,
    at TEXT NOT NULL,
    UNIQUE (clip_id, version)
);
"""

_CLIP_COLUMNS = ("c.id, r.name, c.start_s, c.end_s, c.duration_s, c.audio, c.speaker, c.draft_text, "
                 "c.draft_model, c.draft_words, c.text, c.status, c.version, c.text_origin, c.updated_at")


@dataclass(frozen=True)
class Recording:
    id: int
    name: str
    path: str
    sha256: str | None
    duration_s: float | None
    segment_options: str | None
    complete: bool


@dataclass(frozen=True)
class Clip:
    id: str
    recording: str
    start_s: float | None
    end_s: float | None
    duration_s: float
    audio_path: Path
    speaker: str
    draft_text: str | None
    draft_model: str | None
    draft_words: tuple[Word, ...]
    text: str
    status: str
    version: int
    text_origin: str
    updated_at: str


@dataclass(frozen=True)
class Revision:
    version: int
    text: str
    status: str
    origin: str
    at: str


@dataclass(frozen=True)
class CorpusStats:
    clips: int
    hours: float
    by_status: dict[str, tuple[int, float]]  # status -> (clips, hours)
    drafted: int
    recordings: int
    term_coverage: dict[str, int] = field(default_factory=dict)  # term -> reviewed clips holding it


def is_corpus(path: Path) -> bool:
    """Cheap test used to detect the layout; opening the corpus checks that it is really ours."""
    return (Path(path) / DB_NAME).is_file()


def create_corpus(path: Path) -> Corpus:
    """Make a new corpus in `path` (missing or empty); CorpusError if something is already there."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CorpusError("exists and is not empty; give a new directory for the corpus", path)
    path.mkdir(parents=True, exist_ok=True)
    (path / AUDIO_DIR).mkdir(exist_ok=True)
    # Build the database under a temporary name and rename it: a half-made corpus.db never exists.
    tmp = path / f".{DB_NAME}.{secrets.token_hex(4)}.tmp"
    try:
        db = sqlite3.connect(tmp)
        with db:
            db.executescript(_SCHEMA)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))])
        db.close()
        os.replace(tmp, path / DB_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    return open_corpus(path)


def open_corpus(path: Path, create: bool = False) -> Corpus:
    """Open the corpus in `path`; with `create`, make it first if `path` is missing or empty."""
    path = Path(path)
    if not is_corpus(path):
        if create and (not path.exists() or (path.is_dir() and not any(path.iterdir()))):
            return create_corpus(path)
        what = "does not exist" if not path.exists() else "is not a whisper-adapt corpus (no corpus.db)"
        raise CorpusError(f"{what}; refusing to use it as a corpus", path)
    return Corpus(path)


@contextlib.contextmanager
def writing_corpus(path: Path) -> Iterator[Corpus]:
    """The corpus at `path` (created if missing) for a process that adds clips: holding the writers' lock,
    and swept of what an interrupted writer left behind."""
    with open_corpus(path, create=True) as corpus:
        corpus.sweep_orphans()  # takes the writers' lock first
        yield corpus


class Corpus:
    """An open corpus. Safe to share between threads (one connection, serialized by a lock)."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self._lock = threading.RLock()
        self._db = _connect(self.path / DB_NAME)
        self._writer_lock_file = None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.release_writer_lock()

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so it cannot deadlock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writers' lock and recovery -------------------------------------------------------------------

    def acquire_writer_lock(self) -> None:
        """Become the one process adding clips; CorpusError if another one is at it."""
        if self._writer_lock_file is not None:
            return
        handle = open(self.path / ".writer.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CorpusError("another whisper-adapt process (prepare or import) is writing this corpus", self.path) from None
        self._writer_lock_file = handle

    def release_writer_lock(self) -> None:
        if self._writer_lock_file is not None:
            self._writer_lock_file.close()
            self._writer_lock_file = None

    def sweep_orphans(self) -> int:
        """Delete WAVs without a row and temporary files left by an interrupted writer; returns how many."""
        self.acquire_writer_lock()
        known = {row[0] for row in self._query("SELECT audio FROM clips")}
        removed = 0
        for file in (self.path / AUDIO_DIR).iterdir():
            if f"{AUDIO_DIR}/{file.name}" not in known and file.is_file():
                file.unlink()
                removed += 1
        return removed

    # -- recordings -----------------------------------------------------------------------------------

    def recording_by_sha256(self, sha256: str) -> Recording | None:
        rows = self._query("SELECT * FROM recordings WHERE sha256 = ?", (sha256,))
        return _recording(rows[0]) if rows else None

    def recordings(self) -> list[Recording]:
        return [_recording(row) for row in self._query("SELECT * FROM recordings ORDER BY name")]

    def add_recording(self, path: Path, sha256: str | None, segment_options: str | None = None,
                      name: str | None = None) -> Recording:
        """The recording with this sha256 (or, for imports without one, this name), added if new."""
        wanted = safe_name(name or Path(path).stem)
        with self._tx() as db:
            if sha256 is not None:
                row = db.execute("SELECT * FROM recordings WHERE sha256 = ?", (sha256,)).fetchone()
            else:
                row = db.execute("SELECT * FROM recordings WHERE name = ? AND sha256 IS NULL", (wanted,)).fetchone()
            if row is not None:
                return _recording(row)
            unique = _unique_name(db, wanted)
            db.execute("INSERT INTO recordings (name, path, sha256, segment_options, added_at) VALUES (?, ?, ?, ?, ?)",
                       (unique, str(path), sha256, segment_options, _now()))
            return _recording(db.execute("SELECT * FROM recordings WHERE name = ?", (unique,)).fetchone())

    def mark_complete(self, recording_id: int, duration_s: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE recordings SET complete = 1, duration_s = ? WHERE id = ?", (duration_s, recording_id))

    # -- clips ----------------------------------------------------------------------------------------

    def has_clip(self, clip_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM clips WHERE id = ?", (clip_id,)))

    def add_clip(self, recording: Recording, clip_id: str, samples: np.ndarray, start_s: float | None = None,
                 end_s: float | None = None, text: str = "", origin: str = "prepare", status: str = "draft",
                 speaker: str = "") -> bool:
        """Write the clip's WAV, then commit its row and first revision; False if the id is already in."""
        from whisper_adapt.audio import SAMPLE_RATE, write_wav

        _check_status(status)
        if self.has_clip(clip_id):
            return False
        audio = f"{AUDIO_DIR}/{clip_id}.wav"
        write_wav(self.path / audio, samples)
        now = _now()
        with self._tx() as db:
            db.execute(
                "INSERT INTO clips (id, recording_id, start_s, end_s, duration_s, audio, speaker, text, status, "
                "version, text_origin, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (clip_id, recording.id, start_s, end_s, len(samples) / SAMPLE_RATE, audio, speaker, text, status,
                 origin, now))
            _add_revision(db, clip_id, 1, text, status, origin, now)
        return True

    def clips(self, status: str | None = None, recording: str | None = None, drafted: bool | None = None) -> list[Clip]:
        """Clips in recording order, optionally only those with `status`, of `recording`, (not) drafted."""
        where, args = [], []
        if status is not None:
            _check_status(status)
            where.append("c.status = ?")
            args.append(status)
        if recording is not None:
            where.append("r.name = ?")
            args.append(recording)
        if drafted is not None:
            where.append("c.draft_text IS NOT NULL" if drafted else "c.draft_text IS NULL")
        sql = (f"SELECT {_CLIP_COLUMNS} FROM clips c JOIN recordings r ON r.id = c.recording_id "
               f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY r.name, c.start_s, c.id")
        return [self._clip(row) for row in self._query(sql, args)]

    def get_clip(self, clip_id: str) -> Clip:
        rows = self._query(f"SELECT {_CLIP_COLUMNS} FROM clips c JOIN recordings r ON r.id = c.recording_id "
                           "WHERE c.id = ?", (clip_id,))
        if not rows:
            raise CorpusError(f"no clip {clip_id!r} in this corpus", self.path)
        return self._clip(rows[0])

    def _clip(self, row: tuple) -> Clip:
        words = tuple(Word(*item) for item in json.loads(row[9])) if row[9] else ()
        return Clip(row[0], row[1], row[2], row[3], row[4], self.path / row[5], row[6], row[7], row[8], words,
                    *row[10:])

    def labeled_clips(self, status: str = "reviewed") -> list[LabeledClip]:
        """The clips with `status` as labelled clips (current text), for training and evaluation."""
        return [LabeledClip(c.id, c.audio_path, c.text, c.recording, c.speaker) for c in self.clips(status=status)]

    # -- text -----------------------------------------------------------------------------------------

    def set_drafts(self, drafts: Sequence[tuple[str, str, Sequence[Word]]], model: str) -> int:
        """Store (clip_id, text, words) drafts by `model` in one transaction; returns how many were stored.

        A clip that a person has touched (reviewed, rejected, or text typed in) keeps its text: a draft
        never overwrites a correction. The draft fields are always updated, for comparison in review.
        """
        origin, stored, now = f"draft:{model}", 0, _now()
        with self._tx() as db:
            for clip_id, text, words in drafts:
                words_json = json.dumps([[w.start_s, w.end_s, w.text, w.probability] for w in words], ensure_ascii=False)
                db.execute("UPDATE clips SET draft_text = ?, draft_model = ?, draft_words = ? WHERE id = ?",
                           (text, model, words_json, clip_id))
                row = db.execute("SELECT version, status, text_origin FROM clips WHERE id = ?", (clip_id,)).fetchone()
                if row is None or row[1] != "draft" or not row[2].startswith(_REDRAFTABLE):
                    continue
                db.execute("UPDATE clips SET text = ?, version = ?, text_origin = ?, updated_at = ? WHERE id = ?",
                           (text, row[0] + 1, origin, now, clip_id))
                _add_revision(db, clip_id, row[0] + 1, text, row[1], origin, now)
                stored += 1
        return stored

    def revise_text(self, clip_id: str, text: str, origin: str, expected_version: int,
                    status: str | None = None) -> int:
        """Save a new text (and optionally status) if the clip is still at `expected_version`; returns
        the new version. ConflictError if it moved on, so the review page can reload instead of overwriting."""
        return self._revise(clip_id, expected_version, origin, text=text, status=status)

    def set_status(self, clip_id: str, status: str, origin: str, expected_version: int) -> int:
        return self._revise(clip_id, expected_version, origin, status=status)

    def _revise(self, clip_id: str, expected_version: int, origin: str, text: str | None = None,
                status: str | None = None) -> int:
        if status is not None:
            _check_status(status)
        if text is not None and ("\n" in text or "\r" in text):
            # Every export layout holds a transcript on one line; a line break would bar the whole corpus.
            raise CorpusError(f"clip {clip_id}: a transcript is one line; remove the line break", self.path)
        now = _now()
        with self._tx() as db:
            row = db.execute("SELECT version, text, status, text_origin FROM clips WHERE id = ?", (clip_id,)).fetchone()
            if row is None:
                raise CorpusError(f"no clip {clip_id!r} in this corpus", self.path)
            if row[0] != expected_version:
                raise ConflictError(f"clip {clip_id} was changed by someone else (version {row[0]}, "
                                    f"you had {expected_version}); reload it", self.path, current_version=row[0])
            new_text = row[1] if text is None else text
            new_origin = origin if text is not None and text != row[1] else row[3]
            new_status = status or row[2]
            db.execute("UPDATE clips SET text = ?, status = ?, version = ?, text_origin = ?, updated_at = ? WHERE id = ?",
                       (new_text, new_status, row[0] + 1, new_origin, now, clip_id))
            _add_revision(db, clip_id, row[0] + 1, new_text, new_status, origin, now)
        return row[0] + 1

    def revisions(self, clip_id: str) -> list[Revision]:
        rows = self._query("SELECT version, text, status, origin, at FROM revisions WHERE clip_id = ? ORDER BY version",
                           (clip_id,))
        return [Revision(*row) for row in rows]

    # -- summaries ------------------------------------------------------------------------------------

    def stats(self, glossary: Glossary | None = None) -> CorpusStats:
        by_status = {status: (0, 0.0) for status in STATUSES}
        for status, count, seconds in self._query("SELECT status, COUNT(*), TOTAL(duration_s) FROM clips GROUP BY status"):
            by_status[status] = (count, seconds / 3600)
        drafted = self._query("SELECT COUNT(*) FROM clips WHERE draft_text IS NOT NULL")[0][0]
        recordings = self._query("SELECT COUNT(*) FROM recordings")[0][0]
        coverage: dict[str, int] = {}
        if glossary is not None:
            coverage = {term.text: 0 for term in glossary.terms}
            for (text,) in self._query("SELECT text FROM clips WHERE status = 'reviewed'"):
                for term, count in count_terms(text, glossary).items():
                    coverage[term] += count > 0
        return CorpusStats(sum(n for n, _ in by_status.values()), sum(h for _, h in by_status.values()),
                           by_status, drafted, recordings, coverage)


def _connect(db_path: Path) -> sqlite3.Connection:
    if db_path.stat().st_size == 0:  # SQLite would quietly make it a new, empty database
        raise CorpusError("is empty (0 bytes), not a whisper-adapt corpus database", db_path)
    try:
        db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as e:
        raise CorpusError(f"is not a whisper-adapt corpus database ({e})", db_path) from e
    if meta.get("format") != FORMAT:
        db.close()
        raise CorpusError("is an SQLite database but not a whisper-adapt corpus", db_path)
    if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
        db.close()
        raise CorpusError(f"was written by a newer whisper-adapt (schema {meta['schema_version']}); upgrade", db_path)
    return db


def _recording(row: tuple) -> Recording:
    return Recording(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


def _add_revision(db: sqlite3.Connection, clip_id: str, version: int, text: str, status: str, origin: str,
                  at: str) -> None:
    db.execute("INSERT INTO revisions (clip_id, version, text, status, origin, at) VALUES (?, ?, ?, ?, ?, ?)",
               (clip_id, version, text, status, origin, at))


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise CorpusError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")


def safe_name(text: str) -> str:
    """`text` as a readable file-name part: letters (any script), digits, '.', '_' and '-' kept."""
    cleaned = re.sub(r"[^\w.-]+", "_", text).strip("._-")[:80]
    return cleaned or "recording"


def _unique_name(db: sqlite3.Connection, name: str) -> str:
    candidate, number = name, 2
    while db.execute("SELECT 1 FROM recordings WHERE name = ?", (candidate,)).fetchone():
        candidate, number = f"{name}-{number}", number + 1
    return candidate


def clip_id_for(recording: Recording, start_s: float) -> str:
    """Stable, readable id of a prepared clip: `<recording name>-<start in ms, 8 digits>` (sorts by time)."""
    return f"{recording.name}-{round(start_s * 1000):08d}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
