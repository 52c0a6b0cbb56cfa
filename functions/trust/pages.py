"""The public trust documents as HTML pages for browsers (`/security`, `/subprocessors`).

Rendered by Jinja2 with autoescape on for every template, from the same constants as the JSON
documents (shared.policy): the page a person reads and the document a tool reads cannot
disagree. The templates (functions/trust/templates/) hold no script and no inline style: the
pages run under `default-src 'self'` and take their look from /assets/console.css (public/).
The site's layout (base.html) is also the one the static pages in public/ are generated with
(devstack/console_pages.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from shared import policy

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, **context: Any) -> str:
    """One template of the site, escaped; `p` is shared.policy."""
    return _env.get_template(template).render(p=policy, **context)


def _around(text: str, marker: str) -> tuple[str, str]:
    """`text` split around the first `marker` (so the marker can be rendered as a link)."""
    before, found, after = text.partition(marker)
    if not found:
        raise ValueError(f"{marker!r} is not in the text")
    return before, after


def _subprocessor_context() -> dict[str, str]:
    before, after = _around(policy.SUBPROCESSORS_NOTE, "/subprocessors")
    return {"subprocessors_note_before": before, "subprocessors_note_after": after}


def security_page() -> str:
    before, after = _around(policy.VULNERABILITY_REPORTING, policy.SECURITY_CONTACT)
    return render(
        "security.html",
        title=policy.PAGE_TITLE,
        current="/security",
        h="h3",
        role_policy=policy.policy_json(policy.ROLE_POLICY),
        trust_policy=policy.policy_json(policy.TRUST_POLICY_TEMPLATE),
        vulnerability_before=before,
        vulnerability_after=after,
        **_subprocessor_context(),
    )


def subprocessors_page(canonical_url: str) -> str:
    return render(
        "subprocessors.html",
        title=policy.SUBPROCESSORS_TITLE,
        current="/subprocessors",
        h="h2",
        canonical_url=canonical_url,
        **_subprocessor_context(),
    )


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def wants_html(accept: str | None) -> bool:
    """True when the Accept header prefers text/html to application/json (a browser's
    navigation); `*/*`, no header, or a tie answers JSON, as these URLs always did. The most
    specific media range decides each type's quality (RFC 9110, 12.5.1)."""
    if not accept:
        return False
    ranges: dict[str, float] = {}
    for item in accept.split(",")[:50]:
        media, *params = item.strip().split(";")
        media = media.strip().lower()
        ranges[media] = max(ranges.get(media, 0.0), _quality(params))

    def quality(*candidates: str) -> float:
        return next((ranges[c] for c in candidates if c in ranges), 0.0)

    html = max(quality("text/html", "text/*", "*/*"), quality("application/xhtml+xml", "*/*"))
    json = quality("application/json", "application/*", "*/*")
    return html > json
