"""Generation pages: thin views over services and selectors."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config import ratelimit, submission
from generation import catalogue, owner, selectors
from generation.exceptions import GenerationError
from generation.models import Generation, Status
from generation.services.cancellation import cancel_generation
from generation.services.submission import offered_models, provider_status, submit_generation
from ledger import api as ledger
from media_store import api as media


def _available(request: HttpRequest) -> int:
    return ledger.request_balance(request).available


def _fitting(spec, data) -> dict:
    """Keep the options that fit this model: after a model change the old ones may not."""
    return {p.name: data.get(p.name) for p in spec.parameters if data.get(p.name) in p.choices}


def _estimate(request: HttpRequest, model_key: str, data) -> dict:
    """Return the live estimate: price, the user's balance and why submitting is disabled."""
    try:
        spec = catalogue.get_model(model_key)
        params = catalogue.clean_parameters(spec, _fitting(spec, data))
        cost = catalogue.price(spec.key, params)
    except GenerationError as error:
        return {"cost": None, "error": str(error), "disabled_reason": str(error)}
    available = _available(request)
    reason = ""
    if not provider_status(spec.key)[0]:
        reason = f"{spec.name} is not available here. Choose another model."
    elif available is not None and available < cost:
        reason = f"This costs {cost} credits and you have {available}. Buy credits to continue."
    return {
        "spec": spec,
        "params": params,
        "cost": cost,
        "available": available,
        "disabled_reason": reason,
        "error": "",
    }


def _is_submission(request: HttpRequest) -> bool:
    return request.method == "POST" and "preview" not in request.POST


def _is_new_submission(request: HttpRequest) -> bool:
    """Return whether the request submits a form whose one-time key stored nothing yet.

    A resubmitted form (a double click) opens the first generation and is not counted again.
    """
    if not _is_submission(request):
        return False
    key = request.POST.get("submission_key")
    return not (key and Generation.objects.filter(user=request.user, submission_key=key).exists())


def _too_many_generations(request: HttpRequest, verdict: ratelimit.Verdict) -> HttpResponse:
    return _create_page(
        request,
        error=f"You can start {verdict.limit} generations every "
        f"{settings.GENERATION_RATE_LIMIT_WINDOW_SECONDS} seconds. "
        f"Try again in {verdict.retry_after} seconds.",
    )


@login_required
@require_http_methods(["GET", "POST"])
@ratelimit.limit_per_user(
    "generate", "GENERATION_RATE_LIMIT", refused=_too_many_generations, counts=_is_new_submission
)
def create(request: HttpRequest) -> HttpResponse:
    """Show the catalogue-driven form; on submit queue the generation and open its page.

    Only models whose provider is configured are offered; any other, or an unknown one, is
    refused with a message. The form carries a one-time key and the price it showed.
    """
    if not _is_submission(request):
        return _create_page(request, error="")
    try:
        generation = submit_generation(
            request.user,
            model_key=request.POST.get("model") or "",
            prompt=request.POST.get("prompt"),
            params=request.POST,
            submission_key=request.POST.get("submission_key"),
            expected_cost=request.POST.get("estimate"),
        )
    except GenerationError as failure:
        return _create_page(request, error=str(failure))
    return redirect("generation:detail", generation_id=generation.pk)


def _create_page(request: HttpRequest, *, error: str) -> HttpResponse:
    """Render the form for the requested (or first offered) model; an error answers 400."""
    data = request.POST if request.method == "POST" else request.GET
    offered = offered_models()
    requested = data.get("model") or ""
    spec = next((m for m in offered if m.key == requested), None)
    if spec is None and requested and not error:
        error = "That model is not available here. Choose one of the models below."
    spec = spec or (offered[0] if offered else None)
    return render(
        request,
        "generation/create.html",
        {
            **_settings(request, spec, data),
            "models": offered,
            # The prompt stays whatever model is picked (a preview POST, never a URL).
            "prompt": request.POST.get("prompt", ""),
            "error": error,
            "submission_key": submission.new_key(),
            "prompt_min": catalogue.PROMPT_MIN,
            "prompt_max": catalogue.PROMPT_MAX,
        },
        status=400 if error else 200,
    )


