"""The chart's default Triton release against NVIDIA's security bulletins.

Cases: the chart's default image is in no affected range of the record; 26.05 and 26.06 are
refused with the bulletins, CVEs, scores and fixed releases named and the first safe release
suggested (through the function and through `python -m security triton`); a tag that names no
release is bad input (exit 2); the record is well formed (unique ids, ranges before their fixed
releases, each CVE's NGC range equal to the CSAF spelling kept beside it); malformed records are
refused with what is wrong; a record older than 31 days is refused at release; a fixed release
that is itself affected by another bulletin is not suggested; CSAF range spellings parse, and one
that names a Triton version is refused.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import pytest
import yaml

from security import bulletins, csaf
from security.cli import check_tag, default_tag
from security.errors import RecordError, ReleaseError
from security.releases import Release
from tests.conftest import ROOT

RECORD = bulletins.load_record()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "security", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_default_release_is_in_no_affected_range() -> None:
    tag = default_tag()
    assert check_tag(tag, RECORD) is None, check_tag(tag, RECORD)


def test_26_05_is_refused_naming_both_bulletins() -> None:
    refused = check_tag("26.05-py3", RECORD)
    assert refused is not None
    assert "image tag 26.05-py3 (NGC 26.05) is affected by 2 NVIDIA security bulletins" in refused
    assert "5865 of 2026-08-18 (CRITICAL): CVE-2026-47627 (9.8)" in refused
    assert "fixed in 26.06" in refused
    assert "5875 of 2026-09-08 (HIGH): CVE-2026-16497 (7.5); fixed in 26.07" in refused
    assert "Use NGC 26.07 or later (image.release 26.07)" in refused


def test_26_06_is_refused_for_bulletin_5875_only() -> None:
    refused = check_tag("26.06-py3", RECORD)
    assert refused is not None
    assert "affected by 1 NVIDIA security bulletin for" in refused
    assert "5875" in refused and "5865" not in refused


def test_the_cli_refuses_26_05_and_passes_the_default() -> None:
    refused = run_cli("triton", "26.05-py3")
    assert refused.returncode == 1
    assert "5865" in refused.stderr and "5875" in refused.stderr
    passed = run_cli("triton", default_tag())
    assert passed.returncode == 0, passed.stderr
    assert "no recorded bulletin affects" in passed.stdout


def test_a_tag_that_names_no_release_is_bad_input() -> None:
    done = run_cli("triton", "latest")
    assert done.returncode == 2
    assert "names no NGC release" in done.stderr
    with pytest.raises(ReleaseError, match=r"YY\.MM"):
        Release.from_tag("nightly-py3")


def test_the_record_is_well_formed() -> None:
    raw = yaml.safe_load(bulletins.RECORD.read_text())
    ids = [b.id for b in RECORD.bulletins]
    assert len(ids) == len(set(ids))
    assert [b.date for b in RECORD.bulletins] == sorted(b.date for b in RECORD.bulletins)
    for item in raw["bulletins"]:
        assert item["url"].endswith(f"a_id/{item['id']}")
        assert item["transcribed_from"].startswith("CSAF")
        for cve in item["cves"]:
            assert cve["cvss"] is not None and cve["severity"], cve["cve"]


def test_each_range_is_the_csaf_spelling_beside_it() -> None:
    """The NGC ranges say what the CSAF file says; only entries written by hand (a Triton
    version in the file) differ, and they say so."""
    raw = yaml.safe_load(bulletins.RECORD.read_text())
    for item in raw["bulletins"]:
        for cve in item["cves"]:
            spelled = cve["csaf"]
            try:
                parsed = csaf.affected_range(spelled["affected"])
                fixed = csaf.fixed_release(spelled["fixed"])
            except RecordError:
                assert "by hand" in item["transcribed_from"], cve["cve"]
                continue
            assert (parsed, fixed) == (cve["affected"], cve["fixed"]), cve["cve"]


def _record(**cve: Any) -> dict[str, Any]:
    base = {"cve": "CVE-1", "affected": {"last": "26.05"}, "fixed": "26.06"}
    return {
        "checked_on": "2026-12-07",
        "bulletins": [
            {
                "id": "1",
                "date": "2026-08-18",
                "title": "t",
                "url": "u",
                "cves": [{**base, **cve}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_record(fixed="26.05"), "contradict each other"),
        (_record(affected={"first": "26.05", "last": "26.01"}), "contradict each other"),
        (_record(fixed="26.13"), "is not an NGC release"),
        (_record(affected={}), "needs cve, affected.last and fixed"),
        ({**_record(), "checked_on": "yesterday"}, "is not a date"),
        ({"bulletins": "none"}, "expected a mapping"),
        ({"checked_on": "2026-12-07", "bulletins": [{"id": "1"}]}, "needs id, date"),
        (
            {"checked_on": "2026-12-07", "bulletins": _record()["bulletins"] * 2},
            "listed twice",
        ),
    ],
)
def test_a_malformed_record_is_refused(raw: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        bulletins.parse_record(raw)


def test_an_old_record_is_refused_at_release() -> None:
    checked = RECORD.checked_on
    assert bulletins.staleness(RECORD, checked + datetime.timedelta(days=31)) is None
    stale = bulletins.staleness(RECORD, checked + datetime.timedelta(days=32))
    assert stale is not None
    assert "32 days ago" in stale and "checked_on" in stale


def test_the_safe_release_skips_a_fixed_release_another_bulletin_affects() -> None:
    raw = _record()
    raw["bulletins"].append(
        {
            "id": "2",
            "date": "2026-09-08",
            "title": "t",
            "url": "u",
            "cves": [{"cve": "CVE-2", "affected": {"last": "26.06"}, "fixed": "26.07"}],
        }
    )
    record = bulletins.parse_record(raw)
    assert bulletins.first_unaffected(record, Release.parse("26.05")) == Release.parse("26.07")


@pytest.mark.parametrize(
    ("spelled", "expected"),
    [
        ("0.0-26.05", {"last": "26.05"}),
        ("0.0 - 26.03", {"last": "26.03"}),
        ("All versions prior to r26.03", {"last": "26.02"}),
        ("All versions prior to 26.01", {"last": "25.12"}),
        ("22.09 to 24.03", {"first": "22.09", "last": "24.03"}),
        ("v19.11 through v24.08", {"first": "19.11", "last": "24.08"}),
        ("24.11", {"first": "24.11", "last": "24.11"}),
    ],
)
def test_csaf_range_spellings(spelled: str, expected: dict[str, str]) -> None:
    assert csaf.affected_range(spelled) == expected


def test_a_csaf_range_in_triton_versions_is_refused() -> None:
    with pytest.raises(RecordError, match="write the entry by hand"):
        csaf.affected_range("All versions prior to 2.40")
    with pytest.raises(RecordError, match="write the entry by hand"):
        csaf.fixed_release("2.40")


def test_a_csaf_document_becomes_a_record_entry() -> None:
    document = {
        "document": {
            "title": "Security Bulletin - Triton Inference Server - August 2026",
            "aggregate_severity": {"text": "HIGH"},
            "tracking": {
                "id": "5875",
                "initial_release_date": "2026-09-08T00:00:00Z",
                "current_release_date": "2026-09-08T00:00:00Z",
            },
        },
        "product_tree": {
            "branches": [
                {"product": {"product_id": "a", "name": "0.0-26.06"}},
                {"product": {"product_id": "f", "name": "26.07"}},
            ]
        },
        "vulnerabilities": [
            {
                "cve": "CVE-2026-16497",
                "cwe": {"id": "CWE-834", "name": "Excessive Iteration"},
                "product_status": {"known_affected": ["a"], "fixed": ["f"]},
                "scores": [
                    {
                        "cvss_v3": {
                            "baseScore": 7.5,
                            "baseSeverity": "HIGH",
                            "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
                        }
                    }
                ],
            }
        ],
    }
    text = csaf.render(csaf.entry(document), transcribed_from="CSAF, test")
    record = bulletins.parse_record({"checked_on": "2026-12-07", "bulletins": yaml.safe_load(text)})
    (bulletin,) = record.bulletins
    assert (bulletin.id, bulletin.date, bulletin.severity) == (
        "5875",
        datetime.date(2026, 9, 8),
        "HIGH",
    )
    (cve,) = bulletin.cves
    assert (cve.id, cve.cvss, cve.first, cve.last, cve.fixed) == (
        "CVE-2026-16497",
        7.5,
        None,
        Release.parse("26.06"),
        Release.parse("26.07"),
    )
