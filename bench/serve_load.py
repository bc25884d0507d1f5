"""Load on `whisper-adapt serve`: N concurrent clients on loopback send a fixed mix of good and bad requests;
the answers are counted by status, with p50/p95 latency per kind and the server's peak RSS.

The server runs as the CLI runs it (a subprocess, the packaged model by default) with small limits so every
refusal is reached: --max-pending, --max-upload-mb 5, --max-audio-minutes 90, --request-deadline-s 10. The mix
(per client, in turn): the bundled 13 s sample (200, or 429 when the queue is full), not audio (415), an empty
file (400), an unknown model (404), an unknown response format (400), an unknown language (400), a foreign Host
header (403), a declared oversize upload (413), a 2 MB FLAC holding 3 hours of silence (413 while decoding),
and an upload that stalls after its first bytes (408 at the deadline). One client also sends an hour of
silence within the limits first: the server's peak memory must not follow it (it is transcribed in windows).
The goal: no 5xx at 4× --max-pending clients, peak RSS under 1 GB.

    python bench/serve_load.py [--clients 16] [--rounds 1] [--max-pending 4] [--model base]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

BOUNDARY = "load-bench-boundary"
DEADLINE_S = 10


def multipart(fields: dict[str, str], filename: str, data: bytes) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def silence_flac(path: Path, minutes: float) -> bytes:
    import av

    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000)
        stream.layout = "mono"
        minute = np.zeros((1, 16000 * 60), np.int16)
        for _ in range(round(minutes)):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path.read_bytes()


def requests_mix(folder: Path) -> dict[str, tuple[dict, bytes]]:
    """Kind → (headers, body), each a whole request the clients send as is."""
    from whisper_adapt.resources import sample_recording

    sample = sample_recording().read_bytes()
    form = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    good = {"model": "whisper-1", "language": "ja"}
    return {
        "good": (form, multipart(good, "sample.m4a", sample)),
        "not audio": (form, multipart(good, "notes.mp3", b"not audio at all " * 100)),
        "empty file": (form, multipart(good, "empty.wav", b"")),
        "unknown model": (form, multipart({**good, "model": "large-v9"}, "sample.m4a", sample)),
        "bad format": (form, multipart({**good, "response_format": "docx"}, "sample.m4a", sample)),
        "bad language": (form, multipart({**good, "language": "xx"}, "sample.m4a", sample)),
        "foreign Host": ({**form, "Host": "evil.example"}, multipart(good, "sample.m4a", sample)),
        "declared oversize": ({**form, "Content-Length": str(50_000_000)}, b""),
        "3 h of silence": (form, multipart(good, "silence.flac", silence_flac(folder / "3h.flac", 180))),
        "stalled upload": (form, b""),
        "1 h of silence": (form, multipart(good, "hour.flac", silence_flac(folder / "1h.flac", 60))),
    }


def send(port: int, kind: str, headers: dict, body: bytes) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        connection.putrequest("POST", "/v1/audio/transcriptions", skip_host="Host" in headers)
        if kind == "stalled upload":
            headers = {**headers, "Content-Length": "100000"}
            body = f"--{BOUNDARY}\r\n".encode()  # and then nothing more
        elif "Content-Length" not in headers:
            headers = {**headers, "Content-Length": str(len(body))}
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            connection.send(body)
        except OSError:  # the server answered (413) and closed before the body was sent
            pass
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def start_server(args, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "whisper_adapt", "serve", "--model", args.model, "--port", str(port),
               "--max-pending", str(args.max_pending), "--max-upload-mb", "5", "--max-audio-minutes", "90",
               "--request-deadline-s", str(DEADLINE_S), "--device", "cpu"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while True:
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            probe.request("GET", "/health")
            if probe.getresponse().status == 200:
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{server.stderr.read()[-3000:]}")
            time.sleep(0.5)
        finally:
            probe.close()


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024


def run_clients(port: int, mix: dict, clients: int, rounds: int) -> dict[str, list[tuple[int, float]]]:
    kinds = [kind for kind in mix if kind != "1 h of silence"]
    results: dict[str, list[tuple[int, float]]] = defaultdict(list)
    lock = threading.Lock()

    def client(number: int) -> None:
        # Each client starts at another kind, so every kind is in flight at once.
        plan = (["1 h of silence"] if number == 0 else []) + [
            kinds[(number + step) % len(kinds)] for step in range(rounds * len(kinds))]
        for kind in plan:
            outcome = send(port, kind, *mix[kind])
            with lock:
                results[kind].append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def report(results: dict[str, list[tuple[int, float]]], args, wall_s: float, rss_mb: float) -> None:
    print(f"{args.clients} clients × {args.rounds} round(s) of the mix, --max-pending {args.max_pending}, "
          f"model {args.model}, CPU ({os.cpu_count()} cores, shared), {wall_s:.0f} s")
    print(f"{'kind':<20}{'n':>4}  {'statuses':<24}{'p50 s':>8}{'p95 s':>8}")
    totals: Counter = Counter()
    for kind, outcomes in results.items():
        statuses = Counter(status for status, _ in outcomes)
        totals.update({f"{status // 100}xx" if status != 200 else "200": n for status, n in statuses.items()})
        latencies = sorted(latency for _, latency in outcomes)
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        shown = " ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))
        print(f"{kind:<20}{len(outcomes):>4}  {shown:<24}{statistics.median(latencies):>8.2f}{p95:>8.2f}")
    print(f"totals: 200 {totals['200']}, 4xx {totals['4xx']}, 5xx {totals['5xx']}; "
          f"server peak RSS {rss_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-pending", type=int, default=4)
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        mix = requests_mix(Path(directory))
        server = start_server(args, port)
        try:
            started = time.monotonic()
            results = run_clients(port, mix, args.clients, args.rounds)
            wall_s = time.monotonic() - started
            rss_mb = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    report(results, args, wall_s, rss_mb)
    if any(status >= 500 for outcomes in results.values() for status, _ in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
