"""The pieces every email shares: the site's name and address, and one way to build a message.

allauth's mails (accounts.adapters) and the app's notifications both render through here, so
every email carries the same layout (``templates/email/base.html`` and ``base.txt``) and names
the site from settings, never from the host a request happened to arrive on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def site_context() -> dict[str, str]:
    """Return the site's name, public URL and domain for email templates."""
    return {
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "site_domain": urlsplit(settings.SITE_URL).netloc,
    }


def absolute_url(path: str) -> str:
    """Return ``path`` (from ``reverse``) on the public site URL."""
    return f"{settings.SITE_URL}{path}"


def subject_line(subject: str) -> str:
    """Return the subject on one line with the configured prefix."""
    return f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{' '.join(subject.split())}"


def build_message(template: str, context: dict, to: list[str]) -> EmailMultiAlternatives:
    """Render ``<template>_subject.txt``, ``.txt`` and ``.html`` into one message."""
    context = {**site_context(), **context}
    subject = render_to_string(f"{template}_subject.txt", context)
    message = EmailMultiAlternatives(
        subject_line(subject),
        render_to_string(f"{template}.txt", context).strip() + "\n",
        settings.DEFAULT_FROM_EMAIL,
        to,
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message
