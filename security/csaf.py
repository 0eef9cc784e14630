"""An entry of the bulletin record from NVIDIA's CSAF file of a bulletin (``python -m security
csaf-entry FILE``), so that adding a bulletin at release time is a transcription, not a
retelling.

NVIDIA publishes each bulletin as CSAF 2.0 JSON in the GitHub repository NVIDIA/product-security
(``YEAR/ID/ID.json``). Its products name the affected and fixed releases in a few free-form
spellings, all seen in Triton's bulletins since 2023: ``0.0-26.05`` and ``0.0 - 26.03`` (every
release up to 26.05), ``All versions prior to r26.03``, ``22.09 to 24.03``,
``v19.11 through v24.08``, a single ``24.11``, and fixed releases as ``26.06`` or ``r26.02``.
A spelling outside these (such as a Triton version, ``2.40``) is refused: the entry then has to
be written by hand, with the NGC release it means.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from security.errors import RecordError
from security.releases import Release

_ONE = r"v?r?\d{2}\.\d{2}"
_UP_TO = re.compile(rf"0\.0\s*-\s*({_ONE})")
_PRIOR_TO = re.compile(rf"all versions prior to ({_ONE})", re.IGNORECASE)
_BETWEEN = re.compile(rf"({_ONE})\s+(?:to|through)\s+({_ONE})", re.IGNORECASE)
_SINGLE = re.compile(_ONE)


def _release(text: str) -> Release:
    return Release.parse(text.lstrip("v"))


def affected_range(product: str) -> dict[str, str]:
    """The affected releases one CSAF product names, as ``{first?, last}`` (inclusive; no
    ``first`` is every earlier release)."""
    text = product.strip()
    if matched := _UP_TO.fullmatch(text):
        return {"last": str(_release(matched.group(1)))}
    if matched := _PRIOR_TO.fullmatch(text):
        return {"last": str(_release(matched.group(1)).previous())}
    if matched := _BETWEEN.fullmatch(text):
        return {"first": str(_release(matched.group(1))), "last": str(_release(matched.group(2)))}
    if _SINGLE.fullmatch(text):
        return {"first": str(_release(text)), "last": str(_release(text))}
    raise RecordError(
        f"CSAF product {product!r} names no NGC release range this tool knows; write the "
        "entry by hand with the NGC releases it means"
    )


def fixed_release(product: str) -> str:
    """The release a CSAF ``fixed`` product names."""
    if not _SINGLE.fullmatch(product.strip()):
        raise RecordError(
            f"CSAF fixed product {product!r} is no NGC release; write the entry by hand"
        )
    return str(_release(product.strip()))


def _product_names(tree: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for branch in tree.get("branches", []):
        if "product" in branch:
            names[branch["product"]["product_id"]] = branch["product"]["name"]
        names.update(_product_names(branch))
    return names


def _one(values: set[str], what: str, cve: str) -> str:
    if len(values) != 1:
        raise RecordError(f"{cve}: the CSAF file names {len(values)} different {what}: {values}")
    return values.pop()


def entry(document: Mapping[str, Any]) -> dict[str, Any]:
    """The record entry of one bulletin's CSAF document (a plain dict, in the record's order)."""
    meta = document["document"]
    tracking = meta["tracking"]
    bulletin_id = str(tracking["id"])
    year = tracking["initial_release_date"][:4]
    names = _product_names(document["product_tree"])
    cves = []
    for vulnerability in document["vulnerabilities"]:
        cve = vulnerability["cve"]
        status = vulnerability["product_status"]
        affected = _one({names[p] for p in status["known_affected"]}, "affected ranges", cve)
        fixed = _one({names[p] for p in status["fixed"]}, "fixed releases", cve)
        scores = [s["cvss_v3"] for s in vulnerability.get("scores", []) if "cvss_v3" in s]
        score = scores[0] if scores else None
        cves.append(
            {
                "cve": cve,
                "cvss": score["baseScore"] if score else None,
                "severity": score["baseSeverity"] if score else None,
                "vector": score["vectorString"] if score else None,
                "cwe": f"{vulnerability['cwe']['id']} {vulnerability['cwe']['name']}",
                "affected": affected_range(affected),
                "fixed": fixed_release(fixed),
                "csaf": {"affected": affected, "fixed": fixed},
            }
        )
    cves.sort(key=lambda c: (-(c["cvss"] or 0.0), c["cve"]))
    return {
        "id": bulletin_id,
        "date": tracking["initial_release_date"][:10],
        "updated": tracking["current_release_date"][:10],
        "title": meta["title"],
        "severity": meta.get("aggregate_severity", {}).get("text"),
        "url": f"https://nvidia.custhelp.com/app/answers/detail/a_id/{bulletin_id}",
        "csaf": f"https://github.com/NVIDIA/product-security/blob/main/{year}/{bulletin_id}/"
        f"{bulletin_id}.json",
        "cves": cves,
    }


def _quoted(value: str) -> str:
    return json.dumps(value)


def render(entry: Mapping[str, Any], *, transcribed_from: str) -> str:
    """``entry`` as a YAML list item of the record's ``bulletins`` (the record's own layout:
    one line per field, ranges in flow style)."""
    lines = [
        f"  - id: {_quoted(entry['id'])}",
        f"    date: {entry['date']}",
        *([f"    updated: {entry['updated']}"] if entry["updated"] != entry["date"] else []),
        f"    title: {_quoted(entry['title'])}",
        f"    severity: {entry['severity']}",
        f"    url: {entry['url']}",
        f"    csaf: {entry['csaf']}",
        f"    transcribed_from: {transcribed_from}",
        "    cves:",
    ]
    for cve in entry["cves"]:
        affected = ", ".join(f"{k}: {_quoted(v)}" for k, v in cve["affected"].items())
        cvss = "null" if cve["cvss"] is None else f"{float(cve['cvss']):.1f}"
        lines += [
            f"      - cve: {cve['cve']}",
            f"        cvss: {cvss}",
            f"        severity: {cve['severity'] or 'null'}",
            f"        vector: {cve['vector'] or 'null'}",
            f"        cwe: {_quoted(cve['cwe'])}",
            f"        affected: {{{affected}}}",
            f"        fixed: {_quoted(cve['fixed'])}",
            f"        csaf: {{affected: {_quoted(cve['csaf']['affected'])}, "
            f"fixed: {_quoted(cve['csaf']['fixed'])}}}",
        ]
    return "\n".join(lines)
