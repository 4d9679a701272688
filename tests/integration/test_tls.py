"""test_tls.py — scripd with TLS on its listener ([server] tls_certificate,
tls_key), against a throwaway CA and server certificate made here with the
openssl command: a real token exchange with curl --cacert and one with
Python's ssl; TLS 1.0/1.1 refused, 1.2 and 1.3 served with forward secret
AEAD ciphers; plain HTTP to the TLS port gets no HTTP answer; a TLS
handshake that never ends is cut at header_timeout; and configurations
scripd must refuse: no certificate and no plain_http, plain_http = loopback
on a public address, a key that does not match, an http:// issuer with TLS."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import GRANT_TOKEN_EXCHANGE, SCRIPD, TT_ACCESS_TOKEN, DemoIssuer, Env, ScripTestCase

HEADER_TIMEOUT = 3
ENV = None
PKI = None  # directory of the test CA and certificates


def openssl(*args):
    out = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=PKI, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], out.stderr.strip()[-500:]))


def make_pki():
    """ca.pem/ca.key, and server.pem/server.key for 127.0.0.1 and localhost signed by it; other.key
    is a key that matches nothing."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=scrip test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(PKI, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key")
    for name in ("server.key", "other.key", "ca.key"):
        os.chmod(os.path.join(PKI, name), 0o600)


def pki(name):
    return os.path.join(PKI, name)


def setUpModule():
    global ENV, PKI
    PKI = tempfile.mkdtemp(prefix="scrip-it-pki-")
    make_pki()
    ENV = Env("tls", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})],
              server={"tls_certificate": pki("server.pem"), "tls_key": pki("server.key")},
              limits={"header_timeout": HEADER_TIMEOUT}, tls_ca=pki("ca.pem"))
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    shutil.rmtree(PKI, ignore_errors=True)
    if problems:
        raise AssertionError("; ".join(problems))


def handshake(context, server_hostname="localhost"):
    """The TLS connection's (version, cipher name), or the ssl.SSLError of a failed handshake."""
    with socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=server_hostname) as s:
                return s.version(), s.cipher()[0]
        except ssl.SSLError as e:
            return e


