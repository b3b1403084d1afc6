"""`browserSettings.enablePdfViewer`: PDFs are downloaded unless a session turns the viewer on.

Headless (`--headless=new`) Chromium 156 opens a PDF in its built-in viewer (an out-of-process frame of
the PDF extension). The hosted service's spec offers `enablePdfViewer: true` as the way to view PDFs in
the browser, so it downloads them by default, and so does this server, applied per session after the
browser is taken (pooled browsers stay warm): the browser agent pauses document responses (`Fetch`,
response stage) and marks a PDF one `Content-Disposition: attachment`, which Chromium downloads instead
of viewing; the download lands in the session's downloads (`GET /v1/sessions/{id}/downloads`) like any
other. Playwright's `page.goto` of a PDF then raises "Download is starting" (net::ERR_ABORTED), as in
any browser without a PDF viewer. PDFs in frames and `<embed>` are downloaded too.

The one other switch Chromium has is a profile preference (`plugins.always_open_pdf_externally`), read
at launch: it would make the choice a launch-time setting, and a session asking for the other value
would always launch cold. The page can still tell the viewer is there (`navigator.pdfViewerEnabled` is
true either way).
"""

from __future__ import annotations

from typing import Any

from browserfleet.browsers.agent import AttachedTarget
from browserfleet.browsers.interception import Paused, Verdict

PDF_TYPES = ("application/pdf", "application/x-pdf")


def as_attachment(paused: Paused) -> Verdict | None:
    """The response of a PDF document, continued as a download; None for anything else."""
    content_type = (paused.header("Content-Type", response=True) or "").split(";")[0].strip().lower()
    if content_type not in PDF_TYPES:
        return None
    status = paused.params.get("responseStatusCode")
    if not isinstance(status, int) or not 200 <= status < 300:
        return None
    headers = [
        entry
        for entry in paused.params.get("responseHeaders") or ()
        if str(entry.get("name", "")).lower() != "content-disposition"
    ]
    disposition = paused.header("Content-Disposition", response=True) or ""
    # Keep a filename the server gave (`inline; filename="a.pdf"` → `attachment; filename="a.pdf"`).
    _kind, sep, rest = disposition.partition(";")
    value = f"attachment{sep}{rest}" if sep else "attachment"
    headers.append({"name": "Content-Disposition", "value": value})
    return Verdict("Fetch.continueResponse", {"responseCode": status, "responseHeaders": headers})


class PdfDownloads:
    """The `Interceptor` that turns PDF documents into downloads (sessions without the viewer)."""

    async def prepare(self) -> None:
        pass

    def patterns(self, target: AttachedTarget) -> list[dict[str, Any]]:
        if target.type not in ("page", "iframe"):
            return []
        return [{"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"}]

    def decide(self, paused: Paused) -> Verdict | None:
        if not paused.at_response or paused.resource_type != "Document":
            return None
        return as_attachment(paused)
