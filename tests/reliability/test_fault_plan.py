"""The simulator's fault plans: the text syntax, seeded replay, counts and bursts, and changing a plan at run time."""

from __future__ import annotations

import httpx
import pytest

from pec_mcp.cli import main
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME
from pec_mcp.simulator.faults import DroppedConnection, FaultPlan, FaultSpecError, Reply, parse_rule, respond, rule

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": f"Bearer {PECMASSIVA_TOKEN}", "x-username": PECMASSIVA_USERNAME,
           "x-password": PECMASSIVA_PASSWORD}
SEND = {"sender": PECMASSIVA_USERNAME, "recipient": ["mario@pec.it"], "subject": "Prova", "body": "Testo",
        "username": PECMASSIVA_USERNAME, "password": PECMASSIVA_PASSWORD}


@pytest.fixture
async def api(simulator: Simulator) -> httpx.AsyncClient:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator.app),
                                 base_url="http://simulator") as client:
        yield client  # type: ignore[misc]


def test_a_plan_reads_rules_options_and_a_seed() -> None:
    plan = FaultPlan.parse("pecmassiva:/send:drop-after:0.1, openapi-pec:*:503-html:next2:method=GET, "
                           "*:*:429:0.5:burst=3:retry_after=2, seed=7")
    first, second, third = plan.rules
    assert plan.seed == 7
    assert (first.provider, first.path, first.kind, first.probability, first.count) == (
        "pecmassiva", "/send", "drop-after", 0.1, None)
    assert (second.provider, second.count, second.method) == ("openapi_pec", 2, "GET")
    assert (third.burst, third.retry_after) == (3, 2.0)
    assert FaultPlan.parse("").rules == []


@pytest.mark.parametrize(("text", "complaint"), [
    ("pecmassiva:/send:explode:0.1", "unknown fault 'explode'"),
    ("postino:/send:drop:0.1", "unknown provider 'postino'"),
    ("pecmassiva:/send:drop", "a rule is provider:path:kind:chance"),
    ("pecmassiva:/send:drop:often", "'often' is not a number"),
    ("pecmassiva:/send:drop:1.5", "not between 0 and 1"),
    ("pecmassiva:/send:drop:next0", "N >= 1"),
    ("pecmassiva:/send:drop:0.1:colour=red", "unknown option 'colour'"),
    ("pecmassiva:/send:drop:0.1:status=500", "unknown option 'status'"),
    ("pecmassiva:/send:respond:1:status=abc", "'abc' is not a number"),
    ("pecmassiva:/send:respond:1:status=42", "status 42 is not an HTTP status"),
])
def test_a_wrong_rule_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        parse_rule(text)


def test_the_same_seed_hits_the_same_requests() -> None:
    def hits(seed: int) -> list[bool]:
        plan = FaultPlan.parse(f"pecmassiva:*:503-html:0.3,seed={seed}")
        return [plan.pick("pecmassiva", "GET", "/inbox") is not None for _ in range(200)]

    assert hits(7) == hits(7)
    assert hits(7) != hits(8)
    assert 30 < sum(hits(7)) < 90  # about 30% of 200


def test_next_n_hits_exactly_n_matching_requests_and_a_burst_hits_in_a_row() -> None:
    plan = FaultPlan([rule("429", "pecmassiva", "/send", times=2, method="POST")])
    picked = [plan.pick("pecmassiva", method, path) is not None
              for method, path in [("GET", "/send"), ("POST", "/send"), ("POST", "/inbox"), ("POST", "/send"),
                                   ("POST", "/send")]]
    assert picked == [False, True, False, True, False]
    burst = FaultPlan.parse("*:*:429:0.05:burst=4,seed=1")
    runs = [burst.pick("mensatek", "POST", "/GetCreditos") is not None for _ in range(400)]
    starts = [i for i in range(1, len(runs)) if runs[i] and not runs[i - 1]]
    assert starts and all(runs[i:i + 4] == [True] * 4 for i in starts if i + 4 <= len(runs))


async def test_a_refusing_fault_answers_in_the_providers_place(api: httpx.AsyncClient, simulator: Simulator) -> None:
    simulator.faults = FaultPlan([rule("429", "pecmassiva", "/send", times=1, retry_after=3),
                                  rule("502-html", "pecmassiva", "/quota/*", times=1),
                                  rule("success-false", "mensatek", times=1)])
    limited = await api.post("/pecmassiva/send", json=SEND, headers=HEADERS)
    page = await api.get("/pecmassiva/quota/INBOX", headers=HEADERS)
    refused = await api.post("/mensatek/v7/GetCreditos")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert page.status_code == 502 and page.text.startswith("<!DOCTYPE html>")
    assert refused.status_code == 200 and refused.json()["Res"] == "-3"
    stats = simulator.stats.as_dict()
    assert "pecmassiva_send" not in stats["accepted"]
    assert stats["faults"] == {"pecmassiva:429": 1, "pecmassiva:502-html": 1, "mensatek:success-false": 1}


def test_a_respond_rule_in_text_reads_its_status_content_type_and_percent_encoded_body() -> None:
    written = parse_rule("openapi_pec:/pec/*/rinnovo:respond:next1:status=503:content_type=text/plain:"
                         "body=down%2C for now%3A retry:retry_after=30")
    bare = parse_rule("mensatek:*:respond:1")
    assert written.reply == Reply.text(503, "down, for now: retry", "text/plain", {"Retry-After": "30"})
    assert (written.count, written.path) == (1, "/pec/*/rinnovo")
    assert bare.reply == Reply(200, b"", "application/json")
    assert FaultPlan([written]).describe()["rules"][0]["reply"]["body"] == "down, for now: retry"


