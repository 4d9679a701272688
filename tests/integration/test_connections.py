"""test_connections.py — the connection layer of scripd against slow,
oversized and too many clients ([limits], http/conn.c): a slowloris that
dribbles its headers is closed at header_timeout however it spaces its
bytes, a slow body at request_timeout; an idle keep-alive connection is
not; heads over max_headers get 431 and bodies over max_body 413; heads
that evhttp would read otherwise than a proxy (a NUL byte, an unknown HTTP
version, no or two Host headers) and content-coded bodies are refused;
connections beyond max_connections are closed at once while the open ones
go on, and accepted again once they close; and the count of connections
on /metrics comes back down (no leak)."""

import http.client
import json
import re
import socket
import time

from harness import DemoIssuer, Env, ScripTestCase

MAX_CONNECTIONS = 4
HEADER_TIMEOUT = 2
REQUEST_TIMEOUT = 4
IDLE_TIMEOUT = 20
MAX_HEADERS = 4096
MAX_BODY = 65536  # [limits] max_body's default
ENV = None


def setUpModule():
    global ENV
    ENV = Env("connections", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})],
              limits={"max_connections": MAX_CONNECTIONS, "header_timeout": HEADER_TIMEOUT,
                      "request_timeout": REQUEST_TIMEOUT, "idle_timeout": IDLE_TIMEOUT,
                      "max_headers": MAX_HEADERS})
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def connect():
    s = socket.create_connection(("127.0.0.1", ENV.scripd.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s, timeout):
    """True when the peer closes s (EOF or reset) within timeout seconds; data is read and dropped."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def read_response(s, timeout=10, reader=None):
    """(status, body) of one response read from a raw socket (Content-Length bodies only). Give the
    same reader (s.makefile("rb")) to read several responses off one connection."""
    s.settimeout(timeout)
    f = reader or s.makefile("rb")
    status_line = f.readline()
    if not status_line:
        raise AssertionError("connection closed before a response")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        m = re.match(rb"(?i)content-length:\s*(\d+)", line)
        if m:
            length = int(m.group(1))
    return status, f.read(length)


class ConnectionTest(ScripTestCase):

    def connections_metric(self):
        text = ENV.scripd.get("/metrics").body.decode()
        m = re.search(r"^scrip_http_connections (\d+)$", text, re.M)
        self.assertIsNotNone(m, "/metrics has no scrip_http_connections gauge")
        return int(m.group(1))

    def assertConnectionsSettle(self, want=1, within=5):
        """The gauge (which counts the /metrics request's own connection) comes back to want. Until scripd
        has seen the closes of connections that filled max_connections, the /metrics request's own
        connection is one too many and is closed unanswered: asked again."""
        deadline = time.monotonic() + within
        while True:
            try:
                n = self.connections_metric()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                n = None
            if n == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(n, want, "scrip_http_connections stays at %d: a connection is not forgotten" % n)

    def dribble(self, s, data, every):
        """Sends data one byte every `every` seconds until the peer closes; returns seconds taken,
        or None when all of data went out."""
        start = time.monotonic()
        for i in range(len(data)):
            try:
                s.sendall(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            s.settimeout(every)
            try:
                if s.recv(65536) == b"":
                    return time.monotonic() - start
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - start
        return None

    def test_slowloris_headers_closed_at_header_timeout(self):
        # One byte every 0.4 s: evhttp's idle timeout (20 s) would never fire.
        s = connect()
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took = self.dribble(s, b"X-Slow: " + b"a" * 200 + b"\r\n\r\n", 0.4)
        took = time.monotonic() - start if took is not None else None
        s.close()
        self.assertIsNotNone(took, "the whole slow request went through")
        self.assertGreaterEqual(took, HEADER_TIMEOUT - 0.5)
        self.assertLess(took, HEADER_TIMEOUT + 1.5, "closed only after %.1f s" % took)
        self.assertIn("header_timeout", ENV.scripd.log_text())

    def test_silent_connection_closed_at_header_timeout(self):
        s = connect()
        start = time.monotonic()
        self.assertTrue(closed_by_peer(s, HEADER_TIMEOUT + 3), "a silent new connection stays open")
        took = time.monotonic() - start
        s.close()
        self.assertGreaterEqual(took, HEADER_TIMEOUT - 0.5)

    def test_slow_body_closed_at_request_timeout(self):
        s = connect()
        start = time.monotonic()
        s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 200\r\n\r\n")
        took = self.dribble(s, b"a" * 200, 0.4)
        took = time.monotonic() - start if took is not None else None
        s.close()
        self.assertIsNotNone(took, "the whole slow body went through")
        self.assertGreaterEqual(took, REQUEST_TIMEOUT - 0.5)
        self.assertLess(took, REQUEST_TIMEOUT + 1.5, "closed only after %.1f s" % took)
        self.assertIn("request_timeout", ENV.scripd.log_text())

    def test_idle_keepalive_outlives_header_timeout(self):
        # Between requests only idle_timeout applies: the deadlines start with a request.
        conn = http.client.HTTPConnection("127.0.0.1", ENV.scripd.port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            first = conn.getresponse()
            first.read()
            sock = conn.sock
            time.sleep(HEADER_TIMEOUT + 1.5)
            conn.request("GET", "/healthz")
            second = conn.getresponse()
            second.read()
            self.assertIs(conn.sock, sock, "the connection was not reused")
            self.assertEqual((first.status, second.status), (200, 200))
        finally:
            conn.close()

    def test_pipelined_requests_both_answered(self):
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        f = s.makefile("rb")
        self.assertEqual(read_response(s, reader=f)[0], 200)
        self.assertEqual(read_response(s, reader=f)[0], 200)
        # The deadline of the second request, begun while the first was answered, has stopped.
        time.sleep(HEADER_TIMEOUT + 1)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_response(s, reader=f)[0], 200)
        s.close()

    def test_oversized_headers_431(self):
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADERS + 100) + b"\r\n\r\n")
        status, body = read_response(s)
        s.close()
        self.assertEqual(status, 431)
        self.assertIn(b"larger than %d bytes" % MAX_HEADERS, body)

    def test_oversized_request_line_431(self):
        s = connect()
        s.sendall(b"GET /healthz?" + b"a" * (MAX_HEADERS + 100) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_response(s)[0], 431)
        s.close()

    def test_headers_just_under_the_limit_pass(self):
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADERS - 200) + b"\r\n\r\n")
        self.assertEqual(read_response(s)[0], 200)
        s.close()

    def test_huge_headers_cut_off_by_evhttp_400(self):
        # Past twice max_headers evhttp stops reading and answers 400 itself (see httpd.c route_cb).
        s = connect()
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (3 * MAX_HEADERS) + b"\r\n\r\n")
            status, _ = read_response(s)
            self.assertEqual(status, 400)
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed while the rest was still being sent: refused too
        finally:
            s.close()

    def test_oversized_body_413(self):
        # Beyond twice max_body evhttp refuses it itself, before the body comes.
        s = connect()
        s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 140000\r\n\r\n")
        self.assertEqual(read_response(s)[0], 413)
        s.close()

    def test_body_over_max_body_413_json(self):
        s = connect()
        body = b"a=" + b"b" * (MAX_BODY + 10)
        s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, answer = read_response(s)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(answer)["error"], "invalid_request")
        self.assertTrue(closed_by_peer(s, 5))
        s.close()

    def test_http10_keepalive_refused_and_closed_says_so_once(self):
        """An HTTP/1.0 request asking for keep-alive that is answered and closed (here its body is too
        large) gets no "Connection: keep-alive" beside the close: the answer says one thing, and the
        connection ends."""
        s = connect()
        body = b"a=" + b"b" * (MAX_BODY + 10)
        s.sendall(b"POST /token HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/x-www-form-urlencoded"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        s.settimeout(10)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        self.assertEqual(int(head[0].split(" ")[1]), 413, head)
        connection = [line.split(":", 1)[1].strip().lower() for line in head[1:]
                      if line.lower().startswith("connection:")]
        self.assertIn(connection, ([], ["close"]), head)
        # Its length is given: the body does not end at the close alone.
        length = [int(line.split(":", 1)[1]) for line in head[1:] if line.lower().startswith("content-length:")]
        self.assertEqual(length, [len(raw.split(b"\r\n\r\n", 1)[1])], head)

    def test_head_wherever_get(self):
        """HEAD is answered wherever GET is (RFC 9110 §9.3.2: load balancers check health with it), with
        the head alone: the GET pipelined after it on the same connection is read intact."""
        for path in (b"/healthz", b"/jwks", b"/.well-known/openid-configuration", b"/metrics"):
            with self.subTest(path=path):
                s = connect()
                s.sendall(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (path, path))
                reader = s.makefile("rb")
                s.settimeout(10)
                self.assertEqual(int(reader.readline().split(b" ", 2)[1]), 200)
                while reader.readline() not in (b"\r\n", b""):
                    pass
                status, body = read_response(s, reader=reader)
                self.assertEqual(status, 200)
                self.assertGreater(len(body), 0)
                s.close()
        r = ENV.scripd.request("HEAD", "/token")
        self.assertEqual((r.status, r.header("allow")), (405, "POST"))
        r = ENV.scripd.request("PUT", "/healthz", b"")
        self.assertEqual((r.status, r.header("allow")), (405, "GET, HEAD"))

    def test_body_of_a_get_is_not_a_second_request(self):
        """Request smuggling (RFC 9112 §11.2): evhttp reads no body for a GET, so the bytes of one would
        be read as the next request, where a proxy in front saw one request. Refused, and the
        connection closed: the second request is never answered."""
        smuggled = b"GET /metrics HTTP/1.1\r\nHost: sts\r\n\r\n"
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: sts\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
        reader = s.makefile("rb")
        status, answer = read_response(s, reader=reader)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(answer)["error"], "invalid_request")
        self.assertEqual(reader.read(), b"", "a second answer came: the body was read as a request")
        s.close()

    def test_ambiguous_ends_are_refused(self):
        form = b"grant_type=x"
        heads = [
            (b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(form), len(form)), True),
            (b"Content-Length: +%d\r\n" % len(form), True),
            # Debian's evhttp refuses these itself (its own 400, not JSON): refused all the same.
            (b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(form), False),
            (b"Content-Length: %d\r\nTransfer-Encoding: gzip, chunked\r\n" % len(form), False),
        ]
        for head, judged_by_scripd in heads:
            with self.subTest(head=head):
                s = connect()
                s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          + head + b"\r\n" + form)
                status, answer = read_response(s)
                self.assertEqual(status, 400)
                if judged_by_scripd:
                    self.assertEqual(json.loads(answer)["error"], "invalid_request")
                self.assertTrue(closed_by_peer(s, 5))
                s.close()

    def test_head_flaws_are_refused(self):
        """What evhttp would read otherwise than a proxy in front: a NUL byte cuts a header value (a
        Transfer-Encoding "chunked\\0, identity" reads as chunked), an HTTP version is kept in a char
        (HTTP/257.1 reads as 1.1). Also a missing or repeated Host (RFC 9112 §3.2) and a content-coded
        body, which scripd does not decode. Each gets its JSON error and the connection is closed."""
        form = b"grant_type=x"
        cases = [
            (b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\0, identity\r\n\r\n"
             b"c\r\n" + form + b"\r\n0\r\n\r\n", 400, "NUL"),
            (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\0 99\r\n\r\n" % len(form) + form,
             400, "NUL"),
            (b"GET /healthz HTTP/4294967296.1\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"),
            (b"POST /token HTTP/4294967295.255\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(form) + form,
             505, "HTTP/1.1"),
            (b"GET /healthz HTTP/1.9\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"),
            (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "Host"),
            (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),
            (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
             % len(form) + form, 415, "Content-Encoding"),
        ]
        # Chunk sizes that evhttp's strtoll reads as 12 and a strict proxy refuses or reads otherwise.
        for size in (b"0xc", b"+c", b" c", b"c ", b"0x0c"):
            cases.append((b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n" + form + b"\r\n0\r\n\r\n",
                          400, "chunked body is malformed"))
        # A NUL that evhttp would read as the trailer section's empty last line.
        cases.append((b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nc\r\n" + form + b"\r\n0\r\n\0\r\n\r\n",
                      400, "chunked body is malformed"))
        for raw, want, words in cases:
            with self.subTest(raw=raw):
                s = connect()
                s.sendall(raw)
                reader = s.makefile("rb")
                status_line = reader.peek(16)[:16]
                status, answer = read_response(s, reader=reader)
                # evhttp would answer in the version it read (HTTP/-1.-1): clients could not read it.
                self.assertTrue(status_line.startswith(b"HTTP/1.1 %d " % want), status_line)
                self.assertEqual(status, want)
                body = json.loads(answer)
                self.assertEqual(body["error"], "invalid_request")
                self.assertIn(words, body["error_description"])
                self.assertTrue(closed_by_peer(s, 5))
                s.close()
        # HTTP/1.0 needs no Host; identity is no coding.
        for raw in (b"GET /healthz HTTP/1.0\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Encoding: identity\r\nConnection: close\r\n\r\n"):
            with self.subTest(raw=raw):
                s = connect()
                s.sendall(raw)
                self.assertEqual(read_response(s)[0], 200)
                s.close()
        # A chunked body as RFC 9112 writes it, sent a byte at a time, then a second request on the
        # same connection: both read (the form, read whole, names no client: 401).
        chunked = (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5\r\ngrant\r\n7\r\n_type=x\r\n0\r\nX-T: 1\r\n\r\n")
        s = connect()
        for i in range(len(chunked)):
            s.sendall(chunked[i:i + 1])
        reader = s.makefile("rb")
        status, answer = read_response(s, reader=reader)
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(answer)["error"], "invalid_client")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_response(s, reader=reader)[0], 200)
        s.close()

    def test_max_connections(self):
        self.assertConnectionsSettle()
        held = []
        try:
            # Fill the cap with keep-alive connections that have each had an answer (idle, so no
            # deadline closes them during the test).
            for _ in range(MAX_CONNECTIONS):
                c = http.client.HTTPConnection("127.0.0.1", ENV.scripd.port, timeout=10)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                held.append(c)
            # One more is closed at once, without an answer.
            extra = connect()
            start = time.monotonic()
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertTrue(closed_by_peer(extra, 2), "a connection beyond max_connections was kept")
            self.assertLess(time.monotonic() - start, 1.5)
            extra.close()
            self.assertIn("max_connections (%d) reached" % MAX_CONNECTIONS, ENV.scripd.log_text())
            # The open ones still work.
            held[0].request("GET", "/healthz")
            r = held[0].getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        finally:
            for c in held:
                c.close()
        # Once they are closed, new connections are accepted again and the count is back.
        self.assertConnectionsSettle()
        self.assertEqual(ENV.scripd.get("/healthz").status, 200)

    def test_z_no_connection_left(self):
        # Runs after the others (alphabetical order): every connection they opened is forgotten.
        self.assertConnectionsSettle()


if __name__ == "__main__":
    import unittest
    unittest.main()