def _settings(request: HttpRequest, spec, data) -> dict:
    """Return the chosen model's option fields and the live estimate for them."""
    if spec is None:
        return {"selected": None, "fields": [], "estimate": {}}
    estimate = _estimate(request, spec.key, data)
    chosen = estimate.get("params") or {}
    fields = [(p, chosen.get(p.name, p.default)) for p in spec.parameters]
    return {"selected": spec, "fields": fields, "estimate": estimate}


@login_required
@require_POST
def estimate(request: HttpRequest) -> HttpResponse:
    """Render the options and the live price for the chosen model (htmx partial).

    A POST, so nothing the form holds ever lands in a URL or an access log.
    """
    requested = request.POST.get("model", "")
    spec = next((m for m in offered_models() if m.key == requested), None)
    context = _settings(request, spec, request.POST)
    if spec is None:
        context["estimate"] = {"error": "That model is not available here. Choose another."}
    return render(request, "generation/partials/settings.html", context)


def _own(request: HttpRequest, generation_id: uuid.UUID) -> Generation:
    try:
        return selectors.generation_for(request.user, generation_id)
    except Generation.DoesNotExist:
        raise Http404("No such generation") from None


def _live_context(generation: Generation) -> dict:
    return {
        "generation": generation,
        "spec": catalogue.CATALOGUE.get(generation.model_key),
        "outputs": selectors.outputs(generation),
        "events": list(generation.events.all()),
    }


def _own_output(request: HttpRequest, generation_id: uuid.UUID, asset_id: uuid.UUID):
    generation = _own(request, generation_id)
    asset = next((a for a in selectors.outputs(generation) if a.id == asset_id), None)
    if asset is None:
        raise Http404("No such output")
    return generation, asset


@login_required
@require_GET
def viewer(request: HttpRequest, generation_id: uuid.UUID, asset_id: uuid.UUID) -> HttpResponse:
    """Show one output large inside the app; each visit signs its media URL afresh."""
    generation, asset = _own_output(request, generation_id, asset_id)
    context = {"generation": generation, "asset": asset}
    context["spec"] = catalogue.CATALOGUE.get(generation.model_key)
    return render(request, "generation/viewer.html", context)


@login_required
@require_GET
def download(request: HttpRequest, generation_id: uuid.UUID, asset_id: uuid.UUID):
    """Send one output as a file download, streamed through the app (no storage link)."""
    generation, asset = _own_output(request, generation_id, asset_id)
    extension = asset.content_type.rpartition("/")[2].split("+")[0] or "bin"
    name = f"{generation.model_key}-{str(generation.pk)[:8]}.{extension}"
    return FileResponse(
        media.open_asset(asset.id),
        as_attachment=True,
        filename=name,
        content_type=asset.content_type,
    )


@login_required
@require_GET
def detail(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    """Show one generation: live status, outputs, timeline, cancel and its ledger entries."""
    generation = _own(request, generation_id)
    owner.note_viewed(generation)
    context = _live_context(generation)
    context["ledger_lines"] = selectors.ledger_lines(generation)
    context["deletable"] = owner.is_deletable(generation)
    return render(request, "generation/detail.html", context)


@login_required
@require_GET
def progress(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    """Render the live part of the detail page; it keeps polling only while running."""
    generation = _own(request, generation_id)
    owner.note_viewed(generation)
    return render(request, "generation/partials/progress.html", _live_context(generation))


@login_required
@require_POST
def cancel(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    """Cancel the generation; credits come back at once."""
    try:
        cancel_generation(request.user, generation_id)
    except Generation.DoesNotExist:
        raise Http404("No such generation") from None
    except GenerationError as error:
        messages.warning(request, str(error))
    else:
        messages.success(request, "Canceled. Your credits were returned.")
    return redirect("generation:detail", generation_id=generation_id)


@login_required
@require_POST
def delete(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    """Delete the generation's outputs and prompt; its credit history stays."""
    try:
        owner.delete_generation(request.user, generation_id)
    except Generation.DoesNotExist:
        raise Http404("No such generation") from None
    except GenerationError as error:
        messages.warning(request, str(error))
        return redirect("generation:detail", generation_id=generation_id)
    messages.success(request, "Deleted. Its outputs and prompt are gone.")
    return redirect("generation:history")


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    """List the user's generations, paginated, optionally filtered by status."""
    status = request.GET.get("status", "")
    page = selectors.history_page(request.user, status=status, page=request.GET.get("page", 1))
    return render(
        request,
        "generation/history.html",
        {"page": page, "status": status if status in Status.values else "", "statuses": Status},
    )
