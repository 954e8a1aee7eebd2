"""Static assets of ``rtengine web`` (the page)."""
