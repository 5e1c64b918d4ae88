"""The console email backend of the embedded run (no EMAIL_HOST): mail a person can read.

Django's own console backend prints the whole MIME message, so a receipt is a page of text
followed by pages of base64 (its PDF), and the access link is hard to find. This one prints
the headers, the plain-text body decoded, and one line per attachment with its name, type and
size. The HTML alternative is named, not printed, when a plain-text body is there to read.
"""

from __future__ import annotations

from email.message import Message

from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend

RULE = "-" * 79


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} bytes"
    return f"{num_bytes / 1024:.1f} KiB ({num_bytes:,} bytes)"


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    return payload.decode(part.get_content_charset() or "utf-8", errors="replace")


def describe(msg: Message) -> str:
    """The message as the console shows it: headers, readable text, attachments as one line each."""
    lines = [f"{name}: {value}" for name, value in msg.items()
             if name.lower() not in {"content-type", "content-transfer-encoding", "mime-version"}]
    lines.append("")
    leaves = [part for part in msg.walk() if not part.is_multipart()]
    has_plain_body = any(p.get_content_type() == "text/plain" and not p.get_filename() for p in leaves)
    attachments = []
    for part in leaves:
        filename = part.get_filename()
        content_type = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment":
            size = len(part.get_payload(decode=True) or b"")
            attachments.append(f"[attachment] {filename or '(no name)'} ({content_type}, {_size(size)})")
        elif content_type == "text/plain" or (part.get_content_maintype() == "text" and not has_plain_body):
            lines.append(_decoded_text(part).rstrip("\n"))
            lines.append("")
        else:
            size = len(part.get_payload(decode=True) or b"")
            attachments.append(f"[alternative] {content_type}, {_size(size)} (not shown)")
    lines.extend(attachments)
    return "\n".join(lines).rstrip("\n") + "\n"


class ConsoleEmailBackend(DjangoConsoleBackend):
    """Selected by EMAIL_BACKEND when EMAIL_HOST is empty (settings)."""

    def write_message(self, message) -> None:
        self.stream.write(describe(message.message()))
        self.stream.write(RULE + "\n")
