"""test_hostile_requests.py — the hostile request envelope of POST /token,
against a real scripd and PostgreSQL (SECURITY-CATALOGUE §3.4-3.6):
Content-Type, form encoding, repeated and empty parameters, client
authentication headers, job_id, the parameter/audience/scope caps, scope
paths, methods, the body-size cap and URL parameters. The subject token is
always a good one, so each case fails (or passes) on the envelope alone.
Each refusal: exact status and RFC 6749 error, a description naming the
check and echoing nothing, nothing issued, exactly one denied audit row (none
for what the HTTP layer refuses: 405, 413). One test method per case (see
CASES); the module's last test checks scripd's log."""

import base64
import hashlib
import json
import re
import secrets
import unittest
import urllib.parse

from harness import GRANT_TOKEN_EXCHANGE, TT_ACCESS_TOKEN, DemoIssuer, Env, ScripTestCase, basic_auth
from hostile import FORM, Granted, HostileCase, Refused, add_cases, form_body, random_sub

STORAGE = "https://storage.example.org"
OTHER = "https://other.example.org"
BODY_CAP = 64 * 1024
ENV = None


def setUpModule():
    global ENV
    ENV = Env("hostile-requests", [("demo", DemoIssuer(audience="scrip"), {
        "audience": "scrip", "algorithms": "ES256 RS256", "clock_skew": 60})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class Req:
    """One request: body (pairs, or encoded str/bytes), extra headers, the client sent as Basic
    ("default", "other", "dironly" or None), Content-Type (None: no header), method, target."""

    def __init__(self, body=b"", headers=(), client="default", content_type=FORM, method="POST", target="/token",
                 echo=()):
        self.body = body
        self.headers = list(headers)
        self.client = client
        self.content_type = content_type
        self.method = method
        self.target = target
        self.echo = list(echo)  # more values the answer must not echo (Authorization header values)


class MethodRefused:
    """405 with Allow: POST, written by the HTTP layer before any audit."""


# --------------------------------------------------------------------------
# Building requests. Each builder takes the test (t) and returns a Req.

def pairs(t, extra=(), drop=(), **replace):
    """A good request for a fresh subject token: extra pairs appended, names in drop left out, a
    keyword replacing one parameter's value."""
    base = {"grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": t.subject(),
            "subject_token_type": TT_ACCESS_TOKEN, "scope": "storage.read:/demo"}
    base.update(replace)
    return [(k, v) for k, v in base.items() if k not in drop] + list(extra)


def good(extra=(), **replace):
    return lambda t: Req(pairs(t, extra, **replace))


def raw_tail(tail):
    """A good request followed by raw form text (bytes, not re-encoded)."""
    return lambda t: Req(form_body(pairs(t)) + tail)


def content_type(value, encode=None):
    def build(t):
        params = pairs(t)
        body = encode(params) if encode else form_body(params)
        return Req(body, content_type=value)
    return build


def as_json(params):
    return json.dumps(dict(params)).encode()


def as_multipart(params):
    boundary = "hostile" + secrets.token_hex(8)
    parts = ["--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v) for k, v in params]
    return ("".join(parts) + "--%s--\r\n" % boundary).encode("utf-8")


MULTIPART = "multipart/form-data; boundary=hostile"  # the body's own boundary differs: refused either way


def duplicated(name, value):
    """name twice: the good request's own value (or value(t) when it has none) and value(t)."""
    def build(t):
        if name in ("client_id", "client_secret"):
            c = t.client
            body = pairs(t, [("client_id", c.id), ("client_secret", c.secret), (name, value(t))])
            return Req(body, client=None)
        body = pairs(t)
        if name not in dict(body):
            body.append((name, value(t)))
        body.append((name, value(t)))
        assert [k for k, _ in body].count(name) == 2
        return Req(body)
    return build


def post_auth(extra=()):
    def build(t):
        return Req(pairs(t, [("client_id", t.client.id), ("client_secret", t.client.secret)] + list(extra)),
                   client=None)
    return build


def renamed_grant_type(also_plain):
    """grant_type written as grant%5Ftype (percent-encoded name); also_plain adds the plain one too."""
    def build(t):
        body = form_body(pairs(t, drop=("grant_type",) if not also_plain else ()))
        return Req(body + b"&grant%5Ftype=" + urllib.parse.quote(GRANT_TOKEN_EXCHANGE, safe="").encode())
    return build


def authorization(values, body_extra=()):
    """Authorization headers of exactly these values, built from the test (t)."""
    def build(t):
        hdrs = [("Authorization", v) for v in values(t)]
        return Req(pairs(t, body_extra(t) if callable(body_extra) else body_extra), headers=hdrs, client=None,
                   echo=[v for _, v in hdrs])
    return build


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def fillers(n):
    return [("x%02d" % i, "1") for i in range(n)]


def scopes(n):
    return " ".join("storage.read:/demo/s%d" % i for i in range(1, n + 1))


def sized_body(n_bytes):
    """A good request padded with an unknown parameter to exactly n_bytes."""
    def build(t):
        body = form_body(pairs(t, [("pad", "")]))
        return Req(body + b"x" * (n_bytes - len(body)))
    return build


def method(name):
    def build(t):
        return Req(form_body(pairs(t)) if name in ("PUT", "DELETE") else b"", method=name,
                   content_type=FORM if name in ("PUT", "DELETE") else None)
    return build


R = Refused
IR = "invalid_request"
IC = "invalid_client"
IS = "invalid_scope"
CT_WORDS = ["application/x-www-form-urlencoded"]
ALL_SCOPES = ["storage.read:/demo", "storage.create:/demo/output"]

CASES = [
    # --- Content-Type ----------------------------------------------------
    ("ct_missing", "no Content-Type", content_type(None), R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_json", "application/json with a JSON body", content_type("application/json", as_json),
     R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_text_plain", "text/plain with a form body", content_type("text/plain"),
     R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_multipart", "multipart/form-data", content_type(MULTIPART, as_multipart),
     R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_form_prefix", "application/x-www-form-urlencodedx (the right type as a prefix)",
     content_type(FORM + "x"), R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_charset_utf8", "application/x-www-form-urlencoded; charset=UTF-8: accepted",
     content_type(FORM + "; charset=UTF-8"), Granted()),
    ("ct_upper_case", "APPLICATION/X-WWW-FORM-URLENCODED: accepted", content_type(FORM.upper()), Granted()),
    ("ct_trailing_word", "the form type, a space and a word", content_type(FORM + " garbage"),
     R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_two_types", "the form type, then a comma and another type", content_type(FORM + " , application/json"),
     R(400, IR, CT_WORDS, "bad_content_type")),
    ("ct_tab_before_parameter", "a tab before ; charset (RFC 9110 OWS): accepted",
     content_type(FORM + "\t; charset=utf-8"), Granted()),
    # --- bytes in values -------------------------------------------------
    ("value_pct_ff", "job_id with %FF (not UTF-8)", raw_tail(b"&job_id=abc%FF"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_overlong_c0af", "job_id with the overlong '/' %C0%AF", raw_tail(b"&job_id=abc%C0%AF"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_surrogate_eda080", "job_id with the lone surrogate %ED%A0%80", raw_tail(b"&job_id=abc%ED%A0%80"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_raw_ff", "job_id with a raw 0xFF byte in the body", raw_tail(b"&job_id=abc\xff"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_pct00", "job_id with %00", raw_tail(b"&job_id=abc%00def"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_pct0a", "job_id with %0A", raw_tail(b"&job_id=abc%0Adef"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_pctG1", "job_id with %G1", raw_tail(b"&job_id=abc%G1"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    ("value_trailing_pct", "job_id ending in '%'", raw_tail(b"&job_id=abc%"),
     R(400, IR, ["encoded", "job_id"], "form_malformed")),
    # --- repeated parameters -----------------------------------------------
    ("dup_grant_type", "grant_type twice (same value)", duplicated("grant_type", lambda t: GRANT_TOKEN_EXCHANGE),
     R(400, IR, ["repeated", "grant_type"], "form_duplicate")),
    ("dup_subject_token", "subject_token twice (two good tokens)", duplicated("subject_token", lambda t: t.subject()),
     R(400, IR, ["repeated", "subject_token"], "form_duplicate")),
    ("dup_scope", "scope twice", duplicated("scope", lambda t: "storage.read:/demo"),
     R(400, IR, ["repeated", "scope"], "form_duplicate")),
    ("dup_client_id", "client_id twice (client_secret_post)", duplicated("client_id", lambda t: t.other.id),
     R(400, IR, ["repeated", "client_id"], "form_duplicate")),
    ("dup_client_secret", "client_secret twice (client_secret_post)",
     duplicated("client_secret", lambda t: t.other.secret),
     R(400, IR, ["repeated", "client_secret"], "form_duplicate")),
    ("dup_expires_in", "expires_in twice", duplicated("expires_in", lambda t: "60"),
     R(400, IR, ["repeated", "expires_in"], "form_duplicate")),
    ("dup_job_id", "job_id twice", duplicated("job_id", lambda t: "job-" + secrets.token_hex(3)),
     R(400, IR, ["repeated", "job_id"], "form_duplicate")),
    ("audience_repeated", "audience twice: accepted (RFC 8693)",
     good([("audience", STORAGE), ("audience", OTHER)]), Granted(audiences=[STORAGE, OTHER])),
    ("resource_repeated", "resource twice: accepted (RFC 8693)",
     good([("resource", STORAGE), ("resource", OTHER)]), Granted(audiences=[STORAGE, OTHER])),
    # --- empty values and encoded names ------------------------------------
    ("scope_empty", "scope= counts as absent: every allowed scope is granted", good(scope=""),
     Granted(scope=ALL_SCOPES)),
    ("subject_token_empty", "subject_token= counts as absent", good(subject_token=""),
     R(400, IR, ["subject_token", "missing"], "missing_subject_token")),
    ("name_pct_encoded", "grant%5Ftype is grant_type: accepted", renamed_grant_type(False), Granted()),
    ("name_pct_encoded_repeats", "grant_type and grant%5Ftype together", renamed_grant_type(True),
     R(400, IR, ["repeated", "grant_type"], "form_duplicate")),
    # --- client authentication ---------------------------------------------
    ("basic_and_body_client_id_differ", "Basic of one client, client_id of another in the body",
     lambda t: Req(pairs(t, [("client_id", t.other.id)])),
     R(400, IR, ["client_id"], "client_id_mismatch", client="default")),
    ("basic_bad_base64", "Basic with bad base64", authorization(lambda t: ["Basic !!" + b64(t.client.id)[2:]]),
     R(401, IC, ["base64"], "client_auth_malformed")),
    ("basic_no_colon", "Basic without ':'", authorization(lambda t: ["Basic " + b64(t.client.id + t.client.secret)]),
     R(401, IC, ["':'"], "client_auth_malformed")),
    ("basic_empty_id", "Basic with an empty client id",
     authorization(lambda t: ["Basic " + b64(":" + t.client.secret)]),
     R(401, IC, ["empty", "client id"], "client_auth_malformed")),
    ("basic_lower_case_scheme", "'basic' in lower case: accepted",
     authorization(lambda t: ["basic " + b64(t.client.id + ":" + t.client.secret)]), Granted()),
    ("bearer_at_token", "Authorization: Bearer xyz", authorization(lambda t: ["Bearer xyz"]),
     R(401, IC, ["Basic"], "client_auth_malformed")),
    ("two_authorization_headers", "two Authorization headers (Basic of two clients)",
     authorization(lambda t: [basic_auth(t.client.id, t.client.secret), basic_auth(t.other.id, t.other.secret)]),
     R(400, IR, ["Authorization"])),
    # --- job_id ------------------------------------------------------------
    ("job_id_129", "job_id of 129 bytes", good([("job_id", "j" * 129)]), R(400, IR, ["job_id"], "bad_job_id")),
    ("job_id_space", "job_id with a space", good([("job_id", "job 1")]), R(400, IR, ["job_id"], "bad_job_id")),
    ("job_id_control", "job_id with a control byte (0x01)", good([("job_id", "job\x011")]),
     R(400, IR, ["job_id"], "form_malformed")),
    ("job_id_non_ascii", "job_id with a non-ASCII letter", good([("job_id", "j\u00f6b-1")]),
     R(400, IR, ["job_id"], "bad_job_id")),
    ("job_id_128_accepted", "job_id of 128 bytes: accepted", good([("job_id", "j" * 128)]), Granted()),
    # --- caps ----------------------------------------------------------------
    ("params_64_accepted", "64 parameters (60 unknown ones): accepted", good(fillers(60)), Granted()),
    ("params_65", "65 parameters", good(fillers(61)), R(400, IR, ["64", "parameters"], "form_too_many")),
    ("audiences_16_accepted", "16 audience values: accepted",
     good([("audience", (STORAGE, OTHER)[i % 2]) for i in range(16)]), Granted(audiences=[STORAGE, OTHER])),
    ("audiences_17", "17 audience values", good([("audience", (STORAGE, OTHER)[i % 2]) for i in range(17)]),
     R(400, IR, ["16", "audience"], "too_many_audiences")),
    ("scopes_64_accepted", "64 scopes: accepted", good(scope=scopes(64)), Granted(scope=scopes(64).split(" "))),
    ("scopes_65", "65 scopes", good(scope=scopes(65)), R(400, IS, ["64", "scope"], "too_many_scopes")),
    # --- scope paths ---------------------------------------------------------
    ("scope_dotdot", "storage.read:/demo/../etc", good(scope="storage.read:/demo/../etc"),
     R(400, IS, ["'..'"], "bad_scope")),
    ("scope_dot_segment", "storage.read:/demo/./data", good(scope="storage.read:/demo/./data"),
     R(400, IS, ["'.' segment"], "bad_scope")),
    ("scope_double_slash", "storage.read:/demo//data", good(scope="storage.read:/demo//data"),
     R(400, IS, ["'//'"], "bad_scope")),
    ("scope_pct2e2e", "the text %2e%2e in a path", good(scope="storage.read:/demo/%2e%2e/etc"),
     R(400, IS, ["'%'"], "bad_scope")),
    ("scope_pct2F", "the text %2F in a path", good(scope="storage.read:/demo%2F..%2Fetc"),
     R(400, IS, ["'%'"], "bad_scope")),
    ("scope_form_encoded_dotdot", "%2e%2e in the body, decoded by the form into '..'",
     lambda t: Req(form_body(pairs(t, drop=("scope",))) + b"&scope=storage.read%3A%2Fdemo%2F%2e%2e%2Fetc"),
     R(400, IS, ["'..'"], "bad_scope")),
    # A NUL never reaches the scope parser: the form decoder refuses control bytes in any value.
    ("scope_nul", "a NUL in a path", good(scope="storage.read:/demo\x00/etc"),
     R(400, IR, ["encoded", "scope"], "form_malformed")),
    ("scope_trailing_slash", "storage.read:/demo/data/ (directory-only) under storage.read:/demo: granted",
     good(scope="storage.read:/demo/data/"), Granted(scope=["storage.read:/demo/data/"])),
    ("scope_dironly_policy_plain_request", "policy storage.read:/demo/ does not cover storage.read:/demo",
     lambda t: Req(pairs(t), client="dironly"), R(400, IS, ["not allowed"], "scope_not_allowed", client="dironly")),
    ("scope_fullwidth_solidus", "a fullwidth solidus U+FF0F in a path", good(scope="storage.read:/demo\uff0fetc"),
     R(400, IS, ["non-ASCII"], "bad_scope")),
    ("scope_cyrillic_a", "a Cyrillic a in a path", good(scope="storage.read:/demo/d\u0430ta"),
     R(400, IS, ["non-ASCII"], "bad_scope")),
    ("scope_verb_case", "Storage.Read:/demo", good(scope="Storage.Read:/demo"),
     R(400, IS, ["unknown scope"], "bad_scope")),
    # --- methods, size, URL --------------------------------------------------
    ("method_get", "GET /token", method("GET"), MethodRefused()),
    ("method_put", "PUT /token with a good form", method("PUT"), MethodRefused()),
    # evhttp reads no body for a DELETE: refused by the HTTP layer as a request whose end is ambiguous.
    ("method_delete", "DELETE /token with a good form", method("DELETE"), R(400, None, audited=False)),
    ("method_head", "HEAD /token", method("HEAD"), MethodRefused()),
    ("body_exactly_cap", "a good body of exactly 64 KiB: accepted", sized_body(BODY_CAP), Granted()),
    ("body_cap_plus_1", "a good body of 64 KiB + 1", sized_body(BODY_CAP + 1), R(413, None, audited=False)),
    ("query_string", "POST /token?scope=... with a good body",
     lambda t: Req(pairs(t), target="/token?scope=storage.read%3A%2Fdemo"), R(400, IR, ["URL"], "query_parameters")),
    ("query_string_empty_value", "POST /token?x with a good body",
     lambda t: Req(pairs(t), target="/token?x"), R(400, IR, ["URL"], "query_parameters")),
]


def run_case(self, build, expect):
    req = build(self)
    client = {"default": self.client, "other": self.other, "dironly": self.dironly, None: None}[req.client]
    mark = self.env.audit_mark()
    r = self.post(req.body, headers=req.headers, client=client, content_type=req.content_type, target=req.target,
                  method=req.method)
    if isinstance(expect, Granted):
        self.assertGrantedOnce(r, mark, client or self.client, scope=expect.scope, audiences=expect.audiences)
    elif isinstance(expect, MethodRefused):
        self.assertEqual(r.status, 405, "expected 405, got %r" % r)
        self.assertEqual(r.header("allow"), "POST")
        if req.method != "HEAD":
            self.assertOAuthError(r, 405, IR)
            self.assertDescription(r, ["method"])
        self.assertEqual(self.env.issued_since(mark), 0)
        self.assertEqual(len(self.env.audit_since(mark)), 0, "a 405 was audited")
    elif not expect.audited:
        self.assertHttpRefusal(r, mark, expect.status)
    else:
        named = {"default": self.client, "dironly": self.dironly}.get(expect.client)
        row = self.assertRefusal(r, mark, expect.status, expect.error, expect.words, reason=expect.reason,
                                 client_id=named.id if named else None, echo=req.echo)
        self.assertNoEcho(row["requested_scope"], req.echo, "the audit row's requested_scope")


class HostileRequestTest(HostileCase):
    """One test per entry of CASES (numbered in table order)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = cls.env.new_client()
        cls.dironly = cls.env.new_client(scopes=("storage.read:/demo/",))

    def subject(self):
        return self.env.subject_token(claims={"sub": random_sub()})


add_cases(HostileRequestTest, CASES, run_case)


class LogInjectionTest(ScripTestCase):
    def test_presented_client_id_cannot_forge_log_fields(self):
        """A client_id of the wrong syntax is logged as invalid- and a hash: its text could pass for other
        fields of a line (remote=, error=) in the text log format."""
        forged = "x remote=203.0.113.7 error=none"
        before = len(self.env.scripd.log_text())
        for path in ("/token", "/introspect", "/revoke"):
            params = [("client_id", forged), ("client_secret", "y"), ("token", "t")]
            if path == "/token":
                params = [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", "t"),
                          ("subject_token_type", TT_ACCESS_TOKEN), ("client_id", forged), ("client_secret", "y")]
            r = self.env.scripd.request("POST", path, urllib.parse.urlencode(params).encode("ascii"),
                                        {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(r.status, 401, (path, r.body))
        log = self.env.scripd.log_text()[before:]
        self.assertNotIn("remote=203.0.113.7", log)
        self.assertRegex(log, r"denied client=invalid-[0-9a-f]{16} ")


class SwappedCredentialsTest(ScripTestCase):
    def test_secret_sent_as_client_id_is_never_logged_nor_recorded(self):
        """curl -u "$SECRET:$ID": the secret has the client_id alphabet. As the id of no client it is
        logged and audited as a stand-in (unknown- and a hash prefix), the same for each attempt."""
        client = self.env.new_client()
        before = len(self.env.scripd.log_text())
        mark = self.env.audit_mark()
        for path in ("/token", "/introspect", "/revoke", "/token"):
            params = [("token", "t")]
            if path == "/token":
                params = [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", "t"),
                          ("subject_token_type", TT_ACCESS_TOKEN)]
            r = self.env.scripd.request("POST", path, urllib.parse.urlencode(params).encode("ascii"),
                                        {"Content-Type": "application/x-www-form-urlencoded",
                                         "Authorization": basic_auth(client.secret, client.id)})
            self.assertEqual(r.status, 401, (path, r.body))
        # Swapped and sent both ways: refused before any lookup, still not shown.
        r = self.env.scripd.request("POST", "/revoke", urllib.parse.urlencode(
            [("token", "t"), ("client_secret", client.id)]).encode("ascii"),
            {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic_auth(client.secret, client.id)})
        self.assertEqual(r.status, 400, r.body)
        log = self.env.scripd.log_text()[before:]
        self.assertNotIn(client.secret, log)
        shown = set(re.findall(r"client=(unknown-[0-9a-f]{16})", log))
        self.assertEqual(len(shown), 1, "one stand-in for the one secret: %r" % shown)
        rows = self.env.audit_since(mark)
        self.assertEqual(len(rows), 5)
        self.assertEqual({row["client_id"] for row in rows}, shown)
        self.assertNotIn(client.secret, json.dumps(rows, default=str))
        # The secret inside an id of the wrong syntax ("id:secret", the secret and a space, padded past
        # 64 characters): refused before any lookup, recorded only as invalid- and a hash.
        mark = self.env.audit_mark()
        before = len(self.env.scripd.log_text())
        for presented in (client.id + ":" + client.secret, client.secret + " ", client.secret + ".x" * 20):
            params = [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", "t"),
                      ("subject_token_type", TT_ACCESS_TOKEN), ("client_id", presented), ("client_secret", "y")]
            r = self.env.scripd.request("POST", "/token", urllib.parse.urlencode(params).encode("ascii"),
                                        {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(r.status, 401, r.body)
        rows = self.env.audit_since(mark)
        self.assertEqual(len(rows), 3)
        for row in rows:
            self.assertRegex(row["client_id"], r"^invalid-[0-9a-f]{16}$")
        self.assertNotIn(client.secret, json.dumps(rows, default=str))
        self.assertNotIn(client.secret, self.env.scripd.log_text()[before:])

    def test_a_long_client_id_of_a_real_client_is_kept_once_looked_up(self):
        """A client named with 32 characters or more is recorded by its own id once its row was read
        (its wrong secret here), and by its stand-in only when refused before (a malformed request)."""
        name = "pilot-factory-" + "x" * 30
        created = json.loads(self.env.scripd.scripctl("client", "create", name, "--scope", "storage.read:/demo",
                                                      "--audience", "https://storage.example.org", "--json",
                                                      check=True).stdout)
        self.env.remember(created["client_secret"], "client secret")
        mark = self.env.audit_mark()
        params = [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", "t"), ("subject_token_type", TT_ACCESS_TOKEN)]
        r = self.env.scripd.request("POST", "/token", urllib.parse.urlencode(params).encode("ascii"),
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(name, "wrong")})
        self.assertEqual(r.status, 401, r.body)
        r = self.env.scripd.request("POST", "/token?x=1", urllib.parse.urlencode(params).encode("ascii"),
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(name, "wrong")})
        self.assertEqual(r.status, 400, r.body)
        ids = [row["client_id"] for row in self.env.audit_since(mark)]
        stand_in = "unknown-" + hashlib.sha256(name.encode()).hexdigest()[:16]
        self.assertEqual(ids, [name, stand_in])


class ZLogHygieneTest(ScripTestCase):
    """Runs last (classes run by name): scripd's log holds no token or secret."""

    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
