"""Transcription against fake WhisperX servers of both dialects, with a real WAV file."""

import base64
import io
import json
import math
import struct
import wave

import pytest

from tests.conftest import JOB
from tests.fakes import FakeProvider, json_answer

ASR_JSON = {
    "segments": [
        {"start": 0.0, "end": 1.2, "text": " Hello there.", "speaker": "SPEAKER_00",
         "words": [{"word": "Hello", "start": 0.0, "end": 0.5, "score": 0.9, "speaker": "SPEAKER_00"},
                   {"word": "there.", "start": 0.6, "end": 1.2, "score": 0.8}]},
        {"start": 1.5, "end": 2.0, "text": " Hi.", "speaker": "SPEAKER_01", "words": [{"word": "Hi."}]},
    ],
    "word_segments": [],
    "language": "en",
}
OPENAI_JSON = {"task": "transcribe", "language": "english", "duration": 2.0, "text": "Hello there. Hi.",
               "segments": [{"id": 0, "start": 0.0, "end": 1.2, "text": "Hello there."},
                            {"id": 1, "start": 1.5, "end": 2.0, "text": " Hi."}],
               "words": [{"word": "Hello", "start": 0.0, "end": 0.5}]}


def make_wav(seconds=0.5, rate=8000) -> bytes:
    """A real mono 16-bit WAV: a 440 Hz tone."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return out.getvalue()


WAV = make_wav()


@pytest.fixture
def audio_host():
    """Serves the WAV at /call.wav (and a too-large file at /big.wav)."""
    def answer(request):
        if request.path == "/call.wav":
            return 200, {"Content-Type": "audio/wav"}, WAV
        if request.path == "/big.wav":
            return 200, {"Content-Type": "audio/wav"}, b"\0" * 5000
        return 404, {}, b"no such file"
    host = FakeProvider(answer)
    yield host
    host.close()


def _transcribe(app, **input_fields):
    body = {**JOB, "task_type": "transcribe", "model_profile": "whisperx", "input": input_fields}
    return app.post_json("/api/v1/jobs", body).json


def _done(job):
    return job["status"] in ("completed", "failed")


def test_asr_dialect_uploads_audio_file_and_joins_segments(app, start_worker, fake, audio_host, wait_for):
    fake.answer = lambda r: (200, {"Content-Type": "text/plain; charset=utf-8", "Asr-Engine": "whisperx"},
                             json.dumps(ASR_JSON).encode())
    start_worker(whisperx_url=fake.url, whisperx_api="asr")
    job = _transcribe(app, audio_url=audio_host.url + "/call.wav", language="en", diarize=True,
                      min_speakers=1, max_speakers=2, initial_prompt="Support call")
    done = wait_for(job["id"], _done)
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["text"] == "Hello there. Hi."
    assert result["language"] == "en" and result["model"] == "whisperx"
    assert [s["speaker"] for s in result["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert result["segments"][0]["words"][0]["word"] == "Hello"
    assert result["duration_ms"] >= 0
    [request] = fake.requests
    assert request.path == "/asr"
    assert {k: v[0] for k, v in request.query.items()} == {
        "task": "transcribe", "output": "json", "encode": "true", "language": "en", "diarize": "true",
        "min_speakers": "1", "max_speakers": "2", "initial_prompt": "Support call"}
    [(name, filename, content)] = request.multipart()
    assert (name, filename, content) == ("audio_file", "call.wav", WAV)
    with wave.open(io.BytesIO(content)) as w:  # what arrived is still a playable WAV
        assert w.getnframes() == 4000


def test_openai_dialect_uploads_file_with_verbose_json(app, start_worker, fake, wait_for):
    fake.answer = lambda r: json_answer(200, OPENAI_JSON)
    start_worker(whisperx_url=fake.url + "/v1", whisperx_api="openai", whisperx_model="large-v3")
    job = _transcribe(app, audio_base64=base64.b64encode(WAV).decode(), language="en", initial_prompt="p")
    done = wait_for(job["id"], _done)
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["text"] == "Hello there. Hi." and result["language"] == "english"
    assert result["model"] == "large-v3"
    assert [s["text"] for s in result["segments"]] == ["Hello there.", "Hi."]
    assert result["words"] == OPENAI_JSON["words"]
    [request] = fake.requests
    assert request.path == "/v1/audio/transcriptions"
    parts = request.multipart()
    fields = {(n, c.decode()) for n, f, c in parts if f is None}
    assert ("file", "audio", WAV) in {(n, f, c) for n, f, c in parts}
    assert {("model", "large-v3"), ("response_format", "verbose_json"), ("language", "en"), ("prompt", "p"),
            ("timestamp_granularities[]", "segment"), ("timestamp_granularities[]", "word")} <= fields


def test_audio_over_the_size_cap_fails_as_invalid_input(app, start_worker, fake, audio_host, wait_for):
    start_worker(whisperx_url=fake.url, audio_max_bytes=4096)
    job = _transcribe(app, audio_url=audio_host.url + "/big.wav")
    done = wait_for(job["id"], _done)
    assert done["error"]["category"] == "invalid_input" and "larger than 4096 bytes" in done["error"]["message"]
    assert fake.requests == []


def test_a_missing_audio_file_fails_as_invalid_input(app, start_worker, fake, audio_host, wait_for):
    start_worker(whisperx_url=fake.url)
    job = _transcribe(app, audio_url=audio_host.url + "/missing.wav")
    done = wait_for(job["id"], _done)
    assert done["status"] == "failed" and done["error"]["category"] == "invalid_input"
    assert "404" in done["error"]["message"]


def test_garbage_from_whisperx_is_invalid_output(app, start_worker, fake, wait_for):
    fake.answer = lambda r: (200, {"Content-Type": "text/plain"}, b"Internal things happened")
    start_worker(whisperx_url=fake.url)
    job = _transcribe(app, audio_base64=base64.b64encode(WAV).decode())
    assert wait_for(job["id"], _done)["error"]["category"] == "invalid_output"


def test_one_transcription_at_a_time_by_default(app, start_worker, fake, wait_for):
    import time

    def answer(request):
        time.sleep(0.3)
        return 200, {"Content-Type": "text/plain"}, json.dumps(ASR_JSON).encode()

    fake.answer = answer
    start_worker(whisperx_url=fake.url, worker_concurrency=4)
    jobs = [_transcribe(app, audio_base64=base64.b64encode(WAV).decode()) for _ in range(3)]
    for job in jobs:
        assert wait_for(job["id"], _done)["status"] == "completed"
    assert fake.max_in_flight == 1
