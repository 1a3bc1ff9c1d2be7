"""Text that came from outside (study names, notes, hosts, executors, errors) is shown as typed, never as Markdown.

On a shared storage other users choose study names and notes, and a RunPod worker reports
the host a trial ran on: ``[x](https://evil.example/b)`` must not become a link, nor
``![t](https://evil.example/t.png)`` a remote image.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.format import plain
from core import storage as S
from core.config import Settings
from core import study as K  # the storage schema: attribute keys
from tests.fakes import make_fake_study
from tests.test_app_views import CONFIGURE, ROUTER, TIMEOUT, TRIALS

HOSTILE = "[x](https://evil.example/b) ![t](https://evil.example/t.png) $x$ :red[y] <b>z</b>"


def test_plain_escapes_every_markdown_construct():
    out = plain(HOSTILE + "\n# heading\n- item")
    for raw in ("](", "![", ":red[", "$x$", "<b>", "\n"):
        assert raw not in out
    assert out.replace("\\", "") == " ".join((HOSTILE + "\n# heading\n- item").split())  # nothing lost but escapes
    assert plain("a" * 50, limit=10) == "a" * 9 + "…"


@pytest.fixture
def hostile_home(tmp_path, monkeypatch):
    import optuna
    from optuna.trial import TrialState, create_trial

    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    # written straight into the storage, as another tool or an older version on a shared storage could
    make_fake_study(url, HOSTILE, n_complete=1, n_pruned=0, n_failed=0, n_running=0, with_models=False,
                    status="crashed", settings=settings)
    study = optuna.load_study(study_name=HOSTILE, storage=S.open_storage(url))
    study.set_user_attr(K.ATTR_NOTE, "note: " + HOSTILE)
    done = study.trials[0]
    attrs = {**done.user_attrs, K.T_HOST: "host " + HOSTILE, K.T_EXECUTOR: "runpod " + HOSTILE}
    attrs[K.T_RESULT] = {**attrs[K.T_RESULT], "host": "host " + HOSTILE, "executor": "runpod " + HOSTILE}
    for state, values, extra in ((TrialState.COMPLETE, done.values, {}),
                                 (TrialState.FAIL, None, {K.T_ERROR: "error " + HOSTILE})):
        study.add_trial(create_trial(state=state, values=values, params=done.params, distributions=done.distributions,
                                     user_attrs={**attrs, **extra}))
    return tmp_path


def _bodies(at: AppTest) -> list[str]:
    out = [e.value for kind in ("markdown", "caption", "info", "error", "warning", "success") for e in at.get(kind)]
    out += [e.label for e in at.expander]
    return out


@pytest.mark.parametrize("page", [CONFIGURE, TRIALS])
def test_untrusted_text_is_never_rendered_as_markdown(hostile_home, page):
    at = AppTest.from_file(ROUTER, default_timeout=TIMEOUT)
    at.run()
    if page != CONFIGURE:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    bodies = _bodies(at)
    shown = "\n".join(bodies)
    assert plain(HOSTILE) in shown  # the name is there, escaped
    if page == CONFIGURE:
        assert plain("note: " + HOSTILE) in shown
    else:
        assert plain("host " + HOSTILE) in shown and plain("error " + HOSTILE)[:60] in shown
    for body in bodies:
        assert "](" not in body and "![" not in body and ":red[y]" not in body and "$x$" not in body, body
