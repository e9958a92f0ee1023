"""The shared HTTP client: sends paced, reads retried (and only reads), secrets kept out of logs."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from pec_mcp.http import (
    NO_RETRY,
    ON_DISPATCH,
    PACE,
    ClientOptions,
    LocalPacer,
    RetryPolicy,
    build_client,
    retry_after_seconds,
    safe_url,
)

pytestmark = pytest.mark.anyio

SECRET = "tok-9f8e7d6c5b4a"


class FakeTime:
    """A clock that moves only when someone sleeps, and remembers every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A provider fake answering from a list of responses (or exceptions), counting the requests it saw."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


DEFAULT_POLICY = RetryPolicy()


def _client(script: Script, time: FakeTime, *, policy: RetryPolicy = DEFAULT_POLICY, pacer: LocalPacer | None = None
            ) -> httpx.AsyncClient:
    return build_client(provider="test", base_url="http://provider", transport=httpx.MockTransport(script),
                        pacer=pacer, options=ClientOptions(retry=policy, sleep=time.sleep))


# -- pacing ------------------------------------------------------------------------------------------------------


async def test_the_pacer_spaces_requests_by_one_interval_and_lets_the_first_go_at_once() -> None:
    time = FakeTime()
    pacer = LocalPacer(2.0, clock=time.clock, sleep=time.sleep)
    for _ in range(4):
        await pacer.wait_turn()
        await pacer.dispatched()
    assert time.sleeps == pytest.approx([0.505] * 3)  # the interval, plus the margin for arrival jitter


async def test_a_request_late_after_its_turn_pushes_the_next_one_back() -> None:
    time = FakeTime()
    pacer = LocalPacer(1.0, clock=time.clock, sleep=time.sleep)
    await pacer.wait_turn()
    time.now += 0.7  # its turn came, then it was held up (say, the in-process simulator being built)
    await pacer.dispatched()
    await pacer.wait_turn()
    await pacer.dispatched()
    assert time.sleeps == pytest.approx([1.01])  # a full interval after the first really left, not 0.3 s


async def test_a_turn_given_back_sends_nothing_and_frees_the_slot_at_once() -> None:
    time = FakeTime()
    pacer = LocalPacer(1.0, clock=time.clock, sleep=time.sleep)
    await pacer.wait_turn()
    await pacer.give_back()
    await pacer.wait_turn()
    await pacer.dispatched()
    assert time.sleeps == []


async def test_a_send_refused_429_with_retry_after_pauses_every_later_send() -> None:
    time = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "20"}), httpx.Response(201))
    pacer = LocalPacer(1.0, clock=time.clock, sleep=time.sleep)
    async with _client(script, time, pacer=pacer) as client:
        refused = await client.post("/send", extensions={PACE: True})
        sent = await client.post("/send", extensions={PACE: True})
    assert (refused.status_code, sent.status_code) == (429, 201)
    assert time.sleeps == [20.0]  # the provider's wait, not the one-second interval


async def test_only_requests_marked_as_paced_wait_and_the_dispatch_hook_runs_right_before_sending() -> None:
    time = FakeTime()
    events: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events.append(f"{request.method} on the wire")
        return httpx.Response(201, json={})

    async def hook() -> None:
        events.append("dispatching")

    pacer = LocalPacer(1.0, clock=time.clock, sleep=time.sleep)
    client = build_client(provider="test", base_url="http://provider", transport=httpx.MockTransport(answer),
                          pacer=pacer, options=ClientOptions(sleep=time.sleep))
    async with client:
        for _ in range(3):
            await client.post("/send", extensions={PACE: True, ON_DISPATCH: hook})
        await client.get("/inbox")
        await client.get("/inbox")
    assert time.sleeps == pytest.approx([1.01, 1.01])  # three sends a second (and a margin) apart; reads did not wait
    assert events[:2] == ["dispatching", "POST on the wire"]


