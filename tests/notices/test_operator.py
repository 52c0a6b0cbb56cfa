"""The operator command: publishing incidents and sub-processor changes, updating them, and
the audit rows each publication leaves in every recipient agency's log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.notices import operator
from shared.settings import Settings
from tests.notices.conftest import NOW, Operator, incident_args
from tests.support.database import TestDatabase
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture, make_agency


def audit_rows(owner: psycopg.Connection[Any], notice_id: str) -> list[tuple[Any, ...]]:
    return owner.execute(
        "SELECT agency_id, actor, action FROM cao.audit_log WHERE target = %s"
        " ORDER BY agency_id, id",
        (notice_id,),
    ).fetchall()


def notice_count(owner: psycopg.Connection[Any], title: str) -> int:
    row = owner.execute("SELECT count(*) FROM cao.notices WHERE title = %s", (title,)).fetchone()
    assert row is not None
    return int(row[0])


def test_an_incident_published_to_all_agencies_reaches_each_with_an_operator_audit_row(
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    a, b = make_agency(app_conn), make_agency(app_conn)

    result = run_operator(*incident_args("--all"))

    notice_id = result.notice_id
    assert uuid.UUID(notice_id)
    assert "to 2 agencies" in result.err and "No email was sent" in result.err
    for agency in (a, b):
        listed = client.get("/api/notices", headers=agency.headers).json()["items"]
        assert [n["id"] for n in listed] == [notice_id]
        detail = client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()
        assert detail["kind"] == "incident" and detail["status"] == "open"
        assert detail["known_facts"] == "A log sink kept request headers for 3 hours."
        assert detail["data_categories"] == ["API key prefixes", "request paths"]
        assert detail["mitigation"] == "Keys rotated; the sink was purged."
        assert detail["contact"] == "security@cloudagencyops.com"
        assert detail["updates"] == [] and detail["unread"] is True
    assert audit_rows(owner_conn, notice_id) == sorted(
        [(a.id, "operator", "notice.published"), (b.id, "operator", "notice.published")]
    )


def test_an_incident_for_one_agency_is_invisible_to_another_in_list_by_id_and_read(
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    notice_id = run_operator(*incident_args("--agency", str(agency.id))).notice_id

    mine = client.get("/api/notices", headers=agency.headers).json()["items"]
    assert [n["id"] for n in mine] == [notice_id]
    assert client.get("/api/notices", headers=other_agency.headers).json()["items"] == []
    for response in (
        client.get(f"/api/notices/{notice_id}", headers=other_agency.headers),
        client.post(f"/api/notices/{notice_id}/read", headers=other_agency.headers),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert audit_rows(owner_conn, notice_id) == [(agency.id, "operator", "notice.published")]
    # B's failed read changed nothing of A's delivery.
    assert client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()["unread"]


def test_an_unknown_agency_refuses_the_whole_publication(
    agency: AgencyFixture, owner_conn: psycopg.Connection[Any], run_operator: Operator
) -> None:
    unknown = uuid.uuid4()
    title = f"Partial {uuid.uuid4()}"

    result = run_operator(
        *incident_args("--agency", str(agency.id), "--agency", str(unknown), title=title)
    )

    assert result.code == 1
    assert f"no such agency: {unknown}" in result.err and "nothing sent" in result.err
    assert result.out == ""
    assert notice_count(owner_conn, title) == 0


def test_updates_accumulate_in_order_and_resolving_closes_the_incident(
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    notice_id = run_operator(*incident_args("--agency", str(agency.id))).notice_id

    first = run_operator("update", "--notice", notice_id, "--text", "Scope: 12 keys.")
    second = run_operator(
        "update", "--notice", notice_id, "--text", "All keys rotated.", "--resolve"
    )

    assert first.notice_id == second.notice_id == notice_id
    detail = client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()
    assert [u["text"] for u in detail["updates"]] == ["Scope: 12 keys.", "All keys rotated."]
    assert detail["updates"][0]["at"] <= detail["updates"][1]["at"]
    assert detail["status"] == "resolved"
    assert detail["updated_at"] > detail["created_at"]
    assert audit_rows(owner_conn, notice_id) == [
        (agency.id, "operator", "notice.published"),
        (agency.id, "operator", "notice.updated"),
        (agency.id, "operator", "notice.updated"),
    ]
    # Only its recipients see the updates.
    assert client.get(f"/api/notices/{notice_id}", headers=other_agency.headers).status_code == 404

    again = run_operator("update", "--notice", notice_id, "--text", "Again.", "--resolve")
    assert again.code == 1 and "already resolved" in again.err
    detail = client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()
    assert len(detail["updates"]) == 2


def test_updating_a_notice_that_does_not_exist_fails_and_writes_nothing(
    run_operator: Operator,
) -> None:
    missing = str(uuid.uuid4())
    result = run_operator("update", "--notice", missing, "--text", "x")
    assert result.code == 1 and f"no such notice: {missing}" in result.err


def change_args(effective: str, *extra: str, title: str = "Adding Resend (email)") -> list[str]:
    return [
        "publish-subprocessor-change",
        "--title",
        title,
        "--facts",
        "Resend will send transactional email from the US.",
        "--data-categories",
        "contact email",
        "--effective",
        effective,
        "--all",
        *extra,
    ]


def test_a_subprocessor_change_under_30_days_ahead_is_refused_and_nothing_is_written(
    agency: AgencyFixture, owner_conn: psycopg.Connection[Any], run_operator: Operator
) -> None:
    title = f"Too soon {uuid.uuid4()}"
    effective = (NOW.date() + timedelta(days=29)).isoformat()

    result = run_operator(*change_args(effective, title=title))

    assert result.code == 1
    assert "29 days ahead" in result.err and "at least 30 days" in result.err
    assert "--urgent" in result.err
    assert notice_count(owner_conn, title) == 0


def test_a_subprocessor_change_30_days_ahead_reaches_every_agency(
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    effective = NOW.date() + timedelta(days=30)

    notice_id = run_operator(*change_args(effective.isoformat())).notice_id

    for who in (agency, other_agency):
        detail = client.get(f"/api/notices/{notice_id}", headers=who.headers).json()
        assert detail["kind"] == "subprocessor_change" and detail["status"] == "scheduled"
        assert detail["effective_at"].startswith(f"{effective.isoformat()}T00:00:00")
        assert detail["urgent_reason"] is None and detail["mitigation"] is None
        assert detail["contact"] == "security@cloudagencyops.com"
        assert (who.id, "operator", "notice.published") in audit_rows(owner_conn, notice_id)


def test_an_urgent_subprocessor_change_records_and_shows_its_reason(
    agency: AgencyFixture,
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    effective = (NOW.date() + timedelta(days=3)).isoformat()
    reason = "Our email provider is shutting down on short notice."

    without_reason = run_operator(*change_args(effective, "--urgent"))
    assert without_reason.code == 1 and "--urgent needs --reason" in without_reason.err

    notice_id = run_operator(*change_args(effective, "--urgent", "--reason", reason)).notice_id

    detail = client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()
    assert detail["urgent_reason"] == reason
    details = owner_conn.execute(
        "SELECT details FROM cao.audit_log WHERE agency_id = %s AND target = %s",
        (agency.id, notice_id),
    ).fetchone()
    assert details is not None and details[0]["urgent_reason"] == reason


def test_a_subprocessor_change_cannot_be_resolved(
    agency: AgencyFixture, run_operator: Operator
) -> None:
    effective = (NOW.date() + timedelta(days=45)).isoformat()
    notice_id = run_operator(*change_args(effective)).notice_id

    result = run_operator("update", "--notice", notice_id, "--text", "Done.", "--resolve")

    assert result.code == 1 and "only incidents are resolved" in result.err


def test_a_notice_published_after_the_24_hour_target_warns_the_operator(
    agency: AgencyFixture, run_operator: Operator
) -> None:
    late = (NOW - timedelta(hours=30)).isoformat()
    on_time = (NOW - timedelta(hours=2)).isoformat()

    warned = run_operator(*incident_args("--agency", str(agency.id), "--confirmed-at", late))
    quiet = run_operator(*incident_args("--agency", str(agency.id), "--confirmed-at", on_time))

    assert warned.code == 0 and "30.0 hours after confirmation" in warned.err
    assert quiet.code == 0 and "warning" not in quiet.err


def test_the_operator_refuses_to_run_without_database_owner_url(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    without = {k: v for k, v in env.items() if k != "DATABASE_OWNER_URL"}
    with with_settings(Settings(without)):
        code = operator.main(incident_args("--all"))

    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("error: DATABASE_OWNER_URL is not configured")
    assert captured.out == ""


def test_the_help_says_no_email_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["publish-incident", "--help"], ["update", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            operator.main(argv)
        assert exit_info.value.code == 0
        assert "sends no email" in " ".join(capsys.readouterr().out.split())


def test_bad_flags_exit_2_with_usage(
    run_operator: Operator, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_operator(*incident_args("--all", "--agency", str(uuid.uuid4())))
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run_operator(*change_args("2026-13-01"))
    assert exit_info.value.code == 2
