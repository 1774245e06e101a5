"""Template filters for stored media."""

from django import template

register = template.Library()


@register.filter
def duration(milliseconds: int | None) -> str:
    """Format a length in milliseconds as ``m:ss`` (``h:mm:ss`` past an hour); empty for None."""
    if milliseconds is None or milliseconds < 0:
        return ""
    seconds = round(milliseconds / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"
