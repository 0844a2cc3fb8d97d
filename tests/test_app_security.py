"""Session tokens are issued by the server and bound to the browser that got them; uploads go to a
per-session folder."""

from __future__ import annotations

from app.context import COOKIE_PREFIX, AppContext, Shared, new_token


def test_a_token_is_accepted_only_with_its_signature_cookie(shared: Shared) -> None:
    token = new_token()
    cookie = {COOKIE_PREFIX + token: shared.sign(token)}
    assert shared.accepts(token, cookie)
    assert not shared.accepts(token, {})  # a link carrying the token, opened in another browser
    assert not shared.accepts(token, {COOKIE_PREFIX + token: "0" * 64})  # a guessed signature
    other = new_token()
    assert not shared.accepts(other, cookie)  # one token's cookie does not admit another


def test_a_token_chosen_by_a_client_is_refused(shared: Shared) -> None:
    chosen = "a" * 16
    assert not shared.accepts(chosen, {COOKIE_PREFIX + chosen: "anything"})
    assert not shared.accepts("../../etc", {})


def test_signatures_differ_between_server_processes(shared: Shared, tmp_path) -> None:
    token = new_token()
    other = Shared(shared.settings)
    assert other.sign(token) != shared.sign(token)
    other.runner.shutdown()


def test_each_session_uploads_into_its_own_folder(shared: Shared) -> None:
    a, b = AppContext(shared, new_token()), AppContext(shared, new_token())
    assert a.upload_folder != b.upload_folder
    assert a.token not in a.upload_folder and len(a.upload_folder) == 16
