"""``--wav-in`` takes any audio file PyAV reads, and ``--wav-out`` works on both transports (issue 13, finding 5)."""

import json
import math
import pathlib
import struct
import wave

import av
import trio
from cli_helpers import run_cli

from rtengine.protocol._audio import rms


def _stereo_44k(path: pathlib.Path, seconds: float) -> None:
    """A 440 Hz tone, 16-bit stereo at 44.1 kHz, written with PyAV."""
    rate, samples = 44100, round(44100 * seconds)
    tone = (round(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(samples))
    frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
    frame.sample_rate = rate
    frame.planes[0].update(b"".join(struct.pack("<hh", v, v) for v in tone))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


async def test_wav_in_takes_a_44_1_khz_stereo_file(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "stereo-44k.wav"
    _stereo_44k(source, 1.5)
    with trio.fail_after(90):
        done = await run_cli("demo", "--json", "--wav-in", str(source), "--wav-out", str(tmp_path / "out.wav"))
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert 74 <= report["audio"]["frames_sent"] <= 76  # 1.5 s resampled to 24 kHz mono: 75 frames of 20 ms


async def test_wav_out_on_the_websocket_transport(tmp_path: pathlib.Path) -> None:
    wav_out = tmp_path / "socket.wav"
    with trio.fail_after(90):
        done = await run_cli("demo", "--json", "--transport", "websocket", "--wav-out", str(wav_out))
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["audio"]["wav_out"] == wav_out.as_posix()
    with wave.open(str(wav_out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() >= 24000 * 0.9  # the local server's reply: 1 s of audio in output deltas
        assert rms(wav.readframes(wav.getnframes())) > 0.01
