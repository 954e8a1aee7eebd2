"""``--wav-out`` as the run writes it: a :class:`~rtengine.webrtc.WavWriter` whose write failures (a full disk, a
file removed or made unwritable mid-call) are kept, not raised into the media path: the first failure stops the
writing, and the run then fails with one line (exit status 1) naming the file and the reason."""

from __future__ import annotations

from ..webrtc import WavWriter

__all__ = ["WavOut"]


class WavOut(WavWriter):
    """A WAV sink that never raises (see the module docstring); ``failure`` says why writing stopped, if it did.
    After :meth:`close` further frames are ignored (a late frame never re-creates the file)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.failure: str | None = None
        self._closed = False

    def __call__(self, pcm16: bytes) -> None:
        if self.failure is not None or self._closed:
            return
        try:
            super().__call__(pcm16)
        except OSError as exc:
            self._fail(exc)
            self.close()  # the file is let go now (its own failure, if any, is the same story)

    def close(self) -> None:
        self._closed = True
        try:
            super().close()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.failure is None:
            self.failure = f"cannot write --wav-out {self.path}: {exc.strerror or exc}"
