"""The review page in a real headless Chromium against the real server and SQLite corpus: keyboard-only
correction, conflicts between two pages, a server killed right after an edit, and refused requests."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.cli import main
from whisper_adapt.corpus import create_corpus, open_corpus
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.review.annotate import find_spans, order_queue, queue_entry
from whisper_adapt.review.app import MAX_BODY_BYTES, create_app
from whisper_adapt.transcript import Word

from conftest import fuzz_schema

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
GLOSSARY_TEXT = "上期 (かみき) ← 紙木, かみき\nミライ計画 ← 未来計画\n"
FIRST, SECOND, NOISE = "meeting-00001000", "meeting-00005000", "meeting-00009000"
FIRST_DRAFT = "まず紙木の売上について報告します。"
TOKEN = "test-token-1234"


@pytest.fixture
def corpus_dir(synth_wav, tmp_path) -> Path:
    """Three drafted clips: one holding a known misrecognition (紙木), one a term, one noise."""
    speech = [decode_audio(synth_wav("まず上期の売上について報告します。", "jm_kumo")),
              decode_audio(synth_wav("ミライ計画の進捗はどうですか。", "jf_tebukuro"))]
    noise = np.random.default_rng(0).normal(0, 0.05, SAMPLE_RATE * 2).astype(np.float32)
    path = tmp_path / "corpus"
    with create_corpus(path) as corpus:
        recording = corpus.add_recording(Path("meeting.wav"), None, name="meeting")
        for clip_id, samples, start_s in ((FIRST, speech[0], 1.0), (SECOND, speech[1], 5.0), (NOISE, noise, 9.0)):
            corpus.add_clip(recording, clip_id, samples, start_s, start_s + len(samples) / SAMPLE_RATE)
        corpus.set_drafts([
            (FIRST, FIRST_DRAFT, [Word(0.0, 0.4, "まず", 0.95), Word(0.4, 0.9, "紙木", 0.31),
                                  Word(0.9, 2.8, "の売上について報告します。", 0.88)]),
            (SECOND, "ミライ計画の進捗はどうですか。", [Word(0.0, 2.5, "ミライ計画の進捗はどうですか。", 0.9)]),
            (NOISE, "ご視聴ありがとうございました", [Word(0.0, 2.0, "ご視聴ありがとうございました", 0.2)]),
        ], model="test")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def running_server(corpus_dir, serve_app):
    """`running_server(token=TOKEN)`: the review app on the test corpus, served on loopback; yields its URL."""

    def run(token: str | None = TOKEN):
        return serve_app(create_app(corpus_dir, parse_glossary(GLOSSARY_TEXT), token, reviewer="tester"))

    return run


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to test the review page")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open_page(browser, url: str, problems: list[str]):
    """A page in its own context (own storage: a second person), reporting errors and off-server requests."""
    page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(url.split("/?")[0]) else problems.append(f"fetched {r.url}"))
    page.goto(url)
    page.wait_for_function("document.getElementById('text').value.length > 0")
    return page


def _unexpected(problems: list[str], allowed: str) -> list[str]:
    """The problems left once the browser's log line for an expected refusal (`allowed`) is taken out."""
    return [p for p in problems if not (p.startswith("console: Failed to load resource") and allowed in p)]


def _wait_saved(page, timeout_ms: float = 1500) -> None:
    page.wait_for_function("document.getElementById('save-state').dataset.state === 'saved'", timeout=timeout_ms)


_AUDIO_DURATION_JS = """() => new Promise(resolve => {
  const audio = document.getElementById('audio');
  if (audio.readyState >= 1) return resolve(audio.duration);
  audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
  audio.addEventListener('error', () => resolve(-1));
})"""


