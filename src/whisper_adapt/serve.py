"""OpenAI-compatible transcription server: `POST /v1/audio/transcriptions`, `GET /v1/models`, `GET /health`.

Any client written for OpenAI's audio API (the official `openai` package, curl, …) works with `base_url`
pointed here. Safety decisions, made once here:
- who may connect is access.py's policy, shared with the review server: loopback by default, a token
  beyond it (`check_bind` refuses to start without one, rather than inventing a token the operator might
  never see), and without a token a loopback Host header (no DNS rebinding);
- each model is loaded once, on first use, and shared; transcription runs on one worker thread, because
  one CTranslate2 model already uses every core and two jobs at once would only slow both;
- requests are counted from acceptance to answer, and beyond `max_pending` are turned away at once
  (429 with Retry-After) instead of piling up audio in memory;
- uploads larger than `max_upload_bytes` get 413 before (or while) they are read; audio longer than
  `max_audio_s` gets 413 as soon as decoding passes it (a small file can hold hours of silence); anything
  PyAV cannot decode gets 415 naming the uploaded file and the problem;
- an upload must arrive within `request_deadline_s`, else 408: a stalled client cannot keep its place;
- audio is transcribed in windows (transcribe_path), so memory does not grow with its length.
Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so clients raise their usual
exceptions.

`response_format=diarized_json` answers as OpenAI's diarizing model does (`segments` of
`transcript.text.segment` with `speaker`, `start`, `end`, `text`), the speakers found here, offline:
the speaker model is loaded on the first such request and shared, like the Whisper models.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect
from starlette.exceptions import HTTPException as StarletteHTTPException

from whisper_adapt.access import bearer_token, check_request
from whisper_adapt.audio import decoded_duration_s
from whisper_adapt.errors import AudioError, TooLongError, WhisperAdaptError
from whisper_adapt.languages import language_name, parse_language
from whisper_adapt.speakers import SpeakerOptions
from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_path
from whisper_adapt.transcript import Transcript
from whisper_adapt.writers import render

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
# OpenAI's name for its hosted Whisper: clients that hard-code it get the default model.
OPENAI_MODEL_ALIAS = "whisper-1"
# Seconds a turned-away client is asked to wait: about one short clip's transcription on a CPU.
RETRY_AFTER_S = 5
# The form is read by hand (to bound its size and time while it arrives), so its schema is stated here.
TRANSCRIPTION_REQUEST = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
                   "language": {"type": "string"}, "prompt": {"type": "string"},
                   "response_format": {"type": "string"}, "temperature": {"type": "number"},
                   "timestamp_granularities[]": {"type": "array", "items": {"type": "string"}}}}}}}}
_CONTENT_TYPES = {"text": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
                  "vtt": "text/vtt; charset=utf-8"}


class RequestError(WhisperAdaptError):
    """A request the server refuses, answered with `status` and an OpenAI-style error body."""

    def __init__(self, status: int, problem: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None):
        self.status, self.kind, self.param, self.code = status, kind, param, code
        self.headers = dict(headers or {})
        super().__init__(problem)


def model_specs(options: list[str]) -> dict[str, str]:
    """`--model` values (`SPEC` or `NAME=SPEC`) as served name → spec; a bare path is named by its folder."""
    specs: dict[str, str] = {}
    for option in options:
        name, sep, spec = option.partition("=")
        if not sep:
            name, spec = Path(option).name or option, option
        if not name.strip() or not spec.strip():
            raise WhisperAdaptError(f"--model {option!r}: expected SPEC or NAME=SPEC, e.g. adapted=models/first")
        if name in specs or name == OPENAI_MODEL_ALIAS:
            raise WhisperAdaptError(f"--model {option!r}: the name {name!r} is taken; give NAME=SPEC")
        specs[name.strip()] = spec.strip()
    if not specs:
        raise WhisperAdaptError("no model to serve")
    return specs


class ModelStore:
    """Served models by name, each loaded once on first use and shared by every request."""

    def __init__(self, specs: Mapping[str, str], default: str, device: str, compute_type: str):
        if default not in specs:
            raise WhisperAdaptError(f"default model {default!r} is not among the served models {list(specs)}")
        self.specs, self.default = dict(specs), default
        self._device, self._compute_type = device, compute_type
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def name_for(self, requested: str | None) -> str:
        if not requested or requested == OPENAI_MODEL_ALIAS:
            return self.default
        if requested not in self.specs:
            raise RequestError(404, f"model {requested!r} is not served here; GET /v1/models lists "
                                    f"{', '.join(self.specs)}", param="model", code="model_not_found")
        return requested

    def get(self, name: str):
        # One lock for all loads: a second request for a model being loaded waits instead of loading it twice.
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load_model(self.specs[name], self._device, self._compute_type)
            return self._loaded[name]


class SpeakerStore:
    """The speaker labeller, loaded once on the first request that asks for speakers."""

    def __init__(self, options: SpeakerOptions, device: str):
        self.options, self._device = options, device
        self._labeller = None
        self._lock = threading.Lock()

    def get(self):
        from whisper_adapt.speakers import load_labeller

        with self._lock:
            if self._labeller is None:
                self._labeller = load_labeller(self.options, "cuda" if self._device == "cuda" else "cpu")
            return self._labeller


class Admission:
    """Counts requests from acceptance to answer; beyond `limit` a new one is turned away."""

    def __init__(self, limit: int):
        if limit < 1:
            raise WhisperAdaptError(f"the request limit must be at least 1, not {limit}")
        self.limit, self._count = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self._count >= self.limit:
                raise RequestError(429, f"the server is busy ({self.limit} requests in progress or waiting); "
                                        "try again shortly", kind="rate_limit_error", code="server_busy",
                                   headers={"Retry-After": str(RETRY_AFTER_S)})
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1

    @property
    def pending(self) -> int:
        return self._count


@dataclass(frozen=True)
class Limits:
    """What one request may cost. Memory does not grow with the audio (it is transcribed in windows), but
    time does: `max_audio_s` bounds it, found while decoding whatever the file's header claims."""

    max_upload_bytes: int = 100_000_000
    max_audio_s: float = 7200.0
    # From acceptance until the upload is received and checked: a client that stalls is answered 408 then,
    # and its place among the `max_pending` is freed.
    request_deadline_s: float = 120.0
    max_pending: int = 4

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise WhisperAdaptError(f"the upload limit must be at least 1 byte, not {self.max_upload_bytes}")
        if not (self.max_audio_s > 0 and self.request_deadline_s > 0):
            raise WhisperAdaptError("the audio limit and the request deadline must be above 0")