async def test_a_send_is_counted_from_the_moment_its_headers_were_written_not_from_its_turn() -> None:
    time = FakeTime()

    async def slow_wire(request: httpx.Request) -> httpx.Response:
        # As httpcore does on a real connection: opening it took 0.3 s, then the headers went out (traced).
        time.now += 0.3
        await request.extensions["trace"]("http11.send_request_headers.complete", {})
        time.now += 0.2  # the provider's answer takes a while: the next turn does not wait for it
        return httpx.Response(201, json={})

    pacer = LocalPacer(1.0, clock=time.clock, sleep=time.sleep)
    client = build_client(provider="test", base_url="http://provider", transport=httpx.MockTransport(slow_wire),
                          pacer=pacer, options=ClientOptions(sleep=time.sleep))
    async with client:
        first = time.now
        await client.post("/send", extensions={PACE: True})
        await client.post("/send", extensions={PACE: True})
    # The second went out 1.01 s after the first one's headers (first + 0.3), whatever its answer took.
    assert time.sleeps == pytest.approx([1.01 - 0.2])
    assert time.now == pytest.approx(first + 0.3 + 1.01 + 0.3 + 0.2)


# -- retries of reads -------------------------------------------------------------------------------------------


async def test_a_read_answered_429_waits_as_retry_after_says_then_succeeds() -> None:
    time, script = FakeTime(), Script(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200))
    async with _client(script, time) as client:
        response = await client.get("/inbox")
    assert response.status_code == 200 and len(script.seen) == 2
    assert time.sleeps == [7.0]


async def test_a_retry_after_longer_than_the_cap_is_cut_to_the_cap() -> None:
    time, script = FakeTime(), Script(httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200))
    async with _client(script, time, policy=RetryPolicy(max_wait=5.0)) as client:
        await client.get("/inbox")
    assert time.sleeps == [5.0]


async def test_a_read_answered_503_is_retried_with_growing_backoff_and_the_last_answer_is_returned() -> None:
    time, script = FakeTime(), Script(httpx.Response(503))
    async with _client(script, time, policy=RetryPolicy(attempts=4, backoff=1.0)) as client:
        response = await client.get("/quota/INBOX")
    assert response.status_code == 503 and len(script.seen) == 4
    assert len(time.sleeps) == 3
    for wait, base in zip(time.sleeps, (1.0, 2.0, 4.0), strict=True):
        assert 0.8 * base <= wait <= 1.2 * base  # jitter of ±20 %


async def test_connect_errors_on_a_read_are_retried_and_the_last_one_is_raised() -> None:
    time, script = FakeTime(), Script(httpx.ConnectError("refused"))
    async with _client(script, time, policy=RetryPolicy(attempts=3)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/inbox")
    assert len(script.seen) == 3 and len(time.sleeps) == 2


async def test_a_connect_error_followed_by_an_answer_gives_the_answer() -> None:
    time, script = FakeTime(), Script(httpx.ConnectError("refused"), httpx.Response(200, json={"ok": 1}))
    async with _client(script, time) as client:
        assert (await client.get("/inbox")).json() == {"ok": 1}


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried(status: int) -> None:
    time, script = FakeTime(), Script(httpx.Response(status))
    async with _client(script, time) as client:
        assert (await client.get("/inbox")).status_code == status
    assert len(script.seen) == 1 and time.sleeps == []


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.Response(429), httpx.ReadTimeout("lost")],
                         ids=["503", "429", "timeout"])
async def test_a_request_that_changes_something_is_never_retried(method: str, failure: object) -> None:
    time, script = FakeTime(), Script(failure)  # type: ignore[arg-type]
    async with _client(script, time) as client:
        with contextlib.suppress(httpx.ReadTimeout):
            await client.request(method, "/send")
    assert len(script.seen) == 1 and time.sleeps == []


async def test_a_get_marked_no_retry_goes_out_once() -> None:
    time, script = FakeTime(), Script(httpx.Response(503))
    async with _client(script, time) as client:
        response = await client.get("/pec/1/rinnovo", extensions={NO_RETRY: True})
    assert response.status_code == 503 and len(script.seen) == 1 and time.sleeps == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("12", 12.0), ("-3", 0.0), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],  # a date in the past means "now"
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_urls_are_logged_without_their_query_string() -> None:
    assert safe_url(httpx.URL(f"http://h/webhooks/x?token={SECRET}")) == "http://h/webhooks/x"


# -- redaction ---------------------------------------------------------------------------------------------------
