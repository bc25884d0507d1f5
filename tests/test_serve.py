"""The OpenAI-compatible server, run for real (uvicorn on 127.0.0.1) and called with the official `openai` client.

Fast tests serve the tiny random Whisper: its text is babble, so they compare the server's answers with the
same audio transcribed in-process, and check status codes, error shapes and formats. One slow test serves
the real `base` on synthesized Japanese.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.guards import GuardOptions
from whisper_adapt.languages import language_name
from whisper_adapt.serve import Limits, create_app, model_specs
from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_audio
from whisper_adapt.writers import render

from conftest import fuzz_schema

openai = pytest.importorskip("openai")

SENTENCE = "本日の会議を始めます。まず上期の売上について報告します。"
TOKEN = "s3cret-token"
# A random model is never confident: without the low-confidence floor its text reaches the client.
FAST = TranscribeOptions(language=None, beam_size=1, temperatures=(0.0,),
                         guards=GuardOptions(avg_logprob_floor=float("-inf")))
UPLOAD_LIMIT = 1_000_000


def client(url: str, api_key: str = "anything") -> "openai.OpenAI":
    # No retries: the tests must see the server's first answer (the client would retry a 429 on its own).
    return openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def speech(synth_wav) -> Path:
    return synth_wav(SENTENCE, "jf_alpha")


@pytest.fixture(scope="module")
def tiny_app(tiny_whisper_dir):
    return create_app({"tiny": str(tiny_whisper_dir)}, "tiny", FAST, limits=Limits(UPLOAD_LIMIT, max_pending=2),
                      device="cpu")


@pytest.fixture(scope="module")
def tiny_url(tiny_app, serve_app) -> Iterator[str]:
    with serve_app(tiny_app) as url:
        yield url


@pytest.fixture(scope="module")
def expected(tiny_whisper_dir, speech):
    """What the server should answer: the same audio, model and options, transcribed in-process."""
    options = replace(FAST, language="ja")
    return transcribe_audio(load_model(tiny_whisper_dir, device="cpu"), decode_audio(speech), options, speech.name)


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_openai_client_transcribes_in_every_format(tiny_url, speech, expected, fmt):
    with speech.open("rb") as audio:
        raw = client(tiny_url).audio.transcriptions.with_raw_response.create(
            file=audio, model="whisper-1", language="ja", response_format=fmt)
    result = raw.parse()
    content_type = raw.headers["content-type"]
    if fmt == "json":
        assert content_type == "application/json" and result.text == expected.text
    elif fmt == "text":
        assert content_type.startswith("text/plain") and result == expected.text + "\n"
    elif fmt in ("srt", "vtt"):
        assert content_type.startswith({"srt": "application/x-subrip", "vtt": "text/vtt"}[fmt])
        assert result == render(expected, fmt)
    else:
        assert result.language == "japanese" and result.text == expected.text
        assert result.duration == pytest.approx(expected.duration_s)
        assert [(s.id, s.start, s.end, s.text) for s in result.segments] == [
            (i, s.start_s, s.end_s, s.text) for i, s in enumerate(expected.segments)]
        assert all(hasattr(s, "avg_logprob") and hasattr(s, "no_speech_prob") for s in result.segments)


def test_language_auto_detects_it(tiny_url, tiny_whisper_dir, speech):
    """As the CLI's --language auto does: the same text as detecting in-process (it was a 500)."""
    detected = transcribe_audio(load_model(tiny_whisper_dir, device="cpu"), decode_audio(speech), FAST, speech.name)
    answer = client(tiny_url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny", language="auto",
                                                          response_format="verbose_json")
    assert answer.text == detected.text and answer.language == language_name(detected.language)


def test_models_are_listed_and_health_is_open(tiny_url):
    assert [model.id for model in client(tiny_url).models.list()] == ["tiny"]
    with urllib.request.urlopen(f"{tiny_url}/health") as response:
        assert json.load(response) == {"status": "ok", "pending": 0, "max_pending": 2}


@pytest.mark.parametrize(
    ("fields", "upload", "status", "message"),
    [({}, ("notes.mp3", b"not audio at all"), 415, "notes.mp3: cannot be read as audio"),
     ({}, ("empty.wav", b""), 400, "empty.wav: the uploaded file is empty"),
     ({"model": "large-v9"}, None, 404, "model 'large-v9' is not served here"),
     ({"response_format": "docx"}, None, 400, "response_format 'docx' is not one of"),
     ({"temperature": 1.5}, None, 400, "temperature must be a number from 0 to 1"),
     ({"language": "xx"}, None, 400, "unknown language 'xx'")],
)
def test_bad_requests_get_openai_style_errors(tiny_url, speech, fields, upload, status, message):
    arguments = {"model": "whisper-1", **fields}
    with pytest.raises(openai.APIStatusError) as caught:
        client(tiny_url).audio.transcriptions.create(file=upload or speech.read_bytes(), **arguments)
    assert caught.value.status_code == status
    error = caught.value.response.json()["error"]
    assert error["message"].startswith(message) and error["type"] == "invalid_request_error"


