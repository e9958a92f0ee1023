"""Planning a bulk job: CSV files as people export them, templates checked on every row, requests within limits."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest

from pec_mcp.config import Settings
from pec_mcp.errors import InputError, PathNotAllowed
from pec_mcp.jobs import (
    RecipientRow,
    group_requests,
    inline_recipients,
    parse_recipients_csv,
    plan_bulk,
    read_recipients_csv,
    render,
    sniff_delimiter,
)

MB = 1024 * 1024


def rows(n: int, **variables: str) -> list[RecipientRow]:
    return [RecipientRow(i + 1, f"cliente{i}@pec.example.it", dict(variables)) for i in range(n)]


def test_a_utf8_csv_with_bom_and_semicolons_is_read_with_its_accents() -> None:
    data = codecs.BOM_UTF8 + "address;nome;città\nmario@pec.it;Mario Rossi;Forlì\n".encode()
    [row] = parse_recipients_csv(data)
    assert row == RecipientRow(2, "mario@pec.it", {"nome": "Mario Rossi", "città": "Forlì"})


def test_a_latin1_csv_is_read_when_it_is_not_utf8() -> None:
    data = "address,nome\nluca@pec.it,Niccolò\n".encode("latin-1")
    [row] = parse_recipients_csv(data)
    assert row.variables == {"nome": "Niccolò"}


def test_commas_inside_quotes_do_not_split_a_value() -> None:
    data = b'address,ragione_sociale\nanna@pec.it,"Rossi, Bianchi & C. srl"\n'
    assert parse_recipients_csv(data)[0].variables == {"ragione_sociale": "Rossi, Bianchi & C. srl"}


def test_the_delimiter_is_the_one_the_header_uses_most() -> None:
    assert sniff_delimiter("address;nome;importo") == ";"
    assert sniff_delimiter("address,nome") == ","
    assert sniff_delimiter("address") == ","


def test_header_names_are_case_insensitive_and_blank_lines_are_skipped() -> None:
    data = b"\n Address ;Nome\n\nmario@pec.it;Mario\n;\n"
    assert parse_recipients_csv(data) == [RecipientRow(4, "mario@pec.it", {"nome": "Mario"})]


def test_a_csv_without_an_address_column_is_refused_naming_the_columns_found() -> None:
    with pytest.raises(InputError, match=r"no 'address' column.*'email', 'nome'"):
        parse_recipients_csv(b"email;nome\nmario@pec.it;Mario\n")


def test_a_row_with_more_cells_than_columns_is_refused_with_its_line() -> None:
    with pytest.raises(InputError, match="row 3: 3 cells for 2 columns"):
        parse_recipients_csv(b"address,nome\na@pec.it,A\nb@pec.it,Rossi, Mario\n")


def test_a_csv_outside_the_allowed_folders_is_not_read(tmp_path: Path, files: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("address\na@pec.it\n")
    with pytest.raises(PathNotAllowed):
        read_recipients_csv(str(outside), [files.resolve()])


def test_templates_take_variables_by_name_whatever_the_case_and_spacing() -> None:
    rendered = render("Gentile {{ Nome }}, fattura {{numero}}", {"nome": "Anna", "numero": "7"})
    assert rendered == "Gentile Anna, fattura 7"


def test_every_row_is_checked_and_the_refusal_names_each_bad_row(settings: Settings) -> None:
    data = (b"address;nome\nmario@pec.it;Mario\nnot-an-address;Luca\nMARIO@PEC.IT;Mario again\n"
            b"anna@pec.it;\n")
    with pytest.raises(InputError) as refused:
        plan_bulk(recipients=parse_recipients_csv(data), subject="Avviso per {{nome}}", body="Gentile {{nome}}",
                  attachments=[], settings=settings)
    text = refused.value.message
    assert "nothing was sent" in text and "3 problem(s)" in text
    assert "row 3: 'not-an-address' is not a valid email address" in text
    assert "row 4: MARIO@pec.it is also on row 2" in text
    assert "row 5: no value for {{nome}}" in text


def test_recipients_outside_the_allowed_domains_refuse_the_job(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sending={"allowed_recipient_domains": ["pec.it"]})
    recipients = inline_recipients([{"address": "a@pec.it"}, {"address": "b@gmail.com"}])
    with pytest.raises(InputError, match=r"recipient 2: b@gmail\.com is outside the allowed domains"):
        plan_bulk(recipients=recipients, subject="S", body="B", attachments=[], settings=settings,
                  row_word="recipient")


def test_a_variable_that_breaks_the_subject_line_refuses_that_row(settings: Settings) -> None:
    recipients = inline_recipients([{"address": "a@pec.it", "variables": {"n": "riga\ndue"}}])
    with pytest.raises(InputError, match="recipient 1: the subject is not one line"):
        plan_bulk(recipients=recipients, subject="Avviso {{n}}", body="B", attachments=[], settings=settings,
                  row_word="recipient")


def test_a_hundred_identical_messages_with_a_limit_of_fifty_go_in_two_requests(settings: Settings) -> None:
    plan = plan_bulk(recipients=rows(100), subject="Avviso", body="Testo uguale per tutti", attachments=[],
                     settings=settings)
    assert [len(r) for r in plan.requests] == [50, 50]
    assert plan.cost_eur == 5.0


def test_a_two_megabyte_notice_to_a_hundred_recipients_needs_seven_requests_under_the_30_mb_rule(
    settings: Settings, files: Path
) -> None:
    notice = files / "avviso.pdf"
    notice.write_bytes(b"x" * 2_000_000)
    plan = plan_bulk(recipients=rows(100), subject="Avviso", body="Testo", attachments=[str(notice)],
                     settings=settings)
    assert len(plan.requests) == 7
    assert all(len(r) * plan.request_bytes[0] <= 30 * MB for r in plan.requests)


def test_personalised_messages_go_one_per_request_and_identical_ones_together(settings: Settings) -> None:
    recipients = inline_recipients(
        [{"address": f"r{i}@pec.it", "variables": {"n": str(i % 3)}} for i in range(9)]
    )
    plan = plan_bulk(recipients=recipients, subject="Pratica {{n}}", body="B", attachments=[], settings=settings)
    assert [len(r) for r in plan.requests] == [3, 3, 3]
    assert plan.preview.subject == "Pratica 0"
    unique = inline_recipients([{"address": f"r{i}@pec.it", "variables": {"n": str(i)}} for i in range(4)])
    plan = plan_bulk(recipients=unique, subject="Pratica {{n}}", body="B", attachments=[], settings=settings)
    assert [len(r) for r in plan.requests] == [1, 1, 1, 1]


def test_grouping_keeps_the_order_in_which_messages_first_appear() -> None:
    messages = [(b"a", 10), (b"b", 10), (b"a", 10), (b"c", 10), (b"a", 10)]
    assert group_requests(messages, max_recipients=2, max_bytes=1e9) == [[0, 2], [4], [1], [3]]


def test_a_message_larger_than_a_request_may_carry_is_refused() -> None:
    with pytest.raises(InputError, match="more than a request may carry"):
        group_requests([(b"a", 31 * MB)], max_recipients=50, max_bytes=30 * MB)
