"""The trace buffer's masking (secrets and token prefixes, across chunk borders) and the
trace sender against the runner API double: Content-Range, 416 resume, 5xx, cancel."""

from __future__ import annotations

import threading
import zlib

from runner.core.events import LogChunk
from runner.gitlab.runner_api import RunnerAPI
from runner.gitlab.server import Server
from runner.runnermode.trace import TraceBuffer, TraceSender, checksum, mask_tokens
from tests.fake_gitlab_runner import FakeGitLabRunner


def test_token_prefixes_are_masked_even_split_across_chunks() -> None:
    buffer = TraceBuffer(["job-secret-123"])
    for piece in ("a glpat-abc", "DEF_123 b\nthe job-sec", "ret-123 and glrt-", "zz9\ntail"):
        buffer.handle(LogChunk("job", piece))
    assert buffer.data() == b"a glpat-[MASKED] b\nthe [MASKED] and glrt-[MASKED]\n"
    buffer.close()
    assert buffer.data().endswith(b"\ntail")


def test_mask_tokens_leaves_other_text() -> None:
    assert mask_tokens("glpat is a word; GR1348941abc is not") == (
        "glpat is a word; GR1348941[MASKED] is not"
    )


def test_checksum_is_crc32_of_the_whole_trace() -> None:
    assert checksum(b"hello") == f"crc32:{zlib.crc32(b'hello'):08x}"
    assert checksum(b"") == "crc32:00000000"


def sender_for(gitlab: FakeGitLabRunner, payload_name: str = "job"):
    job = gitlab.queue_job(
        {"job_info": {"name": payload_name}, "git_info": {"repo_url": "http://x/y.git"}}
    )
    job.state = "running"
    api = RunnerAPI(Server(gitlab.url, gitlab.runner_token))
    buffer = TraceBuffer()
    canceled: list[str] = []
    sender = TraceSender(api, job.id, job.token, buffer, canceled.append, interval=3600)
    return job, api, buffer, sender, canceled


def test_patches_carry_content_range_and_resume_after_416() -> None:
    with FakeGitLabRunner() as gitlab:
        job, api, buffer, sender, _ = sender_for(gitlab)
        with api:
            buffer.write("first line\n")
            assert sender.send_pending()
            buffer.write("second line\n")
            gitlab.inject("trace", "lose")
            assert sender.send_pending()
            assert bytes(job.trace) == b"first line\nsecond line\n"
            patches = gitlab.requests_to("PATCH", f"/jobs/{job.id}/trace")
            ranges = [r.headers["content-range"] for r in patches]
            assert ranges == ["0-10", "11-22", "5-22"]  # the server kept 5 bytes of 11
            assert sender.sent == len(buffer)


def test_5xx_keeps_the_bytes_for_the_next_round() -> None:
    with FakeGitLabRunner() as gitlab:
        job, api, buffer, sender, _ = sender_for(gitlab)
        with api:
            buffer.write("line\n")
            gitlab.inject("trace", 500, "drop")
            assert not sender.send_pending()
            assert not sender.send_pending()
            assert sender.send_pending()
            assert bytes(job.trace) == b"line\n"


def test_cancel_from_job_status_and_from_a_keep_alive() -> None:
    with FakeGitLabRunner() as gitlab:
        job, api, buffer, sender, canceled = sender_for(gitlab)
        with api:
            gitlab.cancel(job.id)
            buffer.write("line\n")
            sender.send_pending()
            assert canceled == ["canceling"]
            sender.touch()
            assert canceled == ["canceling", "canceling"]


def test_the_thread_sends_everything_on_stop() -> None:
    with FakeGitLabRunner() as gitlab:
        job, api, buffer, sender, _ = sender_for(gitlab)
        with api:
            sender.start()
            writers = [threading.Thread(target=buffer.write, args=(f"w{i}\n",)) for i in range(20)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            assert sender.stop()
            assert bytes(job.trace) == buffer.data()
            assert len(buffer) == sum(len(f"w{i}\n") for i in range(20))
