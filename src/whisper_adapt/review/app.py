"""The review server: a JSON API over the corpus, the clips' audio, and the static page.

Safety rules, all enforced here:
- Every text change goes through `Corpus.revise_text` with the version the page last saw, so two tabs or
  two people never overwrite each other silently: a stale save gets 409 with the current text.
- Audio is looked up by clip id in the corpus, never from a path in the request; an unknown id is 404.
  The server writes nothing but corpus revisions.
- Who may connect is access.py's policy, shared with `serve`: with a token every request must carry it
  (Authorization: Bearer, ?token=, or the cookie set when the page was opened with ?token=); without one
  the server only answers requests addressed to a loopback name (no DNS rebinding).
- Request bodies are bounded (MAX_BODY_BYTES) and answered 413 beyond that.
"""

from __future__ import annotations

import getpass
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from whisper_adapt.access import bearer_token, check_request, is_loopback
from whisper_adapt.corpus import STATUSES, Clip, Corpus, open_corpus
from whisper_adapt.errors import ConflictError, CorpusError, WhisperAdaptError
from whisper_adapt.glossary import Glossary
from whisper_adapt.review.annotate import find_spans, order_queue, queue_entry

STATIC_DIR = Path(__file__).parent / "static"
# A 30 s clip holds a few hundred characters; 64 KiB leaves ample room and caps what one request costs.
MAX_BODY_BYTES = 64 * 1024
PEAK_BUCKETS = 800  # waveform resolution sent to the page: about one bucket per pixel of its canvas
TOKEN_COOKIE = "whisper_adapt_review_token"


class ClipEdit(BaseModel):
    text: str
    version: int
    status: str | None = Field(default=None, pattern="^(" + "|".join(STATUSES) + ")$")


def create_app(corpus_dir: Path, glossary: Glossary | None = None, token: str | None = None,
               reviewer: str | None = None) -> FastAPI:
    """The review app over the corpus in `corpus_dir`; `token` (if any) is required on every request;
    edits are saved with origin `person:<reviewer>` (default: the OS user)."""
    corpus = open_corpus(corpus_dir)
    origin = f"person:{reviewer or getpass.getuser()}"

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        corpus.close()

    app = FastAPI(title="whisper-adapt review", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_guard(token))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_routes(app, corpus, glossary, origin, token)
    return app


def _guard(token: str | None):
    """Middleware: access.py's policy for every request; the page may also carry the token as ?token= or
    in the cookie set when it was opened with ?token=."""

    async def guard(request: Request, call_next) -> Response:
        offered = [bearer_token(request.headers.get("authorization", "")), request.query_params.get("token"),
                   request.cookies.get(TOKEN_COOKIE)]
        refusal = check_request(token, request.headers.get("host"), offered)
        if refusal is not None:
            return JSONResponse({"detail": refusal.message}, status_code=refusal.status, headers=refusal.headers)
        return await call_next(request)

    return guard


def _add_routes(app: FastAPI, corpus: Corpus, glossary: Glossary | None, origin: str, token: str | None) -> None:
    @app.get("/")
    def index() -> Response:
        response = FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})
        if token is not None:
            # The page's own <script> and <link> requests cannot carry a header: they use this cookie.
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/api/queue")
    def queue(status: str = "", recording: str = "", term: str = "") -> Response:
        if status and status not in STATUSES:
            return JSONResponse({"detail": f"status must be one of {', '.join(STATUSES)}"}, status_code=422)
        clips = corpus.clips(status=status or None, recording=recording or None)
        entries = order_queue([queue_entry(clip, glossary) for clip in clips])
        if term:
            entries = [e for e in entries if term in e.terms]
        return JSONResponse({
            "clips": [{"id": e.clip.id, "recording": e.clip.recording, "status": e.clip.status,
                       "duration_s": e.clip.duration_s, "text": e.clip.text, "terms": list(e.terms),
                       "fixes": e.fixes, "unsure": e.unsure} for e in entries],
            "done": sum(e.clip.status != "draft" for e in entries), "total": len(entries),
            "recordings": [r.name for r in corpus.recordings()],
            "terms": [t.text for t in glossary.terms] if glossary else [],
            "reviewer": origin.removeprefix("person:"),
        })

    @app.get("/api/clips/{clip_id}")
    def get_clip(clip_id: str) -> Response:
        if not corpus.has_clip(clip_id):
            return _not_found()
        clip = corpus.get_clip(clip_id)
        return JSONResponse({**clip_view(clip, glossary), "peaks": waveform_peaks(clip.audio_path)})

    # The body is read by hand (to bound its size while it arrives): its schema is stated for the docs and the fuzz.
    @app.put("/api/clips/{clip_id}", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ClipEdit.model_json_schema()}}}})
    async def put_clip(clip_id: str, request: Request) -> Response:
        try:
            body = await _read_body(request)
        except ClientDisconnect:  # the body ended before its Content-Length: nobody is left to answer
            return JSONResponse({"detail": "the request body ended early"}, status_code=400)
        if body is None:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            edit = ClipEdit.model_validate_json(body)
        except ValidationError as e:
            return JSONResponse({"detail": _validation_message(e)}, status_code=422)
        if not corpus.has_clip(clip_id):
            return _not_found()
        return _save(corpus, clip_id, edit, origin, glossary)

    @app.get("/audio/{clip_id}")
    def audio(clip_id: str) -> Response:
        if not corpus.has_clip(clip_id):
            return _not_found()
        path = corpus.get_clip(clip_id).audio_path.resolve()
        if not path.is_relative_to(corpus.path) or not path.is_file():
            return _not_found()  # a row pointing outside the corpus is never followed
        return FileResponse(path, media_type="audio/wav")


