"""daticert.xml is read into typed facts, and anything malformed or dangerous is a clear error, never a crash."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pec_mcp.errors import MalformedPecMessage, PecError
from pec_mcp.pecmail.daticert import parse_daticert

# Shaped as providers send it: a DOCTYPE naming the rules' DTD, an external recipient, an error detail.
FAILURE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE postacert SYSTEM "Docs/daticert.dtd">
<postacert tipo="errore-consegna" errore="no-dest">
  <intestazione>
    <mittente>mario.rossi@pec.esempio.it</mittente>
    <destinatari tipo="certificato">fail-ufficio@pec.esempio.it</destinatari>
    <destinatari tipo="esterno">amico@gmail.example</destinatari>
    <risposte>mario.rossi@pec.esempio.it</risposte>
    <oggetto>Istanza &amp; allegati \xc3\xa8</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>ARUBA PEC S.p.A.</gestore-emittente>
    <data zona="+0200">
      <giorno>26/08/2020</giorno>
      <ora>10:00:35</ora>
    </data>
    <identificativo>opec275.20200826100035.12345.01.1.1@pec.aruba.it</identificativo>
    <msgid>&lt;istanza-42@pec.esempio.it&gt;</msgid>
    <consegna>fail-ufficio@pec.esempio.it</consegna>
    <errore-esteso>5.1.1 - Aruba PEC S.p.A. - casella inesistente</errore-esteso>
  </dati>
</postacert>
"""


def test_a_failure_notice_is_read_with_every_fact_and_an_aware_date() -> None:
    facts = parse_daticert(FAILURE)
    assert facts.tipo == "errore-consegna"
    assert facts.error == "no-dest"
    assert facts.sender == "mario.rossi@pec.esempio.it"
    assert [(r.address, r.certified) for r in facts.recipients] == [
        ("fail-ufficio@pec.esempio.it", True),
        ("amico@gmail.example", False),
    ]
    assert facts.subject == "Istanza & allegati è"
    assert facts.provider == "ARUBA PEC S.p.A."
    assert facts.date == datetime(2020, 8, 26, 10, 0, 35, tzinfo=timezone(timedelta(hours=2)))
    assert facts.date.utcoffset() == timedelta(hours=2)
    assert facts.identifier.startswith("opec275.")
    assert facts.msgid == "<istanza-42@pec.esempio.it>"
    assert facts.delivered_to == "fail-ufficio@pec.esempio.it"
    assert facts.error_detail == "5.1.1 - Aruba PEC S.p.A. - casella inesistente"
    assert facts.receipt_type is None


def test_a_message_id_written_with_raw_angle_brackets_is_still_read() -> None:
    sloppy = FAILURE.replace(b"&lt;istanza-42@pec.esempio.it&gt;", b"<istanza-42@pec.esempio.it>")
    assert parse_daticert(sloppy).msgid == "<istanza-42@pec.esempio.it>"


def test_a_date_without_zone_is_taken_as_italian_time() -> None:
    facts = parse_daticert(FAILURE.replace(b' zona="+0200"', b""))
    assert facts.date.utcoffset() == timedelta(hours=2)  # 26 August: summer time in Rome


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"<postacert tipo='accettazione'><intestazione>", "not well-formed"),
        (b"", "not well-formed"),
        (FAILURE.replace(b"<postacert", b"<other").replace(b"</postacert>", b"</other>"), "root element"),
        (FAILURE.replace(b'tipo="errore-consegna"', b'tipo="consegnata"'), "none of the rules' types"),
        (FAILURE.replace(b"<mittente>mario.rossi@pec.esempio.it</mittente>", b""), "<mittente> is missing"),
        (FAILURE.replace(b"<giorno>26/08/2020</giorno>", b"<giorno>2020-08-26</giorno>"), "dd/mm/yyyy"),
        (FAILURE.replace(b'zona="+0200"', b'zona="CEST"'), "time zone"),
        (FAILURE.replace(b"<dati>", b"<altro>").replace(b"</dati>", b"</altro>"), "<dati> is missing"),
    ],
)
def test_malformed_daticert_is_a_clear_pec_error(data: bytes, says: str) -> None:
    with pytest.raises(MalformedPecMessage) as caught:
        parse_daticert(data)
    assert says in caught.value.message
    assert isinstance(caught.value, PecError)
    assert "daticert.xml" in caught.value.explain()


def test_entity_expansion_is_refused_before_it_can_grow() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE postacert [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<postacert tipo="accettazione"><intestazione><mittente>&c;</mittente></intestazione></postacert>'
    )
    with pytest.raises(MalformedPecMessage, match="declares XML entities"):
        parse_daticert(bomb)


def test_external_entities_are_refused() -> None:
    external = (
        b'<?xml version="1.0"?><!DOCTYPE postacert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<postacert tipo="accettazione"><intestazione><mittente>&x;</mittente></intestazione></postacert>'
    )
    with pytest.raises(MalformedPecMessage, match="declares XML entities"):
        parse_daticert(external)
