"""The OIDC verifier's keys against a real (local) issuer over HTTP: an issuer outage
keeps the keys already fetched in use, and failed fetches are tried at most once per
``REFRESH_SECONDS`` whatever the tokens name."""

from __future__ import annotations

import pytest
from oidc_issuer import running_issuer

from notifq.api import oidc
from notifq.api.errors import IssuerUnavailable
from notifq.api.oidc import OidcVerifier
from notifq.api.security import InvalidToken


def test_an_issuer_outage_keeps_the_keys_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_issuer() as issuer:
        # keys always due for a refresh, and refreshes allowed at once
        monkeypatch.setattr(oidc, "REFRESH_SECONDS", 0.0)
        held = OidcVerifier(issuer=issuer.url, client_id="notifq", jwks_seconds=0.0)
        assert held.verify(issuer.token()).user.endswith("#carol-id")
        issuer.down = True
        assert held.verify(issuer.token()).user.endswith("#carol-id")  # kept, not a 503
        assert held.verify(issuer.token(alg="ES256")).user.endswith("#carol-id")
        assert issuer.refused == 2  # each refresh was tried, and failed
        monkeypatch.setattr(oidc, "REFRESH_SECONDS", 10.0)
        fresh = OidcVerifier(issuer=issuer.url, client_id="notifq")
        refused = issuer.refused
        for kid in ("rsa-1", "made-up-1", "made-up-2", "made-up-3"):
            with pytest.raises(IssuerUnavailable):
                fresh.verify(issuer.token(kid=kid))
        assert issuer.refused == refused + 1  # one attempt for four tokens
        issuer.down = False
        with pytest.raises(IssuerUnavailable):  # still within 10 s of that attempt
            fresh.verify(issuer.token())
        with pytest.raises(InvalidToken):  # the one that holds keys: an unknown kid is a 401
            held.verify(issuer.token(kid="made-up-4"))
