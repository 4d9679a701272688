"""test_signing_rs256.py — scripd configured with `[keys] algorithm = RS256`:
its tokens are RS256, published as RSA keys, and verify with PyJWT."""

import os
import unittest

from harness import DemoIssuer, Env, ScripTestCase

ENV = None


def setUpModule():
    global ENV
    if os.environ.get("SCRIP_TEST_PG_DSN"):
        # The algorithm applies to keys scripd creates, and a shared database already has one.
        raise unittest.SkipTest("needs a database of its own (SCRIP_TEST_PG_DSN is set)")
    ENV = Env("rs256", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})], algorithm="RS256")
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class RS256SigningTest(ScripTestCase):
    def test_issued_token_is_rs256(self):
        client = self.env.new_client()
        for alg in ("ES256", "RS256"):
            with self.subTest(subject_alg=alg):
                token = self.env.subject_token(claims={"sub": "bob"}, alg=alg)
                r = self.env.exchange(client, token, scope="storage.read:/demo",
                                      audiences=["https://storage.example.org"])
                self.assertEqual(r.status, 200, "%r" % r)
                header, claims = self.env.verify_issued(r.json["access_token"], audience="https://storage.example.org")
                self.assertEqual(header["alg"], "RS256")
                self.assertEqual(header["typ"], "at+jwt")
                self.assertEqual(claims["sub"], "bob")
                self.assertEqual(claims["wlcg.ver"], "1.0")

    def test_jwks_has_rsa_keys(self):
        keys = self.env.scripd.get_json("/jwks")["keys"]
        self.assertTrue(keys)
        for key in keys:
            self.assertEqual((key.get("kty"), key.get("alg")), ("RSA", "RS256"))
            # 2048 bits exactly (342 base64url characters): the size
            # OpenSSL 3.0 signs fastest; 3072 bits cost six times the CPU.
            self.assertEqual(len(key.get("n", "")), 342, "the RSA modulus is not 2048 bits")
            self.assertNotIn("d", key)


class ZLogHygieneTest(ScripTestCase):
    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
