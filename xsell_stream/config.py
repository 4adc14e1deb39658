"""Typed settings, loaded once from a TOML file and passed down.

Every key is documented in README.md ("Configuration"). Unknown keys are an error, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Platform = Literal["shopify", "woocommerce"]


# METRICS.md §5: the line-item property / meta key marking an accepted upsell. A leading
# underscore hides it from the customer on both platforms.
DEFAULT_UPSELL_PROPERTY = "_xsell_upsell"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConnectorSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    # How long a delivery waits for the broker's acknowledgement before answering 503;
    # below Shopify's 5-second response limit, so a slow broker gets a clean 503 + retry.
    produce_timeout_seconds: float = 4.0


class ExporterSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 9108
    # Customer lifetime value needs a 365-day union of customers; it is cached this long.
    clv_cache_seconds: float = 60.0
    # How often the consumer lag is read from Kafka (in the background, not at scrape time).
    lag_interval_seconds: float = Field(default=15.0, gt=0)


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "localhost:9092"
    topic: str = "xsell.events"
    dead_letter_topic: str = "xsell.events.dead"
    partitions: int = 4
    consumer_group: str = "xsell-stream"


class RedisSettings(_Frozen):
    # May hold a password: never in a repr; shown through `without_password`.
    url: str = Field(default="redis://localhost:6379/0", repr=False)


def without_password(url: str) -> str:
    """A service URL fit for a log line or a terminal: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class EmbeddedSettings(_Frozen):
    """Ports of the broker and Redis that `up` starts when [kafka] / [redis] are omitted."""

    kafka_port: int = 29092
    redis_port: int = 26379


class ShopSettings(_Frozen):
    id: str
    platform: Platform
    timezone: str = "UTC"
    lifespan_years: float = 3
    currency: str | None = None
    secrets: list[str] = Field(min_length=1, repr=False)
    # The line-item property (Shopify) / meta key (WooCommerce) that marks an accepted upsell
    # (METRICS.md §5); "" turns the order-side upsell path off.
    upsell_property: str = DEFAULT_UPSELL_PROPERTY

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("secrets")
    @classmethod
    def _no_empty_secret(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("a signing secret is empty")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Settings(_Frozen):
    data_dir: Path = Path(".xsell")
    email_hash_key: str | None = Field(default=None, repr=False)
    connector: ConnectorSettings = ConnectorSettings()
    exporter: ExporterSettings = ExporterSettings()
    kafka: KafkaSettings | None = None
    redis: RedisSettings | None = None
    embedded: EmbeddedSettings = EmbeddedSettings()
    shops: list[ShopSettings] = Field(default_factory=list)

    @field_validator("shops")
    @classmethod
    def _unique_shops(cls, value: list[ShopSettings]) -> list[ShopSettings]:
        ids = [s.id for s in value]
        if len(ids) != len(set(ids)):
            raise ValueError("a shop id is listed twice")
        return value

    def shop(self, shop_id: str) -> ShopSettings | None:
        for shop in self.shops:
            if shop.id == shop_id:
                return shop
        return None

    @property
    def kafka_settings(self) -> KafkaSettings:
        """The named broker, or the embedded one `up` starts."""
        if self.kafka is not None:
            return self.kafka
        return KafkaSettings(bootstrap_servers=f"127.0.0.1:{self.embedded.kafka_port}")

    @property
    def redis_url(self) -> str:
        if self.redis is not None:
            return self.redis.url
        return f"redis://127.0.0.1:{self.embedded.redis_port}/0"

    def email_key(self) -> bytes:
        """The key for hashing e-mails; made once per data directory when not configured."""
        if self.email_hash_key:
            return self.email_hash_key.encode()
        path = self.data_dir / "email-hash.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()


class ConfigError(Exception):
    """A config file that cannot be used; the message says what to fix."""


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found; pass --config FILE") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    # A relative data_dir is relative to the config file, so `up` works from any folder.
    if not settings.data_dir.is_absolute():
        settings = settings.model_copy(update={"data_dir": path.parent / settings.data_dir})
    return settings