class TlsTest(ScripTestCase):

    def setUp(self):
        self.client = self.env.new_client(audiences=("https://storage.example.org",))

    def exchange_form(self):
        return urllib.parse.urlencode([
            ("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", self.env.subject_token()),
            ("subject_token_type", TT_ACCESS_TOKEN), ("scope", "storage.read:/demo"),
            ("audience", "https://storage.example.org")])

    def test_exchange_with_curl(self):
        form = os.path.join(self.env.workdir, "form")
        with open(form, "w") as f:
            f.write(self.exchange_form())
        netrc = os.path.join(self.env.workdir, "netrc")
        fd = os.open(netrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:  # the secret stays off curl's command line
            f.write("machine localhost login %s password %s\n" % (self.client.id, self.client.secret))
        out = subprocess.run(["curl", "-sS", "--fail-with-body", "--cacert", pki("ca.pem"), "--netrc-file", netrc,
                              "--data-binary", "@" + form, "-H", "Content-Type: application/x-www-form-urlencoded",
                              "--resolve", "localhost:%d:127.0.0.1" % ENV.scripd.port,
                              "https://localhost:%d/token" % ENV.scripd.port],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, "curl failed: %s" % self.env.redact(out.stderr + out.stdout))
        token = self.env.remember(json.loads(out.stdout)["access_token"], "issued token")
        _, claims = self.env.verify_issued(token, audience="https://storage.example.org")
        self.assertEqual(claims["iss"], "https://127.0.0.1:%d" % ENV.scripd.port)
        self.assertEqual(claims["scope"], "storage.read:/demo")

    def test_exchange_with_python_ssl(self):
        r = self.env.exchange(self.client, self.env.subject_token(), scope="storage.read:/demo",
                              audiences=("https://storage.example.org",))
        self.assertEqual(r.status, 200, "got %r" % r)
        self.env.verify_issued(r.json["access_token"], audience="https://storage.example.org")
        discovery = self.env.scripd.get_json("/.well-known/openid-configuration")
        self.assertEqual(discovery["token_endpoint"], "https://127.0.0.1:%d/token" % ENV.scripd.port)

    def test_tls12_and_tls13_served_with_aead(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ssl.create_default_context(cafile=pki("ca.pem"))
            ctx.minimum_version = ctx.maximum_version = version
            got = handshake(ctx)
            self.assertIsInstance(got, tuple, "%s refused: %s" % (version.name, got))
            self.assertEqual(got[0], version.name.replace("v1_", "v1."))
            if version == ssl.TLSVersion.TLSv1_2:
                self.assertRegex(got[1], r"^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)")

    def test_tls12_cbc_cipher_refused(self):
        ctx = ssl.create_default_context(cafile=pki("ca.pem"))
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        self.assertIsInstance(handshake(ctx), ssl.SSLError)

    def test_tls11_and_tls10_refused(self):
        for version in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client may offer the old version at all
            ctx.minimum_version = ctx.maximum_version = version
            got = handshake(ctx)
            self.assertIsInstance(got, ssl.SSLError, "%s was accepted: %s" % (version.name, got))
            # The server's alert, not this client refusing to try.
            self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(got))
            self.assertRegex(str(got), r"(?i)protocol.version|unsupported.protocol")

    def test_plain_http_to_tls_port_gets_no_http_answer(self):
        with socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
        self.assertFalse(data.startswith(b"HTTP/"), "plain HTTP was answered: %r" % data[:80])

    def test_stalled_handshake_cut_at_header_timeout(self):
        with socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=HEADER_TIMEOUT + 5) as s:
            start = time.monotonic()
            s.sendall(b"\x16\x03\x01")  # the start of a TLS record, and then nothing
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail("a stalled TLS handshake outlived header_timeout")
            self.assertLess(time.monotonic() - start, HEADER_TIMEOUT + 1.5)

    def test_slowloris_after_a_request_cut_at_header_timeout(self):
        # The deadline of a later request on a kept-alive TLS connection starts at its first
        # (decrypted) byte, and dribbling does not push it back.
        ctx = ssl.create_default_context(cafile=pki("ca.pem"))
        with socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                f = s.makefile("rb")
                self.assertIn(b" 200 ", f.readline())
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                f.read(length)
                time.sleep(HEADER_TIMEOUT + 1)  # idle between requests: not cut
                start = time.monotonic()
                closed = False
                for byte in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
                    try:
                        s.sendall(bytes([byte]))
                    except (OSError, ssl.SSLError):
                        closed = True
                        break
                    s.settimeout(0.4)
                    try:
                        if s.recv(4096) == b"":
                            closed = True
                            break
                    except socket.timeout:
                        pass
                    except (OSError, ssl.SSLError):
                        closed = True
                        break
                took = time.monotonic() - start
        self.assertTrue(closed, "a dribbled request on a TLS connection was never cut off")
        self.assertGreaterEqual(took, HEADER_TIMEOUT - 0.5)
        self.assertLess(took, HEADER_TIMEOUT + 1.5)

    def test_scripd_answers_after_all_that(self):
        self.assertEqual(self.env.scripd.get("/healthz").status, 200)

    def test_zz_log_holds_no_key_or_secret(self):
        with open(pki("server.key")) as f:
            key_lines = [line for line in f.read().splitlines() if line and not line.startswith("-----")]
        log = self.env.scripd.log_text()
        for line in key_lines:
            self.assertNotIn(line, log, "scripd's log holds a line of the private key")
        self.assertIn("TLS certificate", log)
        self.assertLogClean()


