"""Audio files for the media source: any file PyAV (FFmpeg) reads, decoded and resampled to the realtime format.

The one place where PyAV's exceptions become rtengine's (:class:`~rtengine.ConfigError`, one line naming the file).
Decoding is synchronous and reads the whole file: it runs before a conversation starts (the ``rtengine`` command
validates ``--wav-in`` before any network work), never on the answer path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import av
import av.error

from ..protocol._errors import ConfigError

__all__ = ["REALTIME_RATE", "decode_audio_file"]

#: The realtime format: PCM16 (little-endian, signed) mono at 24 kHz.
REALTIME_RATE: Final = 24000


def decode_audio_file(path: str | Path) -> bytes:
    """The first audio stream of ``path`` as PCM16 mono 24 kHz bytes (resampled and down-mixed as needed).

    Raises :class:`~rtengine.ConfigError` with one line when the file is missing, a directory or not a regular file
    (``/dev/zero`` never ends), unreadable, not audio, or holds no samples.
    """
    name = str(path)
    where = Path(name)
    if where.is_dir():
        raise ConfigError(f"{name}: is a directory, not an audio file")
    if where.exists() and not where.is_file():
        raise ConfigError(f"{name}: not a regular file (a device, a pipe or a socket), not an audio file")
    if not where.is_file():
        raise ConfigError(f"{name}: no such file")
    try:
        with av.open(name) as container:
            if not container.streams.audio:
                raise ConfigError(f"{name}: not an audio file (no audio stream)")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=REALTIME_RATE)
            chunks: list[bytes] = []
            for frame in container.decode(audio=0):
                chunks += [_pcm(out) for out in resampler.resample(frame)]
            chunks += [_pcm(out) for out in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise ConfigError(f"{name}: not an audio file PyAV can read ({exc.strerror or type(exc).__name__})") from exc
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    pcm = b"".join(chunks)
    if not pcm:
        raise ConfigError(f"{name}: the audio stream holds no samples")
    return pcm


def _pcm(frame: av.AudioFrame) -> bytes:
    """The samples of a packed s16 mono frame (its plane may be padded past them)."""
    return bytes(frame.planes[0])[: frame.samples * 2]
