"""Secret detection by name (issue #17 item 1): the predicate redaction will call."""

import pytest

from gensight.enrich.secrets import is_secret_name


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PassWD",
        "client_secret",
        "apiKey",
        "X-Api-Key",
        "http.request.header.authorization",
        "http.response.header.set-cookie",
        "AWS_SECRET_ACCESS_KEY",
        "refresh-token",
        "db.private_key",
    ],
)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.request.model",
        "http.request.header.content-type",
        "user.id",
    ],
)
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_secret_name(name)
