"""The pages for leaving and taking your data, and the email pages, at 375 and 1280 px."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import DataExport, User
from generation.models import Generation, Status
from generation.services.submission import submit_generation
from ledger import api as ledger
from tests.e2e.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_export_delete_a_generation_and_leave(app, browser, user_factory):
    """Preferences, export (built by the worker), delete a generation, delete the account."""
    page = browser.page
    user = user_factory()
    ledger.grant(user.pk, 60, key=f"browser:{uuid.uuid4()}", source="test")
    generation = submit_generation(
        user, model_key="flux-schnell", prompt="a lighthouse in fog", params={}
    )
    wait_until(
        lambda: Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED,
        timeout=45,
        what="the generation to succeed",
    )
    browser.login_as(user)

    browser.go("/account/emails/")
    browser.shot("account-emails")
    page.get_by_label("Low balance").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your email preferences are saved.").wait_for()

    browser.go("/account/data/")
    browser.shot("account-data")
    page.get_by_role("button", name="Prepare my export").click()
    page.get_by_text("Your export is being prepared").wait_for()
    wait_until(
        lambda: DataExport.objects.filter(user=user, status="ready").exists(),
        timeout=45,
        what="the worker to build the export",
    )
    browser.go("/account/data/")
    assert page.get_by_role("link", name="Download").is_visible()
    browser.shot("account-data-ready")

    browser.go(f"/generations/{generation.pk}/")
    page.get_by_role("button", name="Delete generation").wait_for()
    browser.shot("generation-detail-delete")
    page.get_by_role("button", name="Delete generation").click()
    page.wait_for_url("**/generations/")
    page.get_by_text("Deleted. Its outputs and prompt are gone.").wait_for()
    browser.shot("generation-deleted", desktop=False)

    browser.go("/account/delete/")
    browser.shot("account-delete")
    page.get_by_label("Your password").fill("not my password")
    page.get_by_label("I understand").check()
    browser.watch.allow_once(r"status of 400")
    page.get_by_role("button", name="Delete my account").click()
    page.get_by_text("That password is not right.").wait_for()
    browser.shot("account-delete-error", desktop=False)
    page.get_by_label("Your password").fill(f"pw-{user.email}")
    page.get_by_label("I understand").check()
    page.get_by_role("button", name="Delete my account").click()
    page.get_by_text("Your account is deleted.").wait_for()
    browser.shot("account-deleted", desktop=False)
    assert User.objects.get(pk=user.pk).deleted_at is not None


def test_resend_verification_from_the_check_your_email_page(app, browser, user_factory):
    """An unconfirmed user asks for the link again from the page sign-up left them on."""
    from django.core import mail

    page = browser.page
    user = user_factory(verified=False)
    mail.outbox.clear()
    browser.go("/accounts/confirm-email/")
    browser.shot("verification-sent-resend")
    page.get_by_label("Your email address").fill(user.email)
    page.get_by_role("button", name="Send the link again").click()
    page.get_by_text("a new link is on its way").wait_for()
    wait_until(
        lambda: any(user.email in m.to for m in mail.outbox),
        timeout=10,
        what="a new confirmation email",
    )
