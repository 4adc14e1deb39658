"""`replay` says at once what is wrong with its target, instead of retrying every delivery
for minutes first."""

from __future__ import annotations

import gzip

from xsell_stream.cli import main

from .conftest import free_port


def recording(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "one.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write('{"seq": 1, "platform": "shopify", "path": "/webhooks/shopify", '
                  '"headers": {}, "body": "{}"}\n')
    return path


def test_a_url_that_is_not_the_connectors_base_url_is_refused_before_anything_is_sent(
        tmp_path, capsys):
    path = str(recording(tmp_path))
    assert main(["replay", path, "--url", "127.0.0.1:8080"]) == 2
    assert "is not an http(s) URL; give the connector's base URL, e.g. http://127.0.0.1:8080" \
        in capsys.readouterr().err
    assert main(["replay", path, "--url", "http://127.0.0.1:8080/webhooks/shopify"]) == 2
    assert "has a path; give the connector's base URL (e.g. http://127.0.0.1:8080)" \
        in capsys.readouterr().err


def test_no_connector_answering_is_said_before_any_delivery_is_tried(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["replay", str(recording(tmp_path)), "--url", url]) == 2
    err = capsys.readouterr().err
    assert f"error: no connector answers at {url} (ClientConnectorError); start it with " \
        "`xsell-stream up --config FILE`" in err
    assert "replayed" not in err  # no delivery waited out its retries first