def served_certificate():
    """The DER certificate scripd presents to a new connection."""
    context = ssl.create_default_context(cafile=pki("ca.pem"))
    with socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class CertificateReloadTest(ScripTestCase):
    """A renewed certificate is taken up on SIGHUP, by new connections; a broken one is refused and
    the running one kept."""

    def reload(self, expect):
        mark = len(self.env.scripd.log_text())
        self.env.scripd.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while expect not in self.env.scripd.log_text()[mark:]:
            if time.monotonic() > deadline:
                self.fail("no %r in scripd's log after SIGHUP:\n%s" % (expect, self.env.scripd.log_tail(20)))
            time.sleep(0.1)

    def test_sighup_takes_up_a_renewed_certificate(self):
        saved = {name: open(pki(name), "rb").read() for name in ("server.pem", "server.key")}

        def restore():
            for name, data in saved.items():
                with open(pki(name), "wb") as f:
                    f.write(data)
            self.reload("configuration reloaded")
        self.addCleanup(restore)
        before = served_certificate()
        self.assertEqual(before, pem_to_der(pki("server.pem")))
        # Renewed: a new key and certificate from the same CA, written over the configured files.
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "renewed.key", "-out", "renewed.csr", "-subj", "/CN=localhost")
        openssl("x509", "-req", "-in", "renewed.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "renewed.pem", "-days", "2", "-extfile", "server.ext")
        shutil.copyfile(pki("renewed.pem"), pki("server.pem"))
        shutil.copyfile(pki("renewed.key"), pki("server.key"))
        self.assertEqual(served_certificate(), before, "the certificate changed before any reload")
        self.reload("configuration reloaded")
        self.assertEqual(served_certificate(), pem_to_der(pki("renewed.pem")))
        # A broken certificate file: refused, the renewed one stays.
        with open(pki("server.pem"), "w") as f:
            f.write("not a certificate\n")
        self.reload("reload refused, the running configuration stays")
        self.assertEqual(served_certificate(), pem_to_der(pki("renewed.pem")))
        client = self.env.new_client(audiences=("https://storage.example.org",))
        r = self.env.exchange(client, self.env.subject_token(), scope="storage.read:/demo")
        self.assertEqual(r.status, 200, r)


class RefusedConfigTest(ScripTestCase):
    """Configurations that must not start; each message says what to do."""

    def variant(self, drop=(), add=(), replace=()):
        with open(self.env.scripd.conf) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            key = line.split("=", 1)[0].strip()
            if key in drop:
                continue
            for old, new in replace:
                line = line.replace(old, new)
            out.append(line)
            if line == "[server]":
                out += list(add)
        path = os.path.join(self.env.workdir, "variant.conf")
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        return path

    def refused(self, path, says):
        for extra in (["--check-config"], []):
            out = subprocess.run([SCRIPD, "-c", path] + extra, capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL)
            self.assertNotEqual(out.returncode, 0, "scripd %s accepted it" % " ".join(extra))
            self.assertIn(says, out.stderr)
            self.assertNotIn("BEGIN", out.stderr)

    def test_no_certificate_and_no_plain_http(self):
        path = self.variant(drop=("tls_certificate", "tls_key"))
        self.refused(path, "plain_http = loopback")

    def test_plain_http_loopback_on_a_public_address(self):
        path = self.variant(drop=("tls_certificate", "tls_key"), add=("plain_http = loopback",),
                            replace=(("listen = 127.0.0.1:", "listen = 0.0.0.0:"),))
        self.refused(path, "needs a loopback listen address")

    def test_certificate_with_plain_http(self):
        self.refused(self.variant(add=("plain_http = behind_proxy",)), "plain_http is for a listener without TLS")

    def test_key_without_certificate(self):
        self.refused(self.variant(drop=("tls_certificate",)), "tls_certificate and tls_key go together")

    def test_key_not_matching(self):
        path = self.variant(replace=((pki("server.key"), pki("other.key")),))
        self.refused(path, "does not match tls_certificate")

    def test_not_pem(self):
        path = self.variant(replace=((pki("server.pem"), pki("server.ext")),))
        self.refused(path, "cannot load a PEM certificate chain")

    def test_http_issuer_with_tls(self):
        path = self.variant(replace=(("issuer = https://127.0.0.1", "issuer = http://127.0.0.1"),))
        self.refused(path, "issuer must be an https:// URL")

    def test_upstream_without_audience_is_accepted_with_a_warning(self):
        out = subprocess.run([SCRIPD, "-c", self.variant(), "--check-config"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("warning", out.stderr)
        out = subprocess.run([SCRIPD, "-c", self.variant(drop=("audience",)), "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("scripd: warning: [upstream demo] sets no audience", out.stderr)

    def test_behind_proxy_without_certificate_starts(self):
        path = self.variant(drop=("tls_certificate", "tls_key"), add=("plain_http = behind_proxy",))
        out = subprocess.run([SCRIPD, "-c", path, "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
