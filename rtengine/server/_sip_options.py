"""How the local server's simulated phone behaves (``ServerOptions(sip=SipScript(...))``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SipScript"]


@dataclass(frozen=True, slots=True)
class SipScript:
    """The simulated incoming calls (used when ``ServerOptions.sip_webhook`` is set).

    * ``calls`` / ``interval`` — calls placed when the server starts, one after the other (each ``interval``
      seconds after the previous ended); more with ``server.sip.place_call()``.
    * ``app_wait`` — before those calls, the phone waits up to this long for ``sip_webhook`` to accept a connection
      (an app started after the server still gets its first call); then it rings anyway.
    * ``ring_seconds`` — how long a call waits for an accept or reject after its webhook was delivered
      (then it ends as ``no_answer``).
    * ``webhook_timeout`` / ``webhook_retries`` / ``webhook_backoff`` — like the API, a delivery the app answers
      with 5xx, or does not answer within the timeout, is retried (same ``webhook-id``, fresh timestamp and
      signature) up to ``webhook_retries`` times, after ``webhook_backoff`` seconds doubling each time; a 4xx is
      not retried; when every attempt failed the call ends as ``webhook_failed``.
    * ``speech_ms`` — the caller speaks this long (a tone into the server VAD, then silence) once a sideband has
      joined (or ``join_wait`` seconds after the accept); 0: the caller never speaks.
    * ``dtmf`` / ``dtmf_delay`` / ``dtmf_interval`` — keys the caller presses ``dtmf_delay`` seconds after speaking,
      ``dtmf_interval`` apart (``input_audio_buffer.dtmf_event_received``).
    * ``caller_hangup_after`` — the caller hangs up this many seconds after the accept (``None``: never; a value
      shorter than the first response makes it hang up mid-turn).
    * ``from_uri`` / ``to_uri`` — the INVITE's ``From`` and ``To``.
    """

    calls: int = 1
    interval: float = 0.0
    app_wait: float = 120.0
    ring_seconds: float = 30.0
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    webhook_backoff: float = 0.25
    speech_ms: int = 600
    join_wait: float = 5.0
    dtmf: str = "5#"
    dtmf_delay: float = 0.5
    dtmf_interval: float = 0.2
    caller_hangup_after: float | None = None
    from_uri: str = '"Ada Lovelace" <sip:+15551230000@pstn.example>;tag=rtengine'
    to_uri: str = "<sip:+15559870000@sip.api.openai.com>"

    def __post_init__(self) -> None:
        if self.calls < 0 or not 0 <= self.webhook_retries <= 20 or self.speech_ms < 0:
            raise ValueError("calls and speech_ms must be >= 0, webhook_retries within 0..20")
        for name in ("ring_seconds", "webhook_timeout", "join_wait", "app_wait"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")
        for name in ("interval", "webhook_backoff", "dtmf_delay", "dtmf_interval"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        if self.caller_hangup_after is not None and not self.caller_hangup_after >= 0:
            raise ValueError("caller_hangup_after must be >= 0")
        if any(key not in "0123456789*#ABCD" for key in self.dtmf):
            raise ValueError(f"dtmf keys are 0-9, *, # and A-D, got {self.dtmf!r}")
