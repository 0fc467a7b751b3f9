"""The built-in e-mail sender: ``crmkit_send_email`` over SMTP (stdlib :mod:`smtplib`).

Configure it with :class:`SmtpSettings` and register it, usually through
``crmkit.open(..., smtp=SmtpSettings(...))`` or
``crmkit.open(..., smtp=SmtpSettings.from_env())``::

    CRMKIT_SMTP_HOST      the server (required)
    CRMKIT_SMTP_PORT      default 587 (starttls), 465 (ssl) or 25 (none)
    CRMKIT_SMTP_SECURITY  starttls (default), ssl or none
    CRMKIT_SMTP_USERNAME  log in with these when set
    CRMKIT_SMTP_PASSWORD
    CRMKIT_SMTP_TIMEOUT   seconds, default 30

Each batch uses one connection.  No :mod:`smtplib` or socket error escapes:
each message gets a :class:`~crmkit.SendOutcome`, refused ones with the
server's answer.

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Final, Literal

import attrs

from crmkit.core.errors import ValidationError
from crmkit.core.mail import OutgoingEmail, SendOutcome
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["SmtpSender", "SmtpSettings", "build_message"]

Security = Literal["starttls", "ssl", "none"]
_PORTS: Final = {"starttls": 587, "ssl": 465, "none": 25}


def _security(value: object) -> Security:
    if value in _PORTS:
        return value  # type: ignore[return-value]
    raise ValidationError("security", "must be starttls, ssl or none", code="choice", value=value)


def _host(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValidationError("host", "is required", code="required", value=value)


@attrs.frozen(kw_only=True)
class SmtpSettings:
    """Where and how the built-in sender connects.

    Attributes:
        host: the SMTP server.
        port: its port (default 587 for ``starttls``, 465 for ``ssl``, 25 for ``none``).
        security: ``"starttls"`` (upgrade the connection, the default),
            ``"ssl"`` (TLS from the start) or ``"none"`` (plain; loopback and tests).
        username: log in with ``username`` and ``password`` when given.
        password: never shown in ``repr``.
        timeout: seconds to wait for the server.
        ssl_context: the TLS context (default: :func:`ssl.create_default_context`,
            which checks the server's certificate).

    .. versionadded:: 0.1
    """

    host: str = attrs.field(converter=_host)
    port: int | None = None
    security: Security = attrs.field(default="starttls", converter=_security)
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def effective_port(self) -> int:
        """The port connected to."""
        return self.port if self.port is not None else _PORTS[self.security]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings:
        """Settings from ``CRMKIT_SMTP_*`` variables (see the module docstring).

        Raises:
            ValidationError: ``CRMKIT_SMTP_HOST`` is missing, or a value is invalid.
        """
        env = os.environ if environ is None else environ
        host = env.get("CRMKIT_SMTP_HOST", "")
        if not host.strip():
            raise ValidationError("CRMKIT_SMTP_HOST", "is not set", code="required")
        port = env.get("CRMKIT_SMTP_PORT")
        timeout = env.get("CRMKIT_SMTP_TIMEOUT")
        try:
            return cls(
                host=host,
                port=int(port) if port else None,
                security=env.get("CRMKIT_SMTP_SECURITY", "starttls").strip().lower(),
                username=env.get("CRMKIT_SMTP_USERNAME") or None,
                password=env.get("CRMKIT_SMTP_PASSWORD") or None,
                timeout=float(timeout) if timeout else 30.0,
            )
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                "CRMKIT_SMTP_PORT", "port and timeout must be numbers", code="type"
            ) from None


def build_message(message: OutgoingEmail, *, date: str | None = None) -> Message:
    """The MIME message of ``message``: text, plus an HTML alternative when it has one.

    Built with the standard library's ``email.mime`` classes (UTF-8 bodies,
    RFC 2047 headers), which are several times faster than
    :class:`email.message.EmailMessage` for a batch of thousands.
    """
    text = MIMEText(message.text, "plain", "utf-8")
    mime: Message
    if message.html is None:
        mime = text
    else:
        mime = MIMEMultipart("alternative")
        mime.attach(text)
        mime.attach(MIMEText(message.html, "html", "utf-8"))
    mime["From"] = formataddr((message.sender_name or "", message.sender.value), "utf-8")
    mime["To"] = formataddr((message.to_name or "", message.to.value), "utf-8")
    mime["Subject"] = _header_value(message.subject)
    mime["Message-ID"] = message.message_id
    if date is not None:
        mime["Date"] = date
    if message.reply_to is not None:
        mime["Reply-To"] = message.reply_to.value
    for name, value in message.headers:
        mime[name] = _header_value(value)
    return mime


def _header_value(value: str) -> str:
    """``value`` as a header: ASCII as it is, anything else RFC 2047-encoded."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