def _save(corpus: Corpus, clip_id: str, edit: ClipEdit, origin: str, glossary: Glossary | None) -> Response:
    """Store the edit as a revision; 409 with the current text if the clip moved on since the page read it."""
    clip = corpus.get_clip(clip_id)
    # A repeated save (a retry, or the keep-alive save sent as the page closes) must not add a revision.
    if edit.version == clip.version and edit.text == clip.text and edit.status in (None, clip.status):
        return JSONResponse(clip_view(clip, glossary))
    try:
        corpus.revise_text(clip_id, edit.text, origin, edit.version, edit.status)
    except ConflictError as e:
        current = corpus.get_clip(clip_id)
        return JSONResponse({"detail": e.problem, "current_version": e.current_version, "current_text": current.text,
                             "current_status": current.status}, status_code=409)
    except CorpusError as e:  # a text the corpus refuses (a line break …)
        return JSONResponse({"detail": e.problem}, status_code=422)
    return JSONResponse(clip_view(corpus.get_clip(clip_id), glossary))


def _validation_message(error: ValidationError) -> str:
    """Pydantic's errors as one line a person reads ("version: Field required"), without echoing the body."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors(include_url=False))


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES (checked while reading, not trusting
    Content-Length alone)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def clip_view(clip: Clip, glossary: Glossary | None) -> dict:
    """What the page shows of a clip: its text and version, the draft's words with their probabilities,
    and the glossary spans of the current text."""
    return {
        "id": clip.id, "recording": clip.recording, "status": clip.status, "version": clip.version,
        "text": clip.text, "text_origin": clip.text_origin, "draft_text": clip.draft_text,
        "draft_model": clip.draft_model, "duration_s": clip.duration_s,
        "words": [{"start_s": w.start_s, "end_s": w.end_s, "text": w.text, "probability": w.probability}
                  for w in clip.draft_words],
        "spans": [vars(span) for span in find_spans(clip.text, glossary)],
    }


def waveform_peaks(path: Path, buckets: int = PEAK_BUCKETS) -> list[float]:
    """Peak amplitude per bucket of the clip, for drawing its waveform."""
    import numpy as np

    from whisper_adapt.audio import decode_audio

    samples = np.abs(decode_audio(path))
    if samples.size == 0:
        return []
    edges = np.linspace(0, samples.size, min(buckets, samples.size) + 1).astype(int)
    return [round(float(samples[a:b].max()), 3) for a, b in zip(edges[:-1], edges[1:])]


def _not_found() -> Response:
    return JSONResponse({"detail": "no such clip"}, status_code=404)


def review_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve_review(corpus_dir: Path, glossary: Glossary | None, host: str, port: int, token: str | None,
                 reviewer: str | None = None) -> None:
    """Run the review server until interrupted; `token` as returned by access.resolve_token."""
    import uvicorn

    if token is None and not is_loopback(host):
        raise WhisperAdaptError(f"binding to {host} needs a token (see resolve_token)")
    app = create_app(corpus_dir, glossary, token, reviewer)
    uvicorn.run(app, host=host, port=port, log_level="warning")
