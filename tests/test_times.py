"""One rule for times: what pec-mcp shows is ISO 8601 in UTC, whatever zone the provider wrote."""

from __future__ import annotations

import pytest

from pec_mcp.times import as_utc


@pytest.mark.parametrize(("given", "shown"), [
    ("Wed, 26 Aug 2020 10:00:35 +0200", "2020-08-26T08:00:35+00:00"),
    ("Mon, 21 Dec 2026 15:26:37 +0100", "2026-12-21T14:26:37+00:00"),
    ("2026-12-01T10:00:00+01:00", "2026-12-01T09:00:00+00:00"),
    ("2026-12-01T09:00:00+00:00", "2026-12-01T09:00:00+00:00"),
])
def test_provider_times_are_shown_in_utc(given: str, shown: str) -> None:
    assert as_utc(given) == shown


@pytest.mark.parametrize("given", ["", "ieri", "2026-12-01T10:00:00", None])
def test_text_that_is_not_a_time_with_a_zone_is_left_as_it_is(given: str | None) -> None:
    assert as_utc(given) == given
