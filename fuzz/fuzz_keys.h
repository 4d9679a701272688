/* fuzz_keys.h — written by fuzz/gen-seeds.py, do not edit: the public test keys
 * (EC P-256 kid "ec", RSA-2048 kid "rsa") that the jwt and jwks harnesses verify
 * with, one good token signed by each, and the policy the seeds were made for. */
#ifndef SCRIP_FUZZ_KEYS_H
#define SCRIP_FUZZ_KEYS_H

#define FUZZ_ISSUER "https://issuer.example/"
#define FUZZ_AUDIENCE "https://scrip.example"
#define FUZZ_NOW 1700000000LL
#define FUZZ_SKEW 60

#define FUZZ_JWKS \
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"x\":\"NEGEmmz0J78pIK_dcNClD5ujz2usfdoJjoSAtgLN1Mo\",\"y\":" \
	"\"JfwOGCSinAsLOvFoRXD_mRzLn4HD2GGdIXP3gXPfrSw\"},{\"kty\":\"RSA\",\"kid\":\"rsa\",\"n\":\"nbvMDoqajQpGznMYEisXg49" \
	"SSIl2gvFX1xVKpwlAqbdAUTCImBlCSyEg-3zcGcPDRPehj1-0uFChO2g-vyDCFEg-ijNSA8q9GlrHfNV9NJNeRDBKARS9IhhGFXp" \
	"AMc0xoKgyrDiB2L7vhrtci7FugXGOBJRv_K6eXK8iBTZK4oX2pAPXIY94oBfeYmASJ-5g7SLIsNI_vxthO_ZS43cemijVBU7UmtW" \
	"vo62akQd4iL05EkvqHo4GG7LYBaNHyROBWlyVy19z0KtfOuw-agNXerfYAP5iZdv93jw6_HN65_0M-gCGjussMp6tR5eWvfA77TG" \
	"wR2KA6c392ckpWVb7-w\",\"e\":\"AQAB\"}]}"

#define FUZZ_TOKEN_ES256 \
	"eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyIsInN1" \
	"YiI6ImExYjJjM2Q0LXVzZXIiLCJhdWQiOiJodHRwczovL3NjcmlwLmV4YW1wbGUiLCJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTY5" \
	"OTk5OTk0MCwibmJmIjoxNjk5OTk5OTQwLCJqdGkiOiJqdGktMDAwMSIsInNjb3BlIjoib3BlbmlkIHN0b3JhZ2UucmVhZDovYXRs" \
	"YXMgc3RvcmFnZS5tb2RpZnk6L2F0bGFzL2RhdGEgY29tcHV0ZS5yZWFkIiwid2xjZy52ZXIiOiIxLjAiLCJ3bGNnLmdyb3VwcyI6" \
	"WyIvYXRsYXMiLCIvYXRsYXMvcHJvZHVjdGlvbiJdfQ.KncZ2Xv7nTh6zevhdSt4GT-gwhI8j1yDc4tFhQKwH1SmCyKb_NEyZ5RgM" \
	"LXfANDrZGTDcJ5RGeI3PgL01HxDKw"

#define FUZZ_TOKEN_RS256 \
	"eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLyIsInN" \
	"1YiI6ImExYjJjM2Q0LXVzZXIiLCJhdWQiOiJodHRwczovL3NjcmlwLmV4YW1wbGUiLCJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTY" \
	"5OTk5OTk0MCwibmJmIjoxNjk5OTk5OTQwLCJqdGkiOiJqdGktMDAwMSIsInNjb3BlIjoib3BlbmlkIHN0b3JhZ2UucmVhZDovYXR" \
	"sYXMgc3RvcmFnZS5tb2RpZnk6L2F0bGFzL2RhdGEgY29tcHV0ZS5yZWFkIiwid2xjZy52ZXIiOiIxLjAiLCJ3bGNnLmdyb3VwcyI" \
	"6WyIvYXRsYXMiLCIvYXRsYXMvcHJvZHVjdGlvbiJdfQ.fksN8S2h58zpj54q7eaIabORB0kKAEsZ0GCYR30DOAL5uJQKbWk5T6_G" \
	"yL4NeDaWeKR4rUmkQdxTi8nYHaS0SWBkzmgPsS1nmdJ--aBInl9vBmTNRAMySqUShrMd5Wn4LHWOjQqqp0m0Dfx4M5i2truWUCSj" \
	"20xgPGEGtZMGTZdUoiZAvFkfKXv0pAQB_W2KyoBCRLnFa-iZMaTe8osBGWAO1upl1HB7xcjfHSmplMQv04RxxwClEvuvWovB4GNT" \
	"b-5r972PYoo8vb4yAcRzvCkr2sdu-AimxzhT-a676f9im7D5FtxLOHtpuVUmZm-OxSj8xglr6eMzZ4uZn7H9yg"

#endif