def test_a_request_without_a_file_is_refused(tiny_url):
    status, body, _ = _post(tiny_url, {"Content-Type": "application/x-www-form-urlencoded"}, b"model=whisper-1")
    assert status == 400 and "multipart field 'file'" in json.loads(body)["error"]["message"]


def test_oversize_uploads_get_413_whether_declared_or_chunked(tiny_url):
    big = ("big.wav", b"\0" * (UPLOAD_LIMIT + 1))
    with pytest.raises(openai.APIStatusError) as caught:
        client(tiny_url).audio.transcriptions.create(file=big, model="whisper-1")
    assert caught.value.status_code == 413
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()
    chunks = [head] + [b"\0" * 100_000] * 11 + [f"\r\n--{boundary}--\r\n".encode()]
    status, body, _ = _post(tiny_url, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, iter(chunks))
    assert status == 413 and "limit of 1,000,000 bytes" in json.loads(body)["error"]["message"]


def test_a_declared_oversize_is_refused_before_the_body_is_sent(tiny_url):
    connection = http.client.HTTPConnection(tiny_url.removeprefix("http://"), timeout=10)
    try:
        connection.putrequest("POST", "/v1/audio/transcriptions")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(10 * UPLOAD_LIMIT))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_a_full_queue_answers_429_and_recovers(tiny_app, tiny_url, speech):
    """Two requests wait behind a busy worker; the third is turned away at once; all served once it frees."""
    worker_free = threading.Event()
    tiny_app.state.server.executor.submit(worker_free.wait)  # the one worker is now busy elsewhere
    answers: list[str] = []

    def request() -> None:
        answers.append(client(tiny_url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny").text)

    waiting = [threading.Thread(target=request) for _ in range(2)]
    for thread in waiting:
        thread.start()
    try:
        _wait_for(lambda: _health(tiny_url)["pending"] == 2)
        with pytest.raises(openai.RateLimitError) as caught:
            client(tiny_url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny")
        assert caught.value.response.headers["retry-after"].isdigit()
    finally:
        worker_free.set()
        for thread in waiting:
            thread.join(60)
    assert len(answers) == 2 and answers[0] == answers[1]
    assert _health(tiny_url)["pending"] == 0
    assert client(tiny_url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny").text == answers[0]


def test_stalled_uploads_lose_their_place_at_the_deadline(tiny_whisper_dir, speech, serve_app):
    """Two uploads that send a few bytes and stall held both places (max-pending 2) for as long as they liked."""
    import socket

    app = create_app({"tiny": str(tiny_whisper_dir)}, "tiny", FAST,
                     limits=Limits(UPLOAD_LIMIT, request_deadline_s=2.0, max_pending=2), device="cpu")
    with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        stalled = []
        for _ in range(2):
            connection = socket.create_connection((host, int(port)), timeout=30)
            connection.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000\r\n\r\n--x\r\n")
            stalled.append(connection)
        _wait_for(lambda: _health(url)["pending"] == 2)
        with pytest.raises(openai.RateLimitError):
            client(url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny")
        started = time.monotonic()
        answers = [connection.recv(300) for connection in stalled]  # they hear 408 at the deadline
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers
        assert time.monotonic() - started < 5
        for connection in stalled:
            connection.close()
        assert _health(url)["pending"] == 0
        assert client(url).audio.transcriptions.create(file=speech.read_bytes(), model="tiny").text is not None


def test_a_client_hanging_up_mid_upload_frees_its_place_without_a_server_error(tiny_url, caplog):
    import socket

    host, port = tiny_url.removeprefix("http://").split(":")
    with caplog.at_level(logging.ERROR), socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/"
                           b"form-data; boundary=x\r\nContent-Length: 5000\r\n\r\n--x\r\nContent-Disposition: "
                           b'form-data; name="file"; filename="a.wav"\r\n\r\nRIFF')
        connection.shutdown(socket.SHUT_WR)
        assert b" 500 " not in connection.recv(200)
    _wait_for(lambda: _health(tiny_url)["pending"] == 0)
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


def test_audio_longer_than_the_limit_is_refused_while_decoding(tiny_whisper_dir, serve_app, tmp_path):
    """A 2 MB FLAC holding 3 hours of silence took the server to 3.3 GB: the limit is on decoded duration."""
    silence = tmp_path / "silence.flac"
    _encode_flac(np.zeros(10 * 60 * SAMPLE_RATE, np.float32), silence)
    assert silence.stat().st_size < UPLOAD_LIMIT
    app = create_app({"tiny": str(tiny_whisper_dir)}, "tiny", FAST, limits=Limits(UPLOAD_LIMIT, max_audio_s=60),
                     device="cpu")
    with serve_app(app) as url:
        with pytest.raises(openai.APIStatusError) as caught:
            client(url).audio.transcriptions.create(file=("silence.flac", silence.read_bytes()), model="tiny")
        assert caught.value.status_code == 413
        error = caught.value.response.json()["error"]
        assert error["message"] == "silence.flac: holds more than 1 minutes of audio, this server's limit"
        assert error["code"] == "audio_too_long" and _health(url)["pending"] == 0


def test_a_token_guards_everything_but_health(tiny_whisper_dir, speech, serve_app):
    app = create_app({"tiny": str(tiny_whisper_dir)}, "tiny", FAST, token=TOKEN, device="cpu")
    with serve_app(app) as url:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}):
            request = urllib.request.Request(f"{url}/v1/models", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request)
            assert caught.value.code == 401 and caught.value.headers["WWW-Authenticate"] == "Bearer"
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").audio.transcriptions.create(file=speech.read_bytes(), model="whisper-1")
        assert client(url, TOKEN).audio.transcriptions.create(file=speech.read_bytes(), model="whisper-1").text
        assert _health(url)["status"] == "ok"


def test_model_names():
    assert model_specs(["base", "adapted=models/first", "/srv/models/v2"]) == {
        "base": "base", "adapted": "models/first", "v2": "/srv/models/v2"}


# The schema does not depend on the served models: it is read from an app that never loads one.
FUZZED = fuzz_schema(create_app({"m": "base"}, "m"))


@FUZZED.parametrize()
def test_fuzzed_requests_get_no_server_error(case, tiny_url):
    """Valid and invalid requests of every operation derived from serve's OpenAPI schema (deterministically)."""
    response = case.call(base_url=tiny_url)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    assert _health(tiny_url)["pending"] == 0  # every request gave its place back


@pytest.mark.slow
def test_base_serves_japanese_through_the_openai_client(synth_wav, tmp_path, serve_app):
    """Real base, an m4a upload: the language is detected, and the request's prompt reaches the decoder
    (base writes 売上 as うりあげ here unless prompted; 上期 stays かみき either way, which is what training is for)."""
    import jiwer

    m4a = tmp_path / "speech.m4a"  # what a phone would upload
    _to_m4a(decode_audio(synth_wav(SENTENCE, "jf_alpha")), m4a)
    with serve_app(create_app({"base": "base"}, "base", TranscribeOptions(language=None), device="cpu")) as url:
        transcriptions = client(url).audio.transcriptions
        plain = transcriptions.create(file=m4a.read_bytes(), model="whisper-1", response_format="verbose_json")
        prompted = transcriptions.create(file=m4a.read_bytes(), model="base", language="ja", prompt="上期 下期 売上").text
    assert plain.language == "japanese" and "売上" not in plain.text and "売上" in prompted
    chars = [re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", t)) for t in (SENTENCE, prompted)]
    assert jiwer.cer(*chars) < 0.2, prompted


def _to_m4a(audio: np.ndarray, path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _encode_flac(audio: np.ndarray, path: Path) -> None:
    import av

    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _post(url: str, headers: dict, body) -> tuple[int, bytes, http.client.HTTPMessage]:
    """A raw POST (an iterator body goes chunked, with no Content-Length) to the transcription endpoint."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        connection.request("POST", "/v1/audio/transcriptions", body=body, headers=headers,
                           encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health") as response:
        return json.load(response)


def _wait_for(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_diarized_json_answers_as_openais_diarizing_model(tiny_url, conversation, tiny_whisper_dir):
    """Speakers come from the same diarization as in-process labelling; the answer parses as the openai
    client's TranscriptionDiarized."""
    from whisper_adapt.speakers import load_labeller

    path = conversation[0]
    result = client(tiny_url).audio.transcriptions.create(
        file=path.open("rb"), model="whisper-1", language="ja", response_format="diarized_json")
    audio = decode_audio(path)
    options = replace(FAST, language="ja", word_timestamps=True)
    expected = load_labeller().label(audio, transcribe_audio(load_model(tiny_whisper_dir, device="cpu"), audio,
                                                              options, path.name))
    assert result.task == "transcribe" and result.duration == pytest.approx(expected.duration_s)
    assert [(s.type, s.id, s.start, s.end, s.text, s.speaker) for s in result.segments] == [
        ("transcript.text.segment", f"seg_{i:03d}", s.start_s, s.end_s, s.text, s.speaker)
        for i, s in enumerate(expected.segments)]


@pytest.mark.slow
def test_base_diarizes_a_conversation_through_the_openai_client(conversation, serve_app):
    path, spans = conversation
    with serve_app(create_app({"base": "base"}, "base", TranscribeOptions(language="ja"), device="cpu")) as url:
        result = client(url).audio.transcriptions.create(file=path.open("rb"), model="base",
                                                         response_format="diarized_json")
    voice_of = {}
    for segment in result.segments:
        middle = (segment.start + segment.end) / 2
        voices = [voice for start, end, voice in spans if start - 0.5 <= middle <= end + 0.5]
        assert voices, segment
        assert voice_of.setdefault(voices[0], segment.speaker) == segment.speaker
    assert voice_of == {"jf_alpha": "S1", "jm_kumo": "S2"}