async def test_a_respond_fault_answers_exactly_what_it_was_given_and_nothing_reaches_the_provider(
    api: httpx.AsyncClient, simulator: Simulator
) -> None:
    quota = Reply.json({"success": False, "message": "Quota service down"}, 503, {"Retry-After": "7"})
    simulator.faults = FaultPlan([respond(quota, "pecmassiva", "/quota/*", times=1),
                                  respond(Reply.json([{"Res": "-5"}]), "mensatek", "/EnviarEMAILCERTIFICADO")])
    answered = await api.get("/pecmassiva/quota/INBOX", headers=HEADERS)
    again = await api.get("/pecmassiva/quota/INBOX", headers=HEADERS)
    credits = await api.post("/mensatek/v7/GetCreditos")  # another path: not hit
    refused = await api.post("/mensatek/v7/EnviarEMAILCERTIFICADO")
    assert (answered.status_code, answered.headers["retry-after"]) == (503, "7")
    assert answered.headers["content-type"] == "application/json"
    assert answered.json() == {"success": False, "message": "Quota service down"}
    assert again.status_code == 200  # the rule was for the next request only
    assert credits.json() != [{"Res": "-5"}] and refused.json() == [{"Res": "-5"}]
    assert simulator.stats.as_dict()["faults"] == {"pecmassiva:respond": 1, "mensatek:respond": 1}
    assert "mensatek_send" not in simulator.stats.as_dict()["accepted"]


async def test_a_drop_after_the_request_sends_the_message_and_loses_the_answer(
    api: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.faults = FaultPlan([rule("drop-after", "pecmassiva", "/send", times=1)])
    with pytest.raises(httpx.RemoteProtocolError) as dropped:
        await api.post("/pecmassiva/send", json=SEND, headers=HEADERS)
    again = await api.post("/pecmassiva/send", json=SEND, headers=HEADERS)
    assert isinstance(dropped.value, DroppedConnection)
    assert again.status_code == 201
    assert simulator.stats.as_dict()["accepted"]["pecmassiva_send"] == 2  # the lost one was sent too
    assert simulator.stats.recipients["mario@pec.it"] == 2


async def test_spoiling_faults_let_the_provider_work_and_garble_its_answer(
    api: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.faults = FaultPlan([rule("truncated", "pecmassiva", "/send", times=1),
                                  rule("invalid-json", "pecmassiva", "/send", times=1),
                                  rule("empty-204", "pecmassiva", "/send", times=1)])
    truncated, garbled, empty = [await api.post("/pecmassiva/send", json=SEND, headers=HEADERS) for _ in range(3)]
    assert truncated.status_code == 201 and truncated.text.startswith('{"success"')
    with pytest.raises(ValueError):
        truncated.json()
    assert garbled.status_code == 201 and "<b>Warning</b>" in garbled.text
    assert empty.status_code == 204 and empty.content == b""
    assert simulator.stats.as_dict()["accepted"]["pecmassiva_send"] == 3


async def test_the_plan_changes_at_run_time_and_simulator_routes_are_never_faulted(
    api: httpx.AsyncClient, simulator: Simulator
) -> None:
    changed = await api.post("/__simulator__/faults", json={"faults": "*:*:503-html:1.0,seed=3"})
    stats = await api.get("/__simulator__/stats")
    down = await api.get("/pecmassiva/inbox", headers=HEADERS)
    shown = (await api.get("/__simulator__/faults")).json()
    cleared = await api.post("/__simulator__/faults", content="")
    up = await api.get("/pecmassiva/inbox", headers=HEADERS)
    wrong = await api.post("/__simulator__/faults", content="*:*:boom:1")
    assert changed.json()["seed"] == 3 and changed.json()["rules"][0]["kind"] == "503-html"
    assert stats.status_code == 200 and down.status_code == 503
    assert shown["injected"] == {"pecmassiva:503-html": 1} and shown["seen"] == {"pecmassiva GET /inbox": 1}
    assert cleared.json()["rules"] == [] and up.status_code == 200
    assert wrong.status_code == 400 and "unknown fault 'boom'" in wrong.json()["message"]


def test_the_simulate_command_refuses_a_wrong_plan_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--faults", "pecmassiva:/send:meltdown:1"]) == 2
    assert "--faults: unknown fault 'meltdown'" in capsys.readouterr().err


async def test_a_misspelt_body_key_is_refused_and_the_plan_in_force_stays(
    api: httpx.AsyncClient, simulator: Simulator
) -> None:
    await api.post("/__simulator__/faults", json={"faults": "*:*:503-html:1.0"})
    typo = await api.post("/__simulator__/faults", json={"fault": ""})
    not_text = await api.post("/__simulator__/faults", json={"faults": 3})
    shown = (await api.get("/__simulator__/faults")).json()
    assert typo.status_code == 400 and "unknown key(s) 'fault'" in typo.json()["message"]
    assert '{"faults": "<plan>"}' in typo.json()["message"]
    assert not_text.status_code == 400
    assert shown["rules"][0]["kind"] == "503-html"  # nothing was cleared
