"""Reads a multipart/form-data body back into fields and files, to assert on the request a client really sent."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP


def parse(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if filename is None:
            fields[name] = payload.decode()
        else:
            files[name] = (filename, payload, part.get_content_type())
    return fields, files
