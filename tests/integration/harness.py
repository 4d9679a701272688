#!/usr/bin/python3
"""harness.py — runs scrip for real in the integration tests: a throwaway
PostgreSQL (tools/pg-throwaway.sh, or SCRIP_TEST_PG_DSN), demo upstream
issuers (tools/demo_issuer.py) on threads, and the built scripd and scripctl
talking loopback HTTP; plus the runner that tests/integration/run.sh calls.

One Env per test module (setUpModule/tearDownModule): one database, one
scripd. Tests create fresh clients, so they do not depend on each other.

Nothing here prints a token or a secret: responses are shown redacted, and
every token and secret a test handles is remembered so that the module's
last test can check scripd's log never contained one.
"""

import atexit
import base64
import glob
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("SCRIP_TOP_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
BUILDDIR = os.environ.get("SCRIP_TOP_BUILDDIR") or SRCDIR
sys.path.insert(0, os.path.join(SRCDIR, "tools"))

import jwt  # noqa: E402  (python3-jwt, Debian's PyJWT)
from demo_issuer import DemoIssuer, SigningKey  # noqa: E402,F401  (re-exported for the tests)

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TT_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TT_JWT = "urn:ietf:params:oauth:token-type:jwt"
TT_REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
TT_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"

SCRIPD = os.path.join(BUILDDIR, "src", "scripd")
SCRIPCTL = os.path.join(BUILDDIR, "src", "scripctl")
PG_THROWAWAY = os.path.join(SRCDIR, "tools", "pg-throwaway.sh")

READY_TIMEOUT = 30      # seconds for scripd to answer /healthz 200
HTTP_TIMEOUT = 20       # seconds for one request to scripd
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    """(header, claims) of a compact JWS, unverified."""
    head, payload, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(payload))


