"""Time to accept a SIP call: webhook received → accept answered, rtengine against a bare ``POST …/accept``.

Run: ``python benchmarks/time_to_accept.py [--quick] [--calls N] [--json PATH]``.

The local realtime server runs as ``rtengine serve --sip-webhook URL --webhook-secret … --sip-calls N`` in its own
process (the API is remote in real life), reached over loopback; it rings this process's webhook endpoint one call
after the other (each 30 ms after the previous ended, so no call shares the server with the last one's teardown).
Each call is measured in one of four modes, in groups of four whose order rotates every group (a call's latency
depends on its position), so machine noise hits every mode alike:

* ``floor`` — from the webhook's arrival to the answer of a bare ``POST /v1/realtime/calls/{id}/accept`` of the same
  JSON body (the session) on the same warm httpx client (no verification: the floor);
* ``verified floor`` — the same, after ``rtengine.webhooks.Verifier.verify`` (what any app must do first: the share
  of the ratio that is the signature check, not the engine);
* ``rtengine`` — from the webhook's arrival: ``rtengine.webhooks.Verifier.verify`` (signature, timestamp, replay store,
  payload) then ``open_conversation(client, session, accept_call_id=…)`` until the block starts (the sideband then
  joins in the background; it is not on this path).

Like ``timeit``, the garbage collector is off inside each timed call; the call is hung up outside the timing.
Each call's client CPU (``time.process_time``; the server is another process) is recorded too: unlike wall time,
the load of a shared machine does not reach it.
The table gives medians and p90s, the ratio of medians and the median of the per-group ratios (rtengine over the
floor, and over the verified floor). Target: rtengine/floor ≤ 1.03.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import json
import secrets
import signal
import statistics
import subprocess
import sys
import time

import httpx
import standardwebhooks
import trio

import rtengine
from rtengine import webhooks
from rtengine.adapters import HttpRequest, Limits, serve_connection

KEY = "sk-benchmark"
MODES = ("floor", "verified floor", "app floor", "rtengine")
SESSION = rtengine.SessionConfig(instructions="You answer the phone for the benchmark.", voice="marin")


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


class Bench:
    """The webhook endpoint: each delivery is measured in the next mode of the schedule."""

    def __init__(self, client: rtengine.RealtimeClient, http: httpx.AsyncClient, secret: str, total: int) -> None:
        self.client = client
        self.http = http
        self.verifier = webhooks.Verifier(secret)  # one per endpoint: the secret decoded once, a replay store
        self.library = standardwebhooks.Webhook(secret)  # the same, for an app on the scheme's own library
        self.base_url = client.base_url
        self.body = client.session_json(SESSION).encode()
        # Groups of four whose order rotates: floor, verified, app, rtengine; verified, app, rtengine, floor; ...
        self.schedule = [MODES[(i + i // len(MODES)) % len(MODES)] for i in range(total)]
        self.samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        #: Client CPU (``time.process_time``) of each timed call: what machine load does not reach.
        self.cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        self.pairs: list[tuple[str, float]] = []
        self.arrived = 0
        self.done = trio.Event()
        self.nursery: trio.Nursery | None = None

    async def route(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        received = trio.current_time()
        assert self.nursery is not None
        index, self.arrived = self.arrived, self.arrived + 1
        mode = self.schedule[index] if index < len(self.schedule) else "floor"
        self.nursery.start_soon(self.measure, mode, request, received)
        return 200, [], b""

    async def measure(self, mode: str, request: HttpRequest, received: float) -> None:
        gc.disable()
        cpu = time.process_time()
        try:
            if mode != "rtengine":
                if mode == "floor":
                    call_id = json.loads(request.body)["data"]["call_id"]
                elif mode == "app floor":
                    self.library.verify(request.body, dict(request.headers))
                    call_id = json.loads(request.body)["data"]["call_id"]
                else:
                    call_id = self.verifier.verify(request.headers, request.body).call_id
                url = f"{self.base_url}/realtime/calls/{call_id}/accept"
                headers = {**self.client.auth_headers(), "content-type": "application/json"}
                response = await self.http.post(url, content=self.body, headers=headers)
                took = trio.current_time() - received
                cpu = time.process_time() - cpu
                assert response.status_code == 200, response.text
                gc.enable()
                await self.client.calls.hangup(call_id)
            else:
                call = self.verifier.verify(request.headers, request.body)
                call_id = call.call_id
                async with rtengine.open_conversation(self.client, SESSION, accept_call_id=call_id):
                    took = trio.current_time() - received
                    cpu = time.process_time() - cpu
                    gc.enable()
        finally:
            gc.enable()
        self.samples[mode].append(took)
        self.cpu[mode].append(cpu)
        self.pairs.append((mode, took))
        gc.collect()
        if len(self.pairs) >= len(self.schedule):
            self.done.set()

    async def handle(self, stream: trio.abc.Stream) -> None:
        async def no_ws(s: trio.abc.Stream, r: HttpRequest) -> None:
            await s.aclose()

        await serve_connection(
            stream, route=self.route, websocket=no_ws, limits=Limits(65536), error_body=lambda m, c: m.encode()
        )


async def run(calls: int, warmup: int) -> dict[str, object]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    total = (warmup + calls) * len(MODES)
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        command = [
            sys.executable, "-m", "rtengine", "serve", "--port", "0", "--api-key", KEY, "--delta-interval", "0",
            "--sip-webhook", f"http://127.0.0.1:{port}/hook", "--webhook-secret", secret, "--sip-calls", str(total),
            "--sip-interval", "0.03",
        ]  # fmt: skip
        run_server = functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process: trio.Process = await nursery.start(run_server)
        assert process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive_some(1)
        base_url = line.decode().strip()
        async with (
            rtengine.RealtimeClient(base_url, api_key=KEY) as client,
            httpx.AsyncClient(follow_redirects=False) as http,
        ):
            bench = Bench(client, http, secret, total)
            bench.nursery = nursery
            await client.warm_up()
            await http.get(base_url + "/models")
            nursery.start_soon(trio.serve_listeners, bench.handle, listeners)
            with trio.fail_after(30 + total * 0.5):
                await bench.done.wait()
        process.send_signal(signal.SIGINT)
        nursery.cancel_scope.cancel()
    measured = bench.pairs[warmup * len(MODES) :]
    floor = [t for m, t in measured if m == "floor"]
    verified = [t for m, t in measured if m == "verified floor"]
    app = [t for m, t in measured if m == "app floor"]
    ours = [t for m, t in measured if m == "rtengine"]
    pair_ratios, verified_ratios, app_ratios = [], [], []
    size = len(MODES)
    for i in range(0, len(measured) - size + 1, size):
        by = dict(measured[i : i + size])  # calls arrive in schedule order (each starts after the last ended)
        if set(by) == set(MODES):
            pair_ratios.append(by["rtengine"] / by["floor"])
            verified_ratios.append(by["rtengine"] / by["verified floor"])
            app_ratios.append(by["rtengine"] / by["app floor"])
    return {
        "python": sys.version.split()[0],
        "calls": len(floor),
        "floor_median_ms": statistics.median(floor) * 1000,
        "floor_p90_ms": p90(floor) * 1000,
        "verified_floor_median_ms": statistics.median(verified) * 1000,
        "verified_floor_p90_ms": p90(verified) * 1000,
        "app_floor_median_ms": statistics.median(app) * 1000,
        "app_floor_p90_ms": p90(app) * 1000,
        "rtengine_median_ms": statistics.median(ours) * 1000,
        "rtengine_p90_ms": p90(ours) * 1000,
        "ratio_of_medians": statistics.median(ours) / statistics.median(floor),
        "paired_median_ratio": statistics.median(pair_ratios),
        "ratio_to_verified_floor": statistics.median(ours) / statistics.median(verified),
        "paired_ratio_to_verified_floor": statistics.median(verified_ratios),
        "ratio_to_app_floor": statistics.median(ours) / statistics.median(app),
        "paired_ratio_to_app_floor": statistics.median(app_ratios),
        "floor_cpu_median_us": statistics.median(bench.cpu["floor"][warmup:]) * 1e6,
        "app_floor_cpu_median_us": statistics.median(bench.cpu["app floor"][warmup:]) * 1e6,
        "verified_floor_cpu_median_us": statistics.median(bench.cpu["verified floor"][warmup:]) * 1e6,
        "rtengine_cpu_median_us": statistics.median(bench.cpu["rtengine"][warmup:]) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 calls per mode, 5 warm-up groups")
    parser.add_argument("--calls", type=int, default=300, help="measured calls per mode (default 300)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    calls, warmup = (40, 5) if args.quick else (args.calls, 20)
    result: dict[str, object] = trio.run(run, calls, warmup)
    print(
        f"python {result['python']}; {result['calls']} calls per mode after {warmup} warm-up groups\n"
        f"floor (bare POST …/accept) median / p90: {result['floor_median_ms']:.2f} / {result['floor_p90_ms']:.2f} ms\n"
        f"verified floor (verify, then bare POST) median / p90: {result['verified_floor_median_ms']:.2f} / "
        f"{result['verified_floor_p90_ms']:.2f} ms\n"
        f"app floor (standardwebhooks verify, then bare POST) median / p90: {result['app_floor_median_ms']:.2f} / "
        f"{result['app_floor_p90_ms']:.2f} ms\n"
        f"rtengine (verify + accept inline) median / p90: {result['rtengine_median_ms']:.2f} / "
        f"{result['rtengine_p90_ms']:.2f} ms\n"
        f"ratio of medians: {result['ratio_of_medians']:.3f}; "
        f"paired: {result['paired_median_ratio']:.3f} (target <= 1.03)\n"
        f"rtengine / verified floor: {result['ratio_to_verified_floor']:.3f}; "
        f"paired: {result['paired_ratio_to_verified_floor']:.3f}\n"
        f"rtengine / app floor: {result['ratio_to_app_floor']:.3f}; "
        f"paired: {result['paired_ratio_to_app_floor']:.3f}\n"
        f"client CPU per call, median: floor {result['floor_cpu_median_us']:.0f} us, "
        f"verified floor {result['verified_floor_cpu_median_us']:.0f} us, "
        f"app floor {result['app_floor_cpu_median_us']:.0f} us, "
        f"rtengine {result['rtengine_cpu_median_us']:.0f} us"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
