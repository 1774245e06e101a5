from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from media_store import services
from media_store.backends.filesystem import FilesystemBackend, read_token
from media_store.exceptions import AssetNotFound
from media_store.models import Asset


def _redirect_to_signed(request: HttpRequest, asset_id: UUID, *, thumbnail: bool) -> HttpResponse:
    # Another user's asset and a random id take the same path to the same 404.
    asset = Asset.objects.filter(id=asset_id, owner_id=request.user.pk).first()
    if asset is None:
        raise Http404("No such media.")
    if asset.withheld:
        # Only the owner gets here; 402 says why, and no signed URL is made.
        response = render(request, "media_store/withheld.html", {"asset": asset}, status=402)
        response["Cache-Control"] = "no-store"
        return response
    try:
        url = services.signed_url(asset, thumbnail=thumbnail)
    except AssetNotFound:
        raise Http404("No such media.") from None
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def asset(request: HttpRequest, asset_id: UUID) -> HttpResponse:
    """Send the owner to a fresh short-lived URL for the asset."""
    return _redirect_to_signed(request, asset_id, thumbnail=False)


@require_GET
@login_required
def thumbnail(request: HttpRequest, asset_id: UUID) -> HttpResponse:
    """Send the owner to a fresh short-lived URL for the asset's thumbnail."""
    return _redirect_to_signed(request, asset_id, thumbnail=True)


@never_cache
@require_GET
def file(request: HttpRequest, token: str) -> HttpResponse:
    """Serve a filesystem-backend object to whoever holds an unexpired signed token."""
    if settings.MEDIA_BACKEND != "filesystem":
        raise Http404("No such media.")
    found = read_token(token)
    if found is None:
        return HttpResponse(
            "This link has expired or is invalid.", status=403, content_type="text/plain"
        )
    key, content_type = found
    try:
        handle = FilesystemBackend(settings.MEDIA_ROOT).path_for(key).open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("No such media.") from None
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = "inline"
    return response