def _pg_program(name):
    """A PostgreSQL program: Debian's versioned directory first (its /usr/bin/psql is a wrapper
    that reads every cluster's configuration, and trips over clusters others are creating)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name), key=lambda p: int(p.split("/")[4]), reverse=True)
    return found[0] if found else shutil.which(name)


def postgres_available():
    """Why PostgreSQL cannot be had here, or None when it can."""
    if not _pg_program("psql"):
        return "no psql (postgresql-client) installed"
    if not os.environ.get("SCRIP_TEST_PG_DSN") and not _pg_program("initdb"):
        return "no PostgreSQL server (initdb) installed and SCRIP_TEST_PG_DSN not set"
    return None


def schema_script(last):
    """SQL that brings an empty database to schema version `last` as `scripctl db migrate` of a build
    that stopped there would: schema scrip, its version table, and the files of sql/ up to `last`,
    each recorded."""
    script = ["CREATE SCHEMA scrip;",
              "CREATE TABLE scrip.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now());"]
    for path in sorted(glob.glob(os.path.join(SRCDIR, "sql", "[0-9][0-9][0-9]_*.sql"))):
        name = os.path.basename(path)
        version = int(name[:3])
        if version > last:
            break
        with open(path) as f:
            script.append(f.read())
        script.append("INSERT INTO scrip.schema_migrations VALUES (%d, '%s');" % (version, name))
    return "\n".join(script)


# --------------------------------------------------------------------------
# HTTP

class Response:
    """An HTTP response. Its repr() (what a failing assertion prints) masks tokens and secrets."""

    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.reason = reason  # the status line's reason phrase
        self.headers = headers  # lower-cased names; repeated headers joined with ", "
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        shown = ""
        if isinstance(self.json, dict):
            shown = " " + json.dumps({k: ("<redacted>" if k in ("access_token", "refresh_token", "client_secret")
                                          else v) for k, v in self.json.items()})
        return "<HTTP %d%s>" % (self.status, shown)


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT, source=None, tls=None):
    """source: the local address to send from (any of 127/8 is loopback on Linux).
    tls: an ssl.SSLContext for HTTPS, or None for plain HTTP."""
    source_address = (source, 0) if source else None
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls,
                                           source_address=source_address)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=source_address)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        merged = {}
        for name, value in resp.getheaders():
            key = name.lower()
            merged[key] = merged[key] + ", " + value if key in merged else value
        return Response(resp.status, merged, resp.read(), resp.reason)
    finally:
        conn.close()


def basic_auth(client_id, secret):
    # RFC 6749 §2.3.1: form-urlencode both parts before base64.
    raw = urllib.parse.quote(client_id, safe="") + ":" + urllib.parse.quote(secret, safe="")
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


# --------------------------------------------------------------------------
# PostgreSQL

class Database:
    """The test database: a throwaway cluster, or the developer's SCRIP_TEST_PG_DSN."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "pg")
        self.dsn = None
        self.owned = False
        self.psql = _pg_program("psql") or "psql"

    def start(self):
        external = os.environ.get("SCRIP_TEST_PG_DSN")
        if external:
            self.dsn = external
            # A cluster from `pg-throwaway.sh start` can still be halted and resumed.
            self.dir = os.environ.get("SCRIP_TEST_PG_DIR") or None
            return self
        out = subprocess.run([PG_THROWAWAY, "start", self.dir], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("pg-throwaway.sh start failed: " + out.stderr.strip()[-2000:])
        self.owned = True
        for line in out.stdout.splitlines():
            m = re.match(r"export SCRIP_TEST_PG_DSN=(\S+)$", line)
            if m:
                self.dsn = m.group(1)
        if not self.dsn:
            raise RuntimeError("pg-throwaway.sh printed no SCRIP_TEST_PG_DSN")
        return self

    @property
    def can_halt(self):
        return bool(self.dir) and os.path.exists(os.path.join(self.dir, "port"))

    def halt(self):
        subprocess.run([PG_THROWAWAY, "halt", self.dir], check=True, capture_output=True, timeout=120)

    def crash(self):
        """Stops the server as a power cut would: no shutdown checkpoint, clients cut mid-query."""
        subprocess.run([PG_THROWAWAY, "crash", self.dir], check=True, capture_output=True, timeout=120)

    def resume(self):
        subprocess.run([PG_THROWAWAY, "resume", self.dir], check=True, capture_output=True, timeout=120)

    def freeze(self):
        """Makes the server hang as a stuck host would: its processes stopped, its connections kept open."""
        subprocess.run([PG_THROWAWAY, "freeze", self.dir], check=True, capture_output=True, timeout=120)

    def thaw(self):
        subprocess.run([PG_THROWAWAY, "thaw", self.dir], check=True, capture_output=True, timeout=120)

    def server_log_path(self):
        """The throwaway cluster's log: DIR/cluster/postgres.log, or where DIR/cluster-path points."""
        pointer = os.path.join(self.dir, "cluster-path")
        root = open(pointer).read().strip() if os.path.exists(pointer) else os.path.join(self.dir, "cluster")
        return os.path.join(root, "postgres.log")

    def log_statements(self, line_prefix):
        """Makes the server log every statement of every session (scripd's included, reloaded into
        them), each line starting with line_prefix (log_line_prefix escapes: %p the backend, %a the
        application name). Only for a cluster of our own, whose log server_log_path() reads."""
        self.execute("ALTER SYSTEM SET log_statement = 'all'")
        self.execute("ALTER SYSTEM SET log_line_prefix = :'prefix'", prefix=line_prefix)
        self.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def log_statements_off(self):
        self.execute("ALTER SYSTEM RESET log_statement")
        self.execute("ALTER SYSTEM RESET log_line_prefix")
        self.execute("SELECT pg_reload_conf()")

    def stop(self):
        if self.owned:
            subprocess.run([PG_THROWAWAY, "stop", self.dir], capture_output=True, timeout=120)
            self.owned = False

    def query(self, sql, **params):
        """Rows of sql as a list of dicts (via json_agg, so arrays are lists and NULL is None).
        params become psql variables: write :'name' in sql for a quoted literal."""
        wrapped = "SELECT coalesce(json_agg(q), '[]'::json) FROM (%s) q;\n" % sql.rstrip().rstrip(";")
        return json.loads(self._psql(wrapped, params) or "[]")

    def scalar(self, sql, **params):
        rows = self.query(sql, **params)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError("expected one value from %r, got %d rows" % (sql, len(rows)))
        return next(iter(rows[0].values()))

    def execute(self, sql, **params):
        self._psql(sql.rstrip().rstrip(";") + ";\n", params)

    def _psql(self, script, params):
        cmd = [self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn]
        for name, value in params.items():
            cmd += ["-v", "%s=%s" % (name, value)]
        out = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("psql failed: " + out.stderr.strip())
        return out.stdout.strip()


# --------------------------------------------------------------------------
# scripd and scripctl

class Scripd:
    """One scripd process with its configuration file and captured stderr."""

    def __init__(self, workdir, dsn, upstreams, algorithm="ES256", kek=None, limits=None, server=None,
                 tls_ca=None, keys=None):
        self.workdir = workdir
        self.dsn = dsn
        self.upstreams = upstreams  # list of (name, {option: value})
        self.limits = dict(limits or {})  # [limits] options
        self.algorithm = algorithm
        self.server_options = dict(server or {})  # more [server] options (tls_certificate, tls_key...)
        self.keys_options = dict(keys or {})  # more [keys] options (publish_ahead...)
        # With TLS, the client context that trusts the test CA (tls_ca: its PEM file).
        self.tls = None
        if "tls_certificate" in self.server_options:
            self.tls = ssl.create_default_context(cafile=tls_ca)
        self.port = None
        self.proc = None
        self.redact = lambda text: text  # the Env replaces it with its own
        self.conf = os.path.join(workdir, "scripd.conf")
        self.log_path = os.path.join(workdir, "scripd.log")
        self.key_path = os.path.join(workdir, "encryption.key")
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write((kek or secrets.token_hex(32)) + "\n")
        self.write_config(free_port())

    @property
    def issuer(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def write_config(self, port):
        self.port = port
        lines = [
            "# written by tests/integration/harness.py",
            "[server]",
            "listen = 127.0.0.1:%d" % port,
            "issuer = %s" % self.issuer,
        ]
        if not self.tls:
            lines.append("plain_http = loopback")
        lines += ["%s = %s" % kv for kv in self.server_options.items()]
        lines += [
            "log_level = debug",
            "",
            "[database]",
            "conninfo = %s" % self.dsn,
            "",
            "[keys]",
            "algorithm = %s" % self.algorithm,
            "encryption_key = file:%s" % self.key_path,
        ]
        lines += ["%s = %s" % kv for kv in self.keys_options.items()]
        if self.limits:
            lines += ["", "[limits]"] + ["%s = %s" % (k, v) for k, v in self.limits.items()]
        for name, options in self.upstreams:
            lines += ["", "[upstream %s]" % name]
            lines += ["%s = %s" % (k, v) for k, v in options.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def scripctl(self, *args, check=False, timeout=60):
        out = subprocess.run([SCRIPCTL, "-c", self.conf] + list(args), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        for mark in SANITIZER_MARKS:
            if mark in out.stderr:
                raise AssertionError("scripctl %s: sanitizer report (%s):\n%s" % (" ".join(args[:2]), mark,
                                                                                 out.stderr[-3000:]))
        if check and out.returncode != 0:
            raise RuntimeError("scripctl %s failed (%d): %s" % (" ".join(args[:2]), out.returncode,
                                                                out.stderr.strip()[-1000:]))
        return out

    def start(self):
        for attempt in range(3):
            if attempt:
                self.write_config(free_port())  # the port was taken between the check and the bind
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([SCRIPD, "-c", self.conf], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
            log.close()
            if self.wait_ready():
                return self
            if self.proc.poll() is None:
                break
            if "in use" not in self.log_tail(5).lower():
                break
        self.stop()
        raise RuntimeError("scripd did not become ready (exit status %s); log tail:\n%s"
                           % (self.proc.returncode if self.proc else None, self.log_tail(40)))

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.get("/healthz", timeout=2).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        """Stops scripd with SIGTERM; a problem (no exit within 10 s, a crash) is returned as text."""
        if not self.proc or self.proc.poll() is not None:
            return None if not self.proc or self.proc.returncode >= 0 else \
                "scripd had died of signal %d" % -self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "scripd did not exit within 10 s of SIGTERM"
        if rc < 0 and rc != -signal.SIGTERM:
            return "scripd died of signal %d on SIGTERM" % -rc
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        """The last n lines, for failure messages, with every known token and secret masked."""
        return self.redact("\n".join(self.log_text().splitlines()[-n:]))

    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT, source=None):
        if not self.alive():
            raise AssertionError("scripd is not running (exit status %s); log tail:\n%s"
                                 % (self.proc.returncode if self.proc else None, self.log_tail()))
        return http_request(self.port, method, path, body, headers, timeout, source, self.tls)

    def get(self, path, timeout=HTTP_TIMEOUT):
        return http_request(self.port, "GET", path, timeout=timeout, tls=self.tls)

    def get_json(self, path):
        r = self.request("GET", path)
        if r.status != 200 or not isinstance(r.json, dict):
            raise AssertionError("GET %s: %r" % (path, r))
        return r.json


# --------------------------------------------------------------------------
# The per-module environment

class Client:
    def __init__(self, client_id, secret):
        self.id = client_id
        self.secret = secret

    def __repr__(self):
        return "<client %s>" % self.id


_LIVE_ENVS = []


class Env:
    """PostgreSQL + upstream issuers + scripd for one test module.

    upstreams: list of (name, DemoIssuer, {option: value}). An option value may
    be a callable taking the issuer (for example lambda i: i.jwks_uri); the
    special option jwks_file=True writes the issuer's key set to a file and
    does not start its server. The issuer option defaults to the issuer's URL.
    limits: {option: value} written as scripd's [limits] section."""

    def __init__(self, name, upstreams, algorithm="ES256", limits=None, server=None, tls_ca=None, keys=None):
        self.name = name
        self.upstream_specs = upstreams
        self.algorithm = algorithm
        self.limits = limits
        self.server_options = server    # more [server] options, for Scripd
        self.tls_ca = tls_ca            # the CA file clients trust when server sets tls_certificate
        self.keys_options = keys        # more [keys] options, for Scripd
        self.workdir = None
        self.db = None
        self.scripd = None
        self.issuers = {}
        self.sensitive = {}  # value -> what it is (never printed)
        self.failed = False

    # --- lifecycle ----------------------------------------------------
    def up(self):
        _LIVE_ENVS.append(self)
        self.workdir = tempfile.mkdtemp(prefix="scrip-it-%s-" % self.name)
        os.chmod(self.workdir, 0o755)
        self.db = Database(self.workdir).start()
        upstreams = []
        for name, issuer, options in self.upstream_specs:
            options = dict(options)
            if options.pop("jwks_file", False):
                path = os.path.join(self.workdir, "jwks-%s.json" % name)
                with open(path, "w") as f:
                    json.dump(issuer.jwks(), f)
                options["jwks_file"] = path
            else:
                issuer.start()
            self.issuers[name] = issuer
            resolved = {"issuer": issuer.issuer}
            resolved.update({k: (v(issuer) if callable(v) else v) for k, v in options.items()})
            upstreams.append((name, resolved))
        # A database that outlives this run keeps signing keys sealed under the key of the run
        # that made them: derive that key from the database's URI so every run can unseal them.
        kek = None if self.db.owned else hashlib.sha256(b"scrip-test-kek:" + self.db.dsn.encode()).hexdigest()
        self.scripd = Scripd(self.workdir, self.db.dsn, upstreams, self.algorithm, kek, self.limits,
                             self.server_options, self.tls_ca, self.keys_options)
        self.scripd.redact = self.redact
        self.scripd.scripctl("db", "migrate", check=True)
        self.scripd.start()
        return self

    def down(self):
        """Stops everything; returns a list of problems found on the way (sanitizer reports, a
        scripd that would not stop) for tearDownModule to raise."""
        problems = []
        if self in _LIVE_ENVS:
            _LIVE_ENVS.remove(self)
        if self.scripd:
            why = self.scripd.stop()
            if why:
                problems.append(why)
            log = self.scripd.log_text()
            for mark in SANITIZER_MARKS:
                if mark in log:
                    problems.append("scripd's log holds a sanitizer report (%s)" % mark)
                    break
            if problems or self.failed:
                sys.stdout.write("---- tail of scripd's log (%s) ----\n%s\n----\n"
                    % (self.name, self.scripd.log_tail(60)))
        for issuer in self.issuers.values():
            issuer.stop()
        if self.db:
            self.db.stop()
        if self.workdir and not os.environ.get("SCRIP_TEST_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir:
            sys.stdout.write("kept %s\n" % self.workdir)
        return problems

    # --- secrets bookkeeping ------------------------------------------
    def remember(self, value, what):
        """Marks value as something scripd must never log."""
        if value and len(value) >= 8:
            self.sensitive[value] = what
            if what.endswith("token") and value.count(".") == 2:
                # A partial log of a token is a leak too: its payload and signature are unique.
                _, payload, signature = value.split(".")
                self.sensitive[payload] = what + " payload"
                if len(signature) >= 16:
                    self.sensitive[signature] = what + " signature"
        return value

    def redact(self, text):
        for value, what in sorted(self.sensitive.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, "<%s>" % what)
        return text

    def leaks(self, text):
        """The kinds of remembered values found in text (never the values themselves)."""
        return sorted({what for value, what in self.sensitive.items() if value in text})

    # --- clients ------------------------------------------------------
    def new_client(self, scopes=("storage.read:/demo", "storage.create:/demo/output"),
                   audiences=("https://storage.example.org", "https://other.example.org"),
                   default_lifetime=1800, max_lifetime=3600, prefix="t", extra=(), vo=None):
        name = "%s-%s" % (prefix, secrets.token_hex(5))
        args = ["client", "create", name] + (["--vo", vo] if vo else [])
        for s in scopes:
            args += ["--scope", s]
        for a in audiences:
            args += ["--audience", a]
        args += list(extra)
        args += ["--default-lifetime", str(default_lifetime), "--max-lifetime", str(max_lifetime), "--json"]
        out = self.scripd.scripctl(*args, check=True)
        created = json.loads(out.stdout)
        if created.get("client_id") != name or not created.get("client_secret"):
            raise AssertionError("scripctl client create --json printed %s" % sorted(created))
        return Client(name, self.remember(created["client_secret"], "client secret"))

    # --- subject tokens -----------------------------------------------
    def subject_token(self, upstream="demo", claims=None, **kw):
        return self.remember(self.issuers[upstream].mint(claims, **kw), "subject token")

    # --- the token endpoint ------------------------------------------
    def token_request(self, params, client=None, auth="basic", headers=None, source=None):
        """POSTs params (list of pairs, duplicates allowed) to /token. auth: "basic", "post",
        "both" or None. source: the local address to send from."""
        params = list(params)
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
        if client and auth in ("basic", "both"):
            hdrs["Authorization"] = basic_auth(client.id, client.secret)
        if client and auth in ("post", "both"):
            params += [("client_id", client.id), ("client_secret", client.secret)]
        hdrs.update(headers or {})
        r = self.scripd.request("POST", "/token", urllib.parse.urlencode(params).encode("ascii"), hdrs,
                                source=source)
        if isinstance(r.json, dict) and r.json.get("access_token"):
            self.remember(r.json["access_token"], "issued token")
        return r

    def exchange(self, client, subject_token, auth="basic", scope=None, audiences=(), resources=(),
                 expires_in=None, job_id=None, subject_token_type=TT_ACCESS_TOKEN,
                 grant_type=GRANT_TOKEN_EXCHANGE, extra=(), source=None):
        params = [("grant_type", grant_type)]
        if subject_token is not None:
            params.append(("subject_token", subject_token))
        if subject_token_type is not None:
            params.append(("subject_token_type", subject_token_type))
        if scope is not None:
            params.append(("scope", scope))
        params += [("audience", a) for a in audiences]
        params += [("resource", a) for a in resources]
        if expires_in is not None:
            params.append(("expires_in", str(expires_in)))
        if job_id is not None:
            params.append(("job_id", job_id))
        params += list(extra)
        return self.token_request(params, client, auth, source=source)

    # --- what scripd publishes ----------------------------------------
    def verify_issued(self, token, audience=None):
        """Verifies token with PyJWT (not cjose) against the key scripd's /jwks publishes for its kid;
        returns (header, claims)."""
        header = jwt.get_unverified_header(token)
        keys = [k for k in self.scripd.get_json("/jwks").get("keys", []) if k.get("kid") == header.get("kid")]
        if len(keys) != 1:
            raise AssertionError("scripd's /jwks has %d keys with the token's kid" % len(keys))
        key = jwt.PyJWK(keys[0]).key
        claims = jwt.decode(token, key, algorithms=[self.algorithm], audience=audience, issuer=self.scripd.issuer,
                            options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
                                     "verify_aud": audience is not None}, leeway=5)
        return header, claims

    # --- the database -------------------------------------------------
    def audit_mark(self):
        """Where the audit trail and the issued tokens stand now (tests run one at a time)."""
        return self.db.query("SELECT (SELECT coalesce(max(id), 0) FROM scrip.audit_events) AS audit,"
                             " (SELECT count(*) FROM scrip.issued_tokens) AS issued")[0]

    def audit_since(self, mark):
        return self.db.query("SELECT * FROM scrip.audit_events WHERE id > :'mark' ORDER BY id", mark=mark["audit"])

    def issued_since(self, mark):
        return self.db.scalar("SELECT count(*) AS n FROM scrip.issued_tokens") - mark["issued"]

    def issued_rows(self, client_id=None, jti=None):
        return self.db.query(
            "SELECT *, extract(epoch FROM issued_at)::bigint AS iat, extract(epoch FROM expires_at)::bigint AS exp"
            " FROM scrip.issued_tokens WHERE (:'cid' = '' OR client_id = :'cid') AND (:'jti' = '' OR jti = :'jti')"
            " ORDER BY issued_at", cid=client_id or "", jti=jti or "")


def _cleanup_live_envs():
    for env in list(_LIVE_ENVS):
        try:
            env.down()
        except Exception as e:  # best effort at exit
            sys.stderr.write("cleanup of %s failed: %s\n" % (env.name, e))


atexit.register(_cleanup_live_envs)


class ScripTestCase(unittest.TestCase):
    """Base class: self.env is the module's Env (set by the module's setUpModule)."""

    env = None
    maxDiff = None

    def run(self, result=None):
        failures_before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures_before and self.env:
            self.env.failed = True
        return out

    def lock_issued_tokens(self, then=""):
        """A psql session that holds an EXCLUSIVE lock on scrip.issued_tokens (every insert waits for it),
        then runs then; returned once the lock is held. Ends when its stdin is closed."""
        locker = subprocess.Popen([self.env.db.psql, "-X", "-q", "-d", self.env.db.dsn], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        locker.stdin.write("BEGIN; LOCK TABLE scrip.issued_tokens IN EXCLUSIVE MODE;%s\n" % then)
        locker.stdin.flush()
        deadline = time.monotonic() + 10
        while not self.env.db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                     " WHERE c.relname = 'issued_tokens' AND l.mode = 'ExclusiveLock'"
                                     " AND l.granted"):
            self.assertLess(time.monotonic(), deadline, "the lock was never taken")
            time.sleep(0.02)
        return locker

    def assertOAuthError(self, r, status, error, client=None, subject_token=None):
        """r is an RFC 6749 §5.2 error: status, JSON {error, error_description}, echoing nothing."""
        self.assertEqual(r.status, status, "expected %d %s, got %r" % (status, error, r))
        self.assertIn("application/json", r.header("content-type") or "")
        self.assertIsInstance(r.json, dict, "error body is not a JSON object")
        self.assertEqual(r.json.get("error"), error, "got %r" % r)
        self.assertNotIn("access_token", r.json)
        desc = r.json.get("error_description")
        if desc is not None:
            self.assertIsInstance(desc, str)
        body = r.body.decode("utf-8", "replace")
        self.assertEqual(self.env.leaks(body), [], "the error response echoes a token or secret")
        if status == 401:
            self.assertTrue(r.header("www-authenticate"), "401 without WWW-Authenticate")
        if status == 503:
            self.assertTrue(r.header("retry-after"), "503 without Retry-After")

    def assertDenied(self, mark, error, client_id=None, reason=None):
        """Exactly one audit row since mark: a denied token_exchange with this error; nothing issued."""
        rows = self.env.audit_since(mark)
        self.assertEqual(len(rows), 1, "expected exactly one audit row, got %d" % len(rows))
        row = rows[0]
        self.assertEqual(row["event"], "token_exchange")
        self.assertEqual(row["outcome"], "denied")
        self.assertEqual(row["error"], error)
        self.assertIsNone(row["jti"])
        self.assertRegex(row["reason"] or "", r"^[a-z0-9]+(_[a-z0-9]+)*$", "reason is not snake_case")
        if reason:
            self.assertEqual(row["reason"], reason)
        if client_id:
            self.assertEqual(row["client_id"], client_id)
        self.assertEqual(self.env.issued_since(mark), 0, "a denial left an issued_tokens row")
        for column in ("description", "requested_scope", "subject"):
            self.assertEqual(self.env.leaks(str(row[column] or "")), [], "audit %s holds a token or secret" % column)
        return row

    def assertLogClean(self):
        log = self.env.scripd.log_text()
        self.assertTrue(self.env.sensitive, "the module handled no token or secret: nothing was checked")
        self.assertEqual(self.env.leaks(log), [], "scripd's log contains these (values not shown)")


# --------------------------------------------------------------------------
# The runner

class CountingResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0
        self.failed_modules = set()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def addError(self, test, err):
        super().addError(test, err)
        desc = str(test)
        m = re.match(r"setUpModule \((\w+)\)", desc)
        if m:
            self.failed_modules.add(m.group(1))


def _count_tests(suite):
    if isinstance(suite, unittest.TestCase):
        return 1
    return sum(_count_tests(t) for t in suite)


def _start_watchdog(seconds):
    def fire():
        sys.stdout.write("\nintegration: watchdog: the suite ran longer than %d s; stopping\n" % seconds)
        sys.stdout.flush()
        _cleanup_live_envs()
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(argv):
    sys.stdout.reconfigure(line_buffering=True)
    names = argv or sorted(f[:-3] for f in os.listdir(HERE) if re.match(r"test_\w+\.py$", f))
    problems = []
    for program in (SCRIPD, SCRIPCTL):
        if not os.access(program, os.X_OK):
            problems.append("%s is not built" % program)
    why = postgres_available()
    if why:
        problems.append(why)
    if problems:
        for p in problems:
            print("integration: " + p)
        if in_ci() or not why:
            print("0 passed, 1 failed")
            return 1
        print("integration: skipped (outside CI a missing PostgreSQL is a skip; with CI=true it fails)")
        return 77

    signal.signal(signal.SIGTERM, lambda *_: (_cleanup_live_envs(), os._exit(1)))
    _start_watchdog(int(os.environ.get("SCRIP_TEST_TIMEOUT", "1200")))
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    per_module = {}
    for name in names:
        module_suite = loader.loadTestsFromName(name)
        per_module[name] = _count_tests(module_suite)
        suite.addTest(module_suite)
    started = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult)
    result = runner.run(suite)
    not_run = sum(per_module.get(m, 0) for m in result.failed_modules)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses) + not_run
    skipped = len(result.skipped)
    print("integration: %d modules in %.0f s%s" % (len(names), time.monotonic() - started,
                                                  "; %d tests not run because their module failed to start"
                                                  % not_run if not_run else ""))
    print("%d passed, %d failed%s" % (result.passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 0 if failed == 0 and result.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