class SmtpSender:
    """A plugin that sends ``crmkit_send_email`` batches through one SMTP server.

    Example::

        crm = crmkit.open("crm.db", smtp=SmtpSettings(host="smtp.example.com",
                                                       username="crm", password="..."))

    .. versionadded:: 0.1
    """

    def __init__(self, settings: SmtpSettings):
        if not isinstance(settings, SmtpSettings):
            raise ValidationError("smtp", "must be SmtpSettings", code="type", value=settings)
        self.settings = settings

    def __repr__(self) -> str:
        return f"SmtpSender({self.settings!r})"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = s.ssl_context or ssl.create_default_context()
        client: smtplib.SMTP
        if s.security == "ssl":
            client = smtplib.SMTP_SSL(s.host, s.effective_port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                client.starttls(context=context)
            if s.username is not None:
                client.login(s.username, s.password or "")
        except BaseException:
            client.close()
            raise
        return client

    @hookimpl
    def crmkit_send_email(self, crm: CRM, messages: list[OutgoingEmail]) -> list[SendOutcome]:
        """Send the batch over one connection; one outcome per message."""
        outcomes: list[SendOutcome] = []
        try:
            client = self._connect()
        except Exception as exc:
            code, reason, permanent = _classify(exc)
            return [
                SendOutcome(
                    message_id=m.message_id, ok=False, code=code, reason=reason, permanent=permanent
                )
                for m in messages
            ]
        date = format_datetime(crm.now())
        try:
            for i, message in enumerate(messages):
                try:
                    mime = build_message(message, date=date)
                except (ValueError, TypeError) as exc:
                    outcomes.append(_failed(message, "message", f"cannot build it: {exc}", True))
                    continue
                try:
                    client.sendmail(message.sender.value, [message.to.value], mime.as_bytes())
                except (
                    smtplib.SMTPRecipientsRefused,
                    smtplib.SMTPSenderRefused,
                    smtplib.SMTPDataError,
                    smtplib.SMTPNotSupportedError,
                ) as exc:
                    code, reason, permanent = _classify(exc)
                    outcomes.append(_failed(message, code, reason, permanent))
                    _reset(client)
                except Exception as exc:  # the connection is gone: the rest fail alike
                    code, reason, permanent = _classify(exc)
                    outcomes.extend(_failed(m, code, reason, permanent) for m in messages[i:])
                    return outcomes
                else:
                    outcomes.append(SendOutcome(message_id=message.message_id, ok=True))
        finally:
            try:
                client.quit()
            except Exception:  # already closed: nothing to tidy
                client.close()
        return outcomes


def _failed(message: OutgoingEmail, code: str, reason: str, permanent: bool) -> SendOutcome:
    return SendOutcome(
        message_id=message.message_id, ok=False, code=code, reason=reason, permanent=permanent
    )


def _reset(client: smtplib.SMTP) -> None:
    try:
        client.rset()
    except Exception:  # the next send reports a broken connection
        return


def _answer(code: object, text: object) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {body}".strip()


def _classify(exc: BaseException) -> tuple[str, str, bool]:
    """``(code, reason, permanent)`` of an SMTP, TLS or socket error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = list(exc.recipients.values())
        code, text = answers[0] if answers else (0, b"refused")
        return "refused", _answer(code, text), 500 <= int(code) < 600
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "auth", _answer(exc.smtp_code, exc.smtp_error), True
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return "refused", _answer(exc.smtp_code, exc.smtp_error), 500 <= exc.smtp_code < 600
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return "sender", str(exc), True
    if isinstance(exc, ssl.SSLError):
        return "tls", f"{type(exc).__name__}: {exc}", False
    if isinstance(exc, smtplib.SMTPResponseException):
        return "refused", _answer(exc.smtp_code, exc.smtp_error), 500 <= exc.smtp_code < 600
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return "connection", f"{type(exc).__name__}: {exc}", False
    return "sender", f"{type(exc).__name__}: {exc}", False
