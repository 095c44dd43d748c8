"""The Secret Manager adapter: cached per instance, re-read on demand, never leaks the value."""

import pytest

from capi_relay.adapters.secrets import SecretManagerSource, StaticSecret
from capi_relay.core.errors import TransientError

NAME = "projects/p/secrets/meta-token/versions/latest"


def client_returning(mocker, *values):
    client = mocker.Mock()
    responses = []
    for value in values:
        response = mocker.Mock()
        response.payload.data = value.encode()
        responses.append(response)
    client.access_secret_version.side_effect = responses
    return client


def test_cached_until_refresh(mocker):
    client = client_returning(mocker, "EAAold\n", "EAAnew")
    source = SecretManagerSource(NAME, client=client)
    assert source.get() == "EAAold" and source.get() == "EAAold"
    assert client.access_secret_version.call_count == 1
    assert source.get(refresh=True) == "EAAnew"
    client.access_secret_version.assert_called_with(name=NAME)


def test_failure_is_transient_and_names_the_secret_not_the_value(mocker):
    client = mocker.Mock()
    client.access_secret_version.side_effect = RuntimeError("boom")
    with pytest.raises(TransientError) as err:
        SecretManagerSource(NAME, client=client).get()
    assert NAME in str(err.value)


def test_empty_secret_is_an_error(mocker):
    with pytest.raises(TransientError, match="empty"):
        SecretManagerSource(NAME, client=client_returning(mocker, "  ")).get()


def test_real_client_built_lazily(mocker):
    built = mocker.patch("google.cloud.secretmanager.SecretManagerServiceClient")
    built.return_value = client_returning(mocker, "EAAtok")
    source = SecretManagerSource(NAME)
    assert not built.called
    assert source.get() == "EAAtok" and built.call_count == 1


def test_reprs_hide_tokens():
    assert "EAAx" not in repr(StaticSecret("EAAx"))
    assert StaticSecret("EAAx").get(refresh=True) == "EAAx"
