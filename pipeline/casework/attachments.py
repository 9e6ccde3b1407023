"""Evidence on a case: field-check photos, a Z-report, a letter.

This module is the one writer of ``case_attachments`` and of the files under
``$EINCOME_HOME/attachments``. A file is accepted only when its own first bytes say it is one of
``KINDS`` (a JPEG or PNG picture, a PDF) and its name's extension agrees, so nothing that a
browser or a desktop would run or render as a page gets in; it is stored under its sha256, never
under the name it came with. Each upload is a row in the case's trail (``casework.audit``), and
the review app serves a file only as a download to those who may see the case.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from pipeline.casework import audit
from pipeline.casework.users import User
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.store.schema import MAX_ROW_ID, case_attachments

FOLDER = "attachments"
MAX_NOTE = 500


@dataclass(frozen=True)
class Kind:
    media_type: str
    magic: bytes
    extensions: tuple[str, ...]


KINDS = (
    Kind("image/jpeg", b"\xff\xd8\xff", ("jpg", "jpeg")),
    Kind("image/png", b"\x89PNG\r\n\x1a\n", ("png",)),
    Kind("application/pdf", b"%PDF-", ("pdf",)),
)
EXTENSIONS = tuple(e for k in KINDS for e in k.extensions)


def kind_of(data: bytes, filename: str) -> Kind | None:
    """The kind ``data`` is by its first bytes, if its name's extension says the same."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    for kind in KINDS:
        if data.startswith(kind.magic):
            return kind if extension in kind.extensions else None
    return None


def safe_filename(filename: str) -> str:
    """The uploader's file name without folders or characters a header or a shell would read."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")
    return cleaned[-120:] or "file"


def add_attachment(
    engine: Engine,
    home: Path,
    case_id: int,
    actor: User,
    filename: str,
    data: bytes,
    note: str = "",
    *,
    max_bytes: int,
    now: datetime | None = None,
) -> int:
    """Keep ``data`` as evidence on case ``case_id``; returns the attachment's id."""
    actor.require("cases.decide")
    name = safe_filename(filename)
    kind = kind_of(data, name)
    if kind is None:
        raise UnusableInputError.said(
            "file %(name)r is not a JPEG, PNG or PDF (by its content and its name)", name=name
        )
    if not data or len(data) > max_bytes:
        raise UnusableInputError.said(
            "file %(name)r is %(size_n)s bytes; at most %(most_n)s",
            name=name,
            size_n=len(data),
            most_n=max_bytes,
        )
    text = (note or "").strip()[:MAX_NOTE]
    digest = hashlib.sha256(data).hexdigest()
    stored_as = f"{case_id}/{digest}.{kind.extensions[0]}"
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        row = audit.load_case(connection, case_id)  # NotFound before any file is written
        target = home / FOLDER / stored_as
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():  # the same bytes twice are one file
            partial = target.with_suffix(".part")
            partial.write_bytes(data)
            os.replace(partial, target)
        attachment_id = connection.execute(
            case_attachments.insert().values(
                case_id=case_id,
                filename=name,
                media_type=kind.media_type,
                size_bytes=len(data),
                sha256=digest,
                stored_as=stored_as,
                uploaded_by=actor.username,
                uploaded_at=now,
                note=text or None,
            )
        ).inserted_primary_key[0]
        audit.append_event(
            connection,
            row,
            actor.username,
            "attach",
            {"attachment_id": attachment_id, "filename": name},
            text or name,
            now,
        )
    return attachment_id


def attachments_of(engine: Engine, case_id: int) -> list:
    """The case's attachments, oldest first."""
    with engine.connect() as connection:
        return connection.execute(
            select(case_attachments)
            .where(case_attachments.c.case_id == case_id)
            .order_by(case_attachments.c.attachment_id)
        ).all()


def open_attachment(engine: Engine, home: Path, case_id: int, attachment_id: int):
    """(row, bytes) of one attachment of ``case_id`` (NotFound for another case's)."""
    row = None
    if 0 < attachment_id <= MAX_ROW_ID and 0 < case_id <= MAX_ROW_ID:
        with engine.connect() as connection:
            row = connection.execute(
                select(case_attachments).where(
                    case_attachments.c.attachment_id == attachment_id,
                    case_attachments.c.case_id == case_id,
                )
            ).first()
    if row is None:
        raise NotFoundError.said(
            "case %(case)s has no attachment %(attachment)s",
            case=case_id,
            attachment=attachment_id,
        )
    path = home / FOLDER / row.stored_as
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError.said(
            "the file of attachment %(attachment)s is missing", attachment=attachment_id
        ) from None
    if hashlib.sha256(data).hexdigest() != row.sha256:  # changed on disk: refuse, do not serve
        raise UnusableInputError.said(
            "the file of attachment %(attachment)s has been altered", attachment=attachment_id
        )
    return row, data