@dataclass(frozen=True)
class _Server:
    models: ModelStore
    options: TranscribeOptions
    limits: Limits
    admission: Admission
    executor: ThreadPoolExecutor
    speakers: SpeakerStore


@dataclass(frozen=True)
class _Job:
    """One request's validated fields."""

    model: str
    filename: str
    response_format: str
    options: TranscribeOptions


def create_app(models: Mapping[str, str], default: str, options: TranscribeOptions = TranscribeOptions(),
               token: str | None = None, limits: Limits = Limits(), device: str = "auto",
               compute_type: str = "auto", speakers: SpeakerOptions = SpeakerOptions()) -> FastAPI:
    """The server's ASGI app; `models` maps served names to model specs (anything `load_model` takes);
    `speakers` configures the labels of `diarized_json` answers (reference voices, names)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper-adapt-serve")
    server = _Server(ModelStore(models, default, device, compute_type), options, limits,
                     Admission(limits.max_pending), executor, SpeakerStore(speakers, device))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="whisper-adapt", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(WhisperAdaptError, _server_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.middleware("http")(_guard(token))
    app.get("/health")(_health)
    app.get("/v1/models")(_list_models)
    app.post("/v1/audio/transcriptions", openapi_extra=TRANSCRIPTION_REQUEST)(_transcriptions)
    return app


def preload(app: FastAPI) -> None:
    """Load the default model now, so a bad model fails at start-up and the first request is not slow."""
    server = _server(app)
    server.models.get(server.models.default)
    if server.speakers.options.voices_dir or server.speakers.options.names_file:  # a bad folder fails now
        server.speakers.get()


def run_server(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info")


def _server(app: FastAPI) -> _Server:
    return app.state.server


def _guard(token: str | None):
    """Middleware: the access policy (access.py) for every path; /health needs no token, for monitors."""

    async def guard(request: Request, call_next) -> Response:
        if token is None or request.url.path != "/health":
            refusal = check_request(token, request.headers.get("host"),
                                    [bearer_token(request.headers.get("authorization", ""))])
            if refusal is not None:
                code = "invalid_api_key" if refusal.status == 401 else "forbidden_host"
                return JSONResponse(_error_body(refusal.message, "invalid_request_error", code=code),
                                    refusal.status, headers=refusal.headers)
        return await call_next(request)

    return guard


async def _health(request: Request) -> dict:
    """Unauthenticated, for monitors: says how full the queue is, nothing about models or audio."""
    admission = _server(request.app).admission
    return {"status": "ok", "pending": admission.pending, "max_pending": admission.limit}


async def _list_models(request: Request) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "whisper-adapt"}
                                       for name in _server(request.app).models.specs]}


async def _transcriptions(request: Request) -> Response:
    server, limits = _server(request.app), _server(request.app).limits
    _check_declared_size(request, limits.max_upload_bytes)
    server.admission.enter()
    folder = Path(tempfile.mkdtemp(prefix="whisper-adapt-serve-"))
    try:
        async with _deadline(limits.request_deadline_s):
            async with _limited(request, limits.max_upload_bytes).form(max_files=1) as form:
                job = _parse_job(form, server)
                path = await run_in_threadpool(_store_upload, form["file"], job.filename, folder)
        # Decoded once before queueing, so that a bad or too long upload is answered without waiting; this is
        # our work, bounded by the audio limit, so the client's deadline does not cover it.
        await run_in_threadpool(_check_audio, path, job.filename, limits.max_audio_s)
        future = server.executor.submit(_transcribe, server, job, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        server.admission.leave()
        raise

    def done(_) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        server.admission.leave()

    # Leave when the work is done, not when this handler ends: a client that hangs up does not stop the
    # worker, and the bound is on work, not on open connections.
    future.add_done_callback(done)
    return _response(await asyncio.wrap_future(future), job)


@asynccontextmanager
async def _deadline(seconds: float):
    """Answer 408 when the block has not finished within `seconds` (a client sending its upload slowly or not
    at all), 400 when the client hung up mid-upload; the caller then frees the request's place."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as e:
        raise RequestError(408, f"the upload was not received within this server's deadline of {seconds:g} s",
                           code="request_timeout") from e
    except ClientDisconnect as e:  # the body ended before its Content-Length: nobody is left to answer
        raise RequestError(400, "the upload ended before its declared length", code="incomplete_upload") from e


