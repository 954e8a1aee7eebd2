"""HTTPS and WSS end to end: the real API is TLS-only, so the engine is tested over TLS too.

The local server speaks TLS (``ServerOptions(tls=…)``, ``rtengine serve --certfile``) with a certificate from a
test CA made here (cryptography, which aiortc already needs); the client trusts that CA through ``ssl_context``.
"""

import datetime
import functools
import ipaddress
import os
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from engine_helpers import API_KEY, drain, ends, engine_tasks, until
from helpers import RTENGINE, start_serve

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, OutputTranscriptDone, SessionUpdated
from rtengine.server import LocalServer, ServerOptions, open_local_server


@dataclass
class Pki:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**{**flags, **allowed})


def make_pki(directory: Path) -> Pki:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost — with the extensions Python 3.13's strict
    verification (``VERIFY_X509_STRICT``) requires: key identifiers, key usage, basic constraints."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rtengine test CA"))
        .issuer_name(_name("rtengine test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@dataclass
class TlsServer:
    server: LocalServer
    base_url: str
    pki: Pki


@pytest.fixture
async def tls_server(peers: PeerService, tmp_path: Path) -> AsyncIterator[TlsServer]:
    pki = make_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_pem, pki.key_pem)
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0, tls=context)
    async with open_local_server(options, peers=peers) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        yield TlsServer(server, server.base_url, pki)


def tls_client(tls: TlsServer, *, trusted: bool = True) -> rtengine.RealtimeClient:
    context = ssl.create_default_context(cafile=str(tls.pki.ca_pem)) if trusted else None
    return rtengine.RealtimeClient(
        tls.base_url, api_key=API_KEY, ssl_context=context, call_retries=0, sideband_retries=0, backoff_base=0.01
    )


async def test_a_webrtc_call_over_https_and_a_wss_sideband(tls_server: TlsServer, offer_sdp: str) -> None:
    async with tls_client(tls_server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                assert conv.answer_sdp is not None
                await until(conv, SessionUpdated)
                await conv.send_text("over tls")
                await conv.request_response()
                events = await until(conv, OutputTranscriptDone)
            assert engine_tasks() == []
    last = events[-1]
    assert isinstance(last, OutputTranscriptDone)
    assert last.transcript == "You said: over tls"
    assert ends(await drain(conv)) == [Closed("requested")]
    sideband = tls_server.server.record.sidebands()[-1]
    await tls_server.server.record.wait_until(lambda: sideband.end is not None)
    assert (sideband.end, sideband.close_code, sideband.close_answered) == ("client_close", 1000, True)


async def test_a_websocket_conversation_over_wss(tls_server: TlsServer) -> None:
    async with tls_client(tls_server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
    assert tls_server.server.record.directs()[-1].accepted


async def test_an_untrusted_certificate_is_refused_with_a_clear_error(tls_server: TlsServer, offer_sdp: str) -> None:
    async with tls_client(tls_server, trusted=False) as client:  # the system's CAs do not know the test CA
        with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                raise AssertionError("must not start")
        with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()):
                raise AssertionError("must not start")
    assert tls_server.server.record.calls == []
    assert engine_tasks() == []


async def test_rtengine_call_trusts_the_ca_file_it_is_given(tls_server: TlsServer, tmp_path: Path) -> None:
    """The command line reaches a TLS server whose CA the system does not know through ``--ca-file``."""
    command = [*RTENGINE, "call", "--base-url", tls_server.base_url, "--transport", "websocket"]
    env = {**os.environ, "OPENAI_API_KEY": API_KEY}
    with trio.fail_after(30):
        run = functools.partial(trio.run_process, capture_stdout=True, capture_stderr=True, check=False, env=env)
        trusted = await run([*command, "--ca-file", str(tls_server.pki.ca_pem)])
        untrusted = await run(command)
        missing = await run([*command, "--ca-file", str(tmp_path / "missing.pem")])
    assert trusted.returncode == 0, trusted.stderr.decode()
    assert "You said: Hello from rtengine!" in trusted.stdout.decode()
    assert untrusted.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr.decode()  # errors go to stderr
    assert missing.returncode == 2  # a usage error, found before any network work
    assert f"cannot use --ca-file {tmp_path / 'missing.pem'}" in missing.stderr.decode()


async def test_rtengine_serve_speaks_tls_with_the_certificate_it_is_given(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with trio.fail_after(30):
        refused = await trio.run_process(
            [*RTENGINE, "serve", "--certfile", str(tmp_path / "missing.pem")], capture_stderr=True, check=False
        )
        assert refused.returncode == 2
        assert f"cannot load --certfile {tmp_path / 'missing.pem'}" in refused.stderr.decode()
        async with trio.open_nursery() as nursery:
            certificate = ("--certfile", str(pki.cert_pem), "--keyfile", str(pki.key_pem))
            process, base_url = await start_serve(nursery, "--api-key", API_KEY, *certificate)
            assert base_url.startswith("https://127.0.0.1:")
            context = ssl.create_default_context(cafile=str(pki.ca_pem))
            client = rtengine.RealtimeClient(base_url, api_key=API_KEY, ssl_context=context)
            async with client, rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
            process.send_signal(signal.SIGINT)