def test_keyboard_only_correction_is_saved_as_a_revision_and_survives_reload(browser, corpus_dir, running_server):
    problems: list[str] = []
    with running_server() as base:
        page = _open_page(browser, f"{base}/?token={TOKEN}", problems)
        # Flagged drafts come first: the clip with 紙木 opens, its audio is the clip's WAV.
        assert page.inner_text("#clip-id").startswith(FIRST)
        with open_corpus(corpus_dir) as corpus:
            wav_s = len(decode_audio(corpus.get_clip(FIRST).audio_path)) / SAMPLE_RATE
        assert page.evaluate(_AUDIO_DURATION_JS) == pytest.approx(wav_s, abs=0.02)
        assert page.inner_text("#fix-hint") == "Alt+F: 紙木 → 上期"
        assert page.locator("#draft-words .word.unsure").all_inner_texts() == ["紙木"]
        assert "accept and next" in page.inner_text("#shortcuts")

        page.keyboard.press("Alt+KeyF")  # the one-key fix
        page.wait_for_function("document.querySelector('#annotated mark.term')?.textContent === '上期'")
        page.keyboard.press("End")
        page.keyboard.type("以上")
        page.keyboard.press("Control+Enter")  # accept and next
        page.wait_for_function(f"document.getElementById('clip-id').textContent.startsWith('{SECOND}')")
        assert page.inner_text("#progress") == "1 / 3 done"

        page.reload()
        page.wait_for_function("document.getElementById('text').value.length > 0")
        assert page.locator("#queue li[data-status=reviewed]").count() == 1
    assert problems == []
    with open_corpus(corpus_dir) as corpus:
        clip = corpus.get_clip(FIRST)
        revisions = corpus.revisions(FIRST)
    assert (clip.text, clip.status) == ("まず上期の売上について報告します。以上", "reviewed")
    assert [(r.text, r.status, r.origin) for r in revisions[2:]] == [
        ("まず上期の売上について報告します。", "draft", "person:tester"),
        ("まず上期の売上について報告します。以上", "reviewed", "person:tester")]


def test_undo_after_accept_and_reject_of_noise(browser, corpus_dir, running_server):
    problems: list[str] = []
    with running_server() as base:
        page = _open_page(browser, f"{base}/?token={TOKEN}", problems)
        page.keyboard.press("Alt+ArrowDown")
        page.keyboard.press("Alt+ArrowDown")
        page.wait_for_function(f"document.getElementById('clip-id').textContent.startsWith('{NOISE}')")
        page.keyboard.press("Alt+KeyX")  # reject: noise, not speech
        page.wait_for_function("document.getElementById('message').textContent.includes('rejected')")
        with open_corpus(corpus_dir) as corpus:
            assert corpus.get_clip(NOISE).status == "rejected"
        page.keyboard.press("Alt+KeyZ")
        page.wait_for_function("document.getElementById('message').textContent.startsWith('undone')")
    assert problems == []
    with open_corpus(corpus_dir) as corpus:
        assert [r.status for r in corpus.revisions(NOISE)] == ["draft", "draft", "rejected", "draft"]


def test_two_pages_editing_one_clip_get_a_conflict_not_an_overwrite(browser, corpus_dir, running_server):
    problems: list[str] = []
    with running_server() as base:
        first = _open_page(browser, f"{base}/?token={TOKEN}", problems)
        second = _open_page(browser, f"{base}/?token={TOKEN}", problems)
        first.keyboard.type("A")
        _wait_saved(first)
        second.keyboard.type("B")
        second.wait_for_selector("#conflict:not([hidden])")
        assert second.get_attribute("#save-state", "data-state") == "conflict"
        assert FIRST_DRAFT + "A" in second.inner_text("#conflict")
        second.keyboard.press("Alt+KeyL")  # load theirs
        second.wait_for_function(f"document.getElementById('text').value === {FIRST_DRAFT + 'A'!r}")
    assert _unexpected(problems, "409 (Conflict)") == []
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(FIRST).text == FIRST_DRAFT + "A"