def _too_large(limit: int) -> RequestError:
    return RequestError(413, f"the upload exceeds this server's limit of {limit:,} bytes", param="file",
                        code="upload_too_large")


def _check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


def _limited(request: Request, limit: int) -> Request:
    """`request` whose body stops with 413 past `limit` bytes: a chunked upload declares no size."""
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _too_large(limit)
        return message

    return Request(request.scope, receive)


def _parse_job(form: FormData, server: _Server) -> _Job:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RequestError(400, "no audio: send it as the multipart field 'file'", param="file")
    response_format = _text_field(form, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise RequestError(400, f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
                           param="response_format")
    options = replace(
        server.options,
        language=_language(_text_field(form, "language"), server.options.language),
        initial_prompt=_text_field(form, "prompt") or server.options.initial_prompt,
        temperatures=_temperatures(_text_field(form, "temperature"), server.options.temperatures),
        # Diarized answers split segments where the speaker changes, which takes the words' times.
        word_timestamps=("word" in form.getlist("timestamp_granularities[]") or server.options.word_timestamps
                         or response_format == "diarized_json"),
    )
    return _Job(server.models.name_for(_text_field(form, "model")), upload.filename or "upload", response_format,
                options)


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestError(400, f"{name} must be a text field, not a file", param=name)
    return value.strip() if value else None


def _language(value: str | None, default: str | None) -> str | None:
    if value is None:
        return default
    try:
        return parse_language(value)
    except WhisperAdaptError as e:
        raise RequestError(400, e.problem, param="language", code="unsupported_language") from e


def _temperatures(value: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    """OpenAI's rule: 0 (or none) lets the decoder raise the temperature on failure; above 0 fixes it."""
    if value is None:
        return default
    try:
        temperature = float(value)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        raise RequestError(400, f"temperature must be a number from 0 to 1, not {value!r}", param="temperature")
    return default if temperature == 0.0 else (temperature,)


def _store_upload(upload: UploadFile, filename: str, folder: Path) -> Path:
    """The upload as a file of its own (PyAV reads paths), kept until its transcription is done."""
    if upload.size == 0:
        raise RequestError(400, f"{filename}: the uploaded file is empty", param="file")
    # The suffix helps PyAV with containers it cannot recognize from their bytes alone.
    path = folder / f"upload{Path(filename).suffix[:16]}"
    with open(path, "wb") as out:
        upload.file.seek(0)
        while chunk := upload.file.read(1 << 20):
            out.write(chunk)
    return path


def _check_audio(path: Path, filename: str, max_audio_s: float) -> None:
    with _audio_errors(filename):
        decoded_duration_s(path, max_audio_s)


@contextmanager
def _audio_errors(filename: str):
    """Our audio errors as the client's: they name our temporary file, the client knows its file by its name."""
    try:
        yield
    except TooLongError as e:
        raise RequestError(413, f"{filename}: {e.problem}, this server's limit", param="file",
                           code="audio_too_long") from e
    except AudioError as e:
        raise RequestError(415, f"{filename}: {e.problem}", param="file", code="unsupported_media") from e


def _transcribe(server: _Server, job: _Job, path: Path) -> Transcript:
    with _audio_errors(job.filename):
        transcript = transcribe_path(server.models.get(job.model), path, job.options, source=job.filename,
                                     max_duration_s=server.limits.max_audio_s)
        if job.response_format == "diarized_json":
            transcript = server.speakers.get().label(path, transcript)
    return transcript


def _response(transcript: Transcript, job: _Job) -> Response:
    if job.response_format == "json":
        return JSONResponse({"text": transcript.text})
    if job.response_format == "verbose_json":
        return JSONResponse(_verbose_json(transcript, job.options.word_timestamps))
    if job.response_format == "diarized_json":
        return JSONResponse(_diarized_json(transcript))
    body = transcript.text + "\n" if job.response_format == "text" else render(transcript, job.response_format)
    return PlainTextResponse(body, media_type=_CONTENT_TYPES[job.response_format])


def _verbose_json(transcript: Transcript, words: bool) -> dict:
    """OpenAI's verbose_json; tokens and the temperature each segment was decoded at are not kept by
    faster-whisper's segments as we store them, so they are left out rather than made up."""
    document = {
        "task": "transcribe",
        "language": language_name(transcript.language),
        "duration": transcript.duration_s,
        "text": transcript.text,
        "segments": [
            {"id": index, "seek": round(segment.start_s * 100), "start": segment.start_s, "end": segment.end_s,
             "text": segment.text, "avg_logprob": segment.avg_logprob,
             "compression_ratio": segment.compression_ratio, "no_speech_prob": segment.no_speech_prob}
            for index, segment in enumerate(transcript.segments)
        ],
    }
    if words:
        document["words"] = [{"word": word.text, "start": word.start_s, "end": word.end_s}
                             for segment in transcript.segments for word in segment.words]
    return document


def _diarized_json(transcript: Transcript) -> dict:
    """OpenAI's diarized_json (its segment ids are strings); usage is billing and is left out."""
    return {
        "task": "transcribe",
        "duration": transcript.duration_s,
        "text": transcript.text,
        "segments": [
            {"type": "transcript.text.segment", "id": f"seg_{index:03d}", "start": segment.start_s,
             "end": segment.end_s, "text": segment.text, "speaker": segment.speaker}
            for index, segment in enumerate(transcript.segments)
        ],
    }


def _error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


async def _request_error(_: Request, error: RequestError) -> JSONResponse:
    return JSONResponse(_error_body(error.problem, error.kind, error.param, error.code), error.status,
                        headers=error.headers)


async def _server_error(_: Request, error: WhisperAdaptError) -> JSONResponse:
    """Our own errors past validation (a model that cannot be loaded …): the server's fault, said plainly."""
    return JSONResponse(_error_body(str(error), "server_error"), 500)


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    """Starlette's own refusals (unknown path, malformed multipart) in OpenAI's shape too."""
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    return JSONResponse(_error_body(str(error.detail), kind), error.status_code, headers=error.headers)
