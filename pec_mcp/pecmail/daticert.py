"""Read ``daticert.xml``, the certification data every PEC receipt and envelope carries inside its signature.

The format is fixed by the technical rules of the PEC service (DM 2 November 2005, technical annex)::

    <postacert tipo="avvenuta-consegna" errore="nessuno">
      <intestazione>
        <mittente>…</mittente>
        <destinatari tipo="certificato|esterno">…</destinatari>   (one or more)
        <risposte>…</risposte>
        <oggetto>…</oggetto>
      </intestazione>
      <dati>
        <gestore-emittente>…</gestore-emittente>
        <data zona="+0100"><giorno>dd/mm/yyyy</giorno><ora>hh:mm:ss</ora></data>
        <identificativo>…</identificativo>
        <msgid>&lt;…&gt;</msgid>
        <ricevuta tipo="completa|breve|sintetica"/>
        <consegna>…</consegna>          (delivery receipts: the mailbox the message reached)
        <ricezione>…</ricezione>        (presa in carico: recipients taken in charge)
        <errore-esteso>…</errore-esteso>  (failures: "5.1.1 - Gestore - ...")
      </dati>
    </postacert>

XML safety: the standard library's expat parser feeding an ElementTree builder, with every entity declaration
refused. That closes entity expansion ("billion laughs") and external entities, the two XML attacks that apply to
a file received from anyone, without a further dependency (defusedxml does the same with more code around it); a
``DOCTYPE`` naming the rules' DTD is allowed (real providers send one) and never fetched.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NoReturn
from xml.parsers import expat
from zoneinfo import ZoneInfo

from pec_mcp.errors import MalformedPecMessage

# postacert/@tipo values of the rules; "errore" is the busta di anomalia.
TIPI = frozenset(
    {
        "accettazione",
        "non-accettazione",
        "presa-in-carico",
        "avvenuta-consegna",
        "posta-certificata",
        "errore-consegna",
        "preavviso-errore-consegna",
        "rilevazione-virus",
        "errore",
    }
)
ERRORI = frozenset({"nessuno", "no-dest", "no-dominio", "virus", "altro"})
_ROME = ZoneInfo("Europe/Rome")
_ZONE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# Some providers write the Message-ID in <msgid> with its angle brackets unescaped, which is not XML.
_RAW_MSGID = re.compile(rb"<msgid>\s*<([^<>]*)>\s*</msgid>")


@dataclass(frozen=True)
class DaticertRecipient:
    address: str
    certified: bool  # destinatari tipo="certificato"; False for "esterno" (an ordinary mailbox: no legal value)


@dataclass(frozen=True)
class Daticert:
    """The facts of one ``daticert.xml``; element names of the rules in the comments."""

    tipo: str  # postacert/@tipo: accettazione, avvenuta-consegna, errore-consegna, posta-certificata, ...
    error: str  # postacert/@errore: nessuno, no-dest, no-dominio, virus, altro
    sender: str  # intestazione/mittente
    recipients: tuple[DaticertRecipient, ...]  # intestazione/destinatari
    reply_to: str | None  # intestazione/risposte
    subject: str  # intestazione/oggetto
    provider: str  # dati/gestore-emittente
    date: datetime  # dati/data: giorno + ora in zona, timezone-aware
    identifier: str  # dati/identificativo: the provider's id of the message
    msgid: str | None  # dati/msgid: the Message-ID of the original message, with its angle brackets
    receipt_type: str | None  # dati/ricevuta/@tipo: completa, breve, sintetica
    delivered_to: str | None  # dati/consegna: the mailbox a delivery receipt speaks of
    received_by: tuple[str, ...]  # dati/ricezione
    error_detail: str | None  # dati/errore-esteso


def parse_daticert(data: bytes) -> Daticert:
    """Parse one ``daticert.xml``; raises :class:`MalformedPecMessage` naming what is wrong."""
    root = _parse_xml(data)
    if root.tag != "postacert":
        _malformed(f"its root element is <{root.tag}>, not <postacert>")
    tipo = (root.get("tipo") or "").strip().lower()
    if tipo not in TIPI:
        _malformed(f"postacert tipo {tipo!r} is none of the rules' types ({', '.join(sorted(TIPI))})")
    error = (root.get("errore") or "nessuno").strip().lower()
    header = _child(root, "intestazione")
    dati = _child(root, "dati")
    return Daticert(
        tipo=tipo,
        error=error,
        sender=_required_text(header, "mittente"),
        recipients=tuple(
            DaticertRecipient(_text(node) or "", (node.get("tipo") or "certificato").strip().lower() != "esterno")
            for node in header.findall("destinatari")
            if _text(node)
        ),
        reply_to=_optional_text(header, "risposte"),
        subject=_text(header.find("oggetto")) or "",
        provider=_required_text(dati, "gestore-emittente"),
        date=_date(_child(dati, "data")),
        identifier=_required_text(dati, "identificativo"),
        msgid=_optional_text(dati, "msgid"),
        receipt_type=_attribute(dati.find("ricevuta"), "tipo"),
        delivered_to=_optional_text(dati, "consegna"),
        received_by=tuple(t for t in (_text(n) for n in dati.findall("ricezione")) if t),
        error_detail=_optional_text(dati, "errore-esteso"),
    )


def _parse_xml(data: bytes) -> ElementTree.Element:
    try:
        return _expat_without_entities(data)
    except expat.ExpatError as exc:
        repaired = _RAW_MSGID.sub(rb"<msgid>&lt;\1&gt;</msgid>", data)
        if repaired != data:
            try:
                return _expat_without_entities(repaired)
            except expat.ExpatError:
                pass
        _malformed(f"it is not well-formed XML ({exc})")


def _expat_without_entities(data: bytes) -> ElementTree.Element:
    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    # Refusing the declarations refuses every expansion: no internal entity bombs, no external entities.
    parser.EntityDeclHandler = _refuse_entities
    parser.UnparsedEntityDeclHandler = _refuse_entities
    try:
        parser.Parse(data, True)
        return builder.close()
    except _EntityRefused:
        _malformed("it declares XML entities, which daticert.xml never needs (refused for safety)")


class _EntityRefused(Exception):
    pass


def _refuse_entities(*_: object) -> NoReturn:
    raise _EntityRefused


def _child(node: ElementTree.Element, name: str) -> ElementTree.Element:
    found = node.find(name)
    if found is None:
        _malformed(f"<{name}> is missing from <{node.tag}>")
    return found


def _text(node: ElementTree.Element | None) -> str | None:
    if node is None:
        return None
    text = "".join(node.itertext()).strip()
    return text or None


def _optional_text(node: ElementTree.Element, name: str) -> str | None:
    return _text(node.find(name))


def _required_text(node: ElementTree.Element, name: str) -> str:
    text = _text(node.find(name))
    if text is None:
        _malformed(f"<{name}> is missing or empty in <{node.tag}>")
    return text


def _attribute(node: ElementTree.Element | None, name: str) -> str | None:
    if node is None:
        return None
    value = (node.get(name) or "").strip().lower()
    return value or None


def _date(node: ElementTree.Element) -> datetime:
    day = _required_text(node, "giorno")
    time = _required_text(node, "ora")
    try:
        naive = datetime.strptime(f"{day} {time}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        _malformed(f"its date {day!r} {time!r} is not dd/mm/yyyy hh:mm:ss")
    zone = (node.get("zona") or "").strip()
    if not zone:
        return naive.replace(tzinfo=_ROME)  # no zone given: the rules speak of Italian time
    match = _ZONE.match(zone)
    if not match:
        _malformed(f"its time zone {zone!r} is not of the form +0100")
    sign = -1 if match.group(1) == "-" else 1
    offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return naive.replace(tzinfo=timezone(sign * offset))


def _malformed(why: str) -> NoReturn:
    raise MalformedPecMessage(f"The daticert.xml of this PEC message cannot be read: {why}")
