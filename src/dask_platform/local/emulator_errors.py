"""AWS's error answers as the emulator's gate gives them, per protocol of the request: S3's
REST-XML, the query protocol (STS, IAM), EC2's, JSON and REST-JSON.

ref: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
ref: https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html
"""

from __future__ import annotations

import json
import secrets
from typing import Any

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
S3_EXPIRED_MESSAGE = "The provided token has expired."
EXPIRED_MESSAGE = "The security token included in the request is expired"

Response = tuple[int, str, bytes] | tuple[int, str, bytes, list[tuple[str, str]]]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sts_error(code: str, message: str, status: int = 403) -> tuple[int, str, bytes]:
    body = (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{_xml_escape(message)}</Message></Error>"
        f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>"
    )
    return status, "text/xml", body.encode()


def s3_access_denied(message: str) -> tuple[int, str, bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
        f"<Message>{_xml_escape(message)}</Message>"
        f"<RequestId>{secrets.token_hex(8)}</RequestId></Error>"
    )
    return 403, "application/xml", body.encode()


def request_protocol(service: str, environ: dict[str, Any], form: dict[str, str]) -> str:
    """The AWS protocol of a signed request, from the request itself (what its client used):
    ``rest-xml`` (S3), ``json``, ``query``, ``ec2`` or ``rest-json``.

    ref: https://smithy.io/2.0/aws/protocols/index.html
    """
    if service == "s3":
        return "rest-xml"
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("HTTP_X_AMZ_TARGET") or content_type.startswith("application/x-amz-json"):
        return "json"
    if "Action" in form:
        return "ec2" if service == "ec2" else "query"
    return "rest-json"


def expired_token_error(protocol: str, session_token: str) -> Response:
    """AWS's answer to a request signed with expired session credentials, per protocol.

    ref: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
    ref: https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html
    ref: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
    """
    request_id = secrets.token_hex(8)
    if protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
            f"<Message>{S3_EXPIRED_MESSAGE}</Message>"
            f"<Token-0>{_xml_escape(session_token)}</Token-0>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        )
        return 400, "application/xml", body.encode()
    if protocol == "json":
        document = {"__type": "ExpiredTokenException", "message": EXPIRED_MESSAGE}
        return 400, "application/x-amz-json-1.1", json.dumps(document).encode()
    if protocol == "ec2":
        body = (
            "<Response><Errors><Error><Code>RequestExpired</Code>"
            f"<Message>{EXPIRED_MESSAGE}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return 400, "text/xml", body.encode()
    if protocol == "rest-json":
        document = {"message": EXPIRED_MESSAGE}
        headers = [("x-amzn-ErrorType", "ExpiredTokenException")]
        return 403, "application/json", json.dumps(document).encode(), headers
    return sts_error("ExpiredToken", EXPIRED_MESSAGE)