def _start_cli_server(corpus_dir: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "whisper_adapt", "review", "--corpus", str(corpus_dir),
                                "--port", str(port), "--reviewer", "tester"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    pytest.fail("the review server did not start within 30 s")


def test_server_killed_right_after_an_edit_keeps_it_and_the_page_resaves_when_it_returns(browser, corpus_dir):
    port, problems = _free_port(), []
    server = _start_cli_server(corpus_dir, port)
    try:
        page = _open_page(browser, f"http://127.0.0.1:{port}/", problems)
        page.keyboard.type("一")
        _wait_saved(page)  # within 1.5 s of the keystroke: the promise is "at most the last second"
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        with open_corpus(corpus_dir) as corpus:
            assert corpus.get_clip(FIRST).text == FIRST_DRAFT + "一"
        page.keyboard.type("二")  # typed while the server is down: kept, shown as not saved, retried
        page.wait_for_function("document.getElementById('save-state').dataset.state === 'offline'")
        server = _start_cli_server(corpus_dir, port)
        _wait_saved(page, timeout_ms=5000)
        # Both down at once: the server is killed, the page typed into and closed before it could save.
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        page.keyboard.type("三")
        page.wait_for_function("document.getElementById('save-state').dataset.state === 'offline'")
        context = page.context
        page.close()
        server = _start_cli_server(corpus_dir, port)
        reopened = context.new_page()  # same browser profile: the unsaved edit is still in its storage
        reopened.goto(f"http://127.0.0.1:{port}/")
        _wait_saved(reopened, timeout_ms=5000)
        assert reopened.input_value("#text") == FIRST_DRAFT + "一二三"
    finally:
        server.kill()
        server.wait(10)
    assert _unexpected(problems, "ERR_CONNECTION_REFUSED") == []
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(FIRST).text == FIRST_DRAFT + "一二三"
        assert [(r.text, r.origin) for r in corpus.revisions(FIRST)][2:] == [
            (FIRST_DRAFT + text, "person:tester") for text in ("一", "一二", "一二三")]


def _raw(base: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """A request with `path` sent byte for byte (no client-side normalization of '..' or '%2F')."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("set-cookie") or ""
    finally:
        connection.close()


def test_token_traversal_and_size_limits(corpus_dir, running_server):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with running_server() as base:
        assert _raw(base, "GET", "/")[0] == 401
        assert _raw(base, "GET", "/api/queue", {"Authorization": "Bearer wrong"})[0] == 401
        assert _raw(base, "GET", f"/audio/{FIRST}")[0] == 401
        status, _, cookie = _raw(base, "GET", f"/?token={TOKEN}")
        assert status == 200 and "HttpOnly" in cookie and TOKEN in cookie
        assert _raw(base, "GET", "/static/review.js", {"Cookie": cookie.split(";")[0]})[0] == 200
        assert _raw(base, "GET", "/api/queue", bearer)[0] == 200
        status, body, _ = _raw(base, "GET", f"/audio/{FIRST}", bearer)
        assert status == 200 and body[:4] == b"RIFF"
        for path in ("/audio/..%2Fcorpus.db", "/audio/../corpus.db", "/audio/%2e%2e%2fcorpus.db",
                     "/audio/..%2F..%2Fetc%2Fpasswd", "/static/..%2Fapp.py", "/static/../app.py",
                     "/audio/audio%2Fmeeting-00001000.wav", "/audio/nope", "/api/clips/..%2Fcorpus.db"):
            assert _raw(base, "GET", path, bearer)[0] == 404, path
        huge = b'{"text": "' + b"a" * MAX_BODY_BYTES + b'", "version": 2}'
        assert _raw(base, "PUT", f"/api/clips/{FIRST}", {**bearer, "Content-Type": "application/json"}, huge)[0] == 413
        stale = '{"text": "x", "version": 1}'.encode()
        status, body, _ = _raw(base, "PUT", f"/api/clips/{FIRST}", bearer, stale)
        assert status == 409 and b'"current_version":2' in body
    with running_server(token=None) as base:
        assert _raw(base, "GET", "/api/queue")[0] == 200
        assert _raw(base, "GET", "/api/queue", {"Host": "attacker.example"})[0] == 403  # DNS rebinding
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(FIRST).version == 2  # nothing refused was written


def test_malformed_saves_get_422_and_write_nothing(corpus_dir, running_server):
    """Bodies that are not a clip edit (they were answered 500 with a traceback in the server log)."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    bodies = [b"{not json", b"hello", b"", b'{"text": "x"}', b'{"text": 1, "version": "a"}', b"[]",
              '{"text": "一行目\n二行目", "version": 2}'.encode(), '{"text": "a\r", "version": 2}'.encode()]
    with running_server() as base:
        for body in bodies:
            status, answer, _ = _raw(base, "PUT", f"/api/clips/{FIRST}", bearer, body)
            assert status == 422, (body, answer)
            assert isinstance(json.loads(answer)["detail"], str) and b"Traceback" not in answer
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:  # a body cut short
            connection.sendall(f"PUT /api/clips/{FIRST} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}"
                               f"\r\nContent-Length: 50\r\n\r\n{{\"text\":".encode())
            connection.shutdown(socket.SHUT_WR)
            assert b" 500 " not in connection.recv(200)
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(FIRST).version == 2 and corpus.get_clip(FIRST).text == FIRST_DRAFT


def test_enter_in_the_text_box_adds_no_line_break(browser, corpus_dir, running_server):
    problems: list[str] = []
    with running_server() as base:
        page = _open_page(browser, f"{base}/?token={TOKEN}", problems)
        page.keyboard.press("End")
        page.keyboard.press("Enter")
        page.keyboard.type("了")
        _wait_saved(page)
        assert page.input_value("#text") == FIRST_DRAFT + "了"
    assert problems == []
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(FIRST).text == FIRST_DRAFT + "了"


def test_cli_errors(tmp_path):
    assert main(["review", "--corpus", str(tmp_path / "missing")]) == 2


def _fuzzed_review():
    """The review app's OpenAPI schema (it does not depend on the corpus: read from a throwaway one)."""
    with tempfile.TemporaryDirectory() as directory:
        create_corpus(Path(directory) / "c").close()
        return fuzz_schema(create_app(Path(directory) / "c"))


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory, serve_app):
    """The review server over a corpus of two drafted clips."""
    path = tmp_path_factory.mktemp("fuzz") / "corpus"
    with create_corpus(path) as corpus:
        recording = corpus.add_recording(Path("m.wav"), None, name="m")
        for index in range(2):
            corpus.add_clip(recording, f"m-{index}", np.zeros(SAMPLE_RATE, np.float32), index, index + 1.0)
        corpus.set_drafts([("m-0", "下書き", [Word(0.0, 1.0, "下書き", 0.5)])], model="test")
    with serve_app(create_app(path, parse_glossary(GLOSSARY_TEXT), reviewer="fuzz")) as url:
        yield url


@_fuzzed_review().parametrize()
def test_fuzzed_requests_get_no_server_error(case, fuzz_url):
    """Valid and invalid requests of every operation derived from the app's OpenAPI schema (deterministically)."""
    response = case.call(base_url=fuzz_url)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    assert "Traceback" not in response.text


def test_spans_and_queue_order(corpus_dir):
    glossary = parse_glossary(GLOSSARY_TEXT)
    spans = find_spans("紙木と上期とミライ計画", glossary)
    assert [(s.start, s.end, s.kind, s.term) for s in spans] == [
        (0, 2, "misrecognition", "上期"), (3, 5, "term", "上期"), (6, 11, "term", "ミライ計画")]
    with open_corpus(corpus_dir) as corpus:
        order = lambda terms: [e.clip.id for e in order_queue([queue_entry(c, terms) for c in corpus.clips()])]
        assert order(glossary) == [FIRST, SECOND, NOISE]  # all flagged: a fix, a term, an unsure word
        assert order(None) == [FIRST, NOISE, SECOND]  # without a glossary only unsure words flag a clip
        corpus.revise_text(FIRST, FIRST_DRAFT, "person:x", 2, status="reviewed")
        assert order(glossary) == [SECOND, NOISE, FIRST]  # reviewed clips go last
