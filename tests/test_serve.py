"""app/serve.py: the head start of `make run` (imports, PyVista, the scenes users open first)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app import scene_files
from core import storage as S
from core.config import Settings
from tests.fakes import make_fake_study
from tests.test_app_viewer import VIEWER, add_best_trial_with_layout, scene_args, tiny_layout


def test_wait_returns_at_once_without_a_head_start_and_after_it(monkeypatch):
    from app import serve

    monkeypatch.setattr(serve, "_started", False)
    serve.wait(timeout=0.01)  # plain `streamlit run`: nothing to wait for
    monkeypatch.setattr(serve, "MODULES", ("json",))
    monkeypatch.setattr(serve, "open_storage", lambda: 0)
    monkeypatch.setenv("HPO_HEAD_START_SCENE", "0")
    serve._IMPORTED.clear()
    serve.warm_up()
    assert serve._IMPORTED.is_set() and "json" in serve.WARM


def test_the_head_start_opens_the_storage_the_first_page_reads(tmp_path, monkeypatch):
    """The first page's script run found SQLAlchemy, Optuna's tables and Alembic's check still to
    do (~0.5 s): the head start opens the app's storage and reads its newest study first."""
    from app import serve

    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    make_fake_study(url, "older", n_complete=1, n_pruned=0, n_failed=0, with_models=False, settings=settings)
    make_fake_study(url, "newest", n_complete=2, n_pruned=1, n_failed=0, with_models=False, settings=settings)
    S._open.cache_clear()
    assert serve.open_storage() == 2
    hits = S._open.cache_info().hits
    S.open_storage(url)  # what the first page does
    assert S._open.cache_info().hits == hits + 1  # already open: no second engine, no second Alembic check


def test_the_head_start_builds_the_scene_the_viewer_opens_on(tmp_path, monkeypatch):
    """The best trial's scene is on disk before the first visitor: the viewer reads it, never rebuilds it."""
    from app import serve

    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.setattr(scene_files, "SCENES", tmp_path / "scenes")
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    fake = make_fake_study(url, "pre", n_complete=2, n_pruned=0, n_failed=0, with_models=False, settings=settings)
    add_best_trial_with_layout(url, "pre", fake, tiny_layout())
    assert serve.prebuild_scenes() == 1
    built = list((tmp_path / "scenes").glob("*.vtksz"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns

    at = AppTest.from_file(VIEWER, default_timeout=60).run()
    assert not at.exception
    assert scene_args(at)["scene_url"] == f"cache/scenes/{built[0].name}"  # the same key: the prebuilt file
    assert built[0].stat().st_mtime_ns == stamp  # read, not built again
    assert serve.prebuild_scenes() == 1 and built[0].stat().st_mtime_ns == stamp  # a second start finds it


def test_tabs_asking_for_one_scene_at_once_build_it_once(tmp_path, monkeypatch):
    """The head start and the first tabs can ask for the same scene at the same moment: one
    builds it, the others wait and read its files (each writes through a temporary file of its own)."""
    import threading

    from core import scene

    monkeypatch.setattr(scene_files, "SCENES", tmp_path / "scenes")
    builds = []
    real = scene.browser_scene

    def counted(arch):
        builds.append(threading.get_ident())
        return real(arch)

    monkeypatch.setattr(scene, "browser_scene", counted)
    arch = tiny_layout()
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(scene_files.load_or_build("k1", arch))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(builds) == 1
    assert [g[0] for g in got] == ["cache/scenes/k1.vtksz"] * 4 and all(g[1] is None for g in got)
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == ["k1.json", "k1.vtksz"]  # no temporary left
    assert all(g[2] == got[0][2] for g in got)


def test_the_scene_warm_up_waits_for_the_first_page(monkeypatch):
    """PyVista's warm-up and the prebuilt scenes start once a first page has run, never beside it
    (VTK's work held the GIL and delayed the first page's heading), or after SCENE_AFTER_S idle."""
    import threading
    import time

    from app import serve
    from core import scene

    monkeypatch.setattr(serve, "MODULES", ("json",))
    monkeypatch.setattr(serve, "open_storage", lambda: 0)
    monkeypatch.setattr(serve, "SCENE_GRACE_S", 1.0)
    monkeypatch.delenv("HPO_HEAD_START_SCENE", raising=False)
    calls: list[str] = []
    monkeypatch.setattr(scene, "viewer_script", lambda: calls.append("viewer_script"))
    monkeypatch.setattr(scene, "browser_scene", lambda arch: calls.append("scene"))
    monkeypatch.setattr(serve, "prebuild_scenes", lambda: calls.append("prebuild") or 0)
    monkeypatch.setattr(serve, "_started", True)
    serve._IMPORTED.clear()
    serve._PAGE_RAN.clear()
    worker = threading.Thread(target=serve.warm_up, daemon=True)
    worker.start()
    assert serve._IMPORTED.wait(10)
    time.sleep(0.5)
    assert calls == [] and worker.is_alive()  # imported, and waiting for a page
    assert serve.page_done() is True  # the app's page ran (with a head start: it warms nothing itself)
    time.sleep(0.3)
    assert calls == []  # the browser draws the page first (SCENE_GRACE_S)
    worker.join(10)
    assert calls == ["viewer_script", "scene", "prebuild"]

    # no visitor: the warm-up starts on its own after SCENE_AFTER_S
    calls.clear()
    serve._PAGE_RAN.clear()
    monkeypatch.setattr(serve, "SCENE_AFTER_S", 0.3)
    monkeypatch.setattr(serve, "SCENE_GRACE_S", 60.0)  # no page ran: no grace to wait
    serve.warm_up()
    assert calls == ["viewer_script", "scene", "prebuild"]
    monkeypatch.setattr(serve, "_started", False)
    assert serve.page_done() is False  # plain `streamlit run`: the app warms PyVista itself
