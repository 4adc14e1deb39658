"""Settings: secrets stay out of reprs, and a Redis password out of what is shown."""

from __future__ import annotations

from xsell_stream.config import Settings, without_password


def test_a_redis_password_is_never_shown():
    assert without_password("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert without_password("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert (without_password("rediss://app:s3cret@[::1]:6380/1?ssl_cert_reqs=none")
            == "rediss://app:***@[::1]:6380/1?ssl_cert_reqs=none")


def test_settings_reprs_hold_no_secret():
    settings = Settings.model_validate({
        "email_hash_key": "hash-key-s3cret",
        "redis": {"url": "redis://:redis-s3cret@cache:6379/0"},
        "shops": [{"id": "a.myshopify.com", "platform": "shopify",
                   "secrets": ["shpss_s3cret"]}],
    })
    shown = repr(settings) + str(settings) + repr(settings.shops[0])
    assert "s3cret" not in shown
    assert settings.redis_url == "redis://:redis-s3cret@cache:6379/0"
    assert settings.shops[0].secrets == ["shpss_s3cret"]
