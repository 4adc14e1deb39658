"""Signatures over the raw bytes, with values computed independently by openssl."""

from connectors.signing import sign, verify

# printf '%s' BODY | openssl dgst -sha256 -hmac SECRET -binary | base64
ESCAPED_BODY = b'{"id":1,"note":"a\\/b \\u0026 c"}'
ESCAPED_SIG = "hmGzHr4UVeRXQuBTLYxhJZ8aQQ9EK0OoGNohPXCOZS0="
WOO_SECRET = 'wc&demo<secret>"2011'
HELLO_SIG = "rwfGyPwlKb/zkBvTOlrH/zcw7VdpdzOme4vhNyTJXR0="


def test_sign_matches_openssl_over_the_raw_escaped_bytes():
    assert sign("shpss_test", ESCAPED_BODY) == ESCAPED_SIG


def test_the_same_json_reserialised_does_not_verify():
    reserialised = b'{"id":1,"note":"a/b & c"}'
    assert verify(ESCAPED_BODY, ESCAPED_SIG, ["shpss_test"]) is True
    assert verify(reserialised, ESCAPED_SIG, ["shpss_test"]) is False


def test_woocommerce_secret_with_special_characters_is_used_literally():
    assert sign(WOO_SECRET, b"hello") == HELLO_SIG
    assert verify(b"hello", HELLO_SIG, [WOO_SECRET]) is True
    assert verify(b"hello", HELLO_SIG, ["wc&amp;demo&lt;secret&gt;&quot;2011"]) is False


def test_any_configured_secret_verifies_for_rotation():
    assert verify(b"hello", HELLO_SIG, ["new-secret", WOO_SECRET]) is True
    assert verify(b"hello", HELLO_SIG, ["new-secret", "older"]) is False


def test_missing_or_empty_signature_never_verifies():
    assert verify(b"hello", None, [WOO_SECRET]) is False
    assert verify(b"hello", "", [WOO_SECRET]) is False
