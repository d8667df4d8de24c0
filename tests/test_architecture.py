"""The import rules of DESIGN.md section 8, as scripts/imports.py checks them (`make lint`): the
real tree passes, and a tree that breaks each rule is caught."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def imports():
    spec = importlib.util.spec_from_file_location("qc_imports", ROOT / "scripts" / "imports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["qc_imports"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("qc_imports", None)


def tree(root: Path, files: dict[str, str]) -> Path:
    for pkg in ("hub", "displays", "notifier"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name != root.name and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(text)
    return root


def test_the_project_has_no_cycle_no_upward_arrow_and_a_pure_domain(imports):
    known, _, pgraph, problems = imports.analyse()
    assert problems == []
    assert "hub.app" in known and "hub.domain.notifications.rules" in known
    # The arrows the layering is about: the composition root mounts the surfaces, which use the service.
    assert {"displays", "notifier", "hub.web", "hub.service"} <= pgraph["hub.app"]
    assert "hub.service" not in pgraph["hub.domain"] and "notifier" not in pgraph["hub.service"]


def test_an_upward_import_is_caught(imports, tmp_path):
    root = tree(tmp_path, {"hub/service/queue.py": "from notifier import worker\n",
                           "notifier/worker.py": "X = 1\n"})
    *_, problems = imports.analyse(root)
    assert problems == ["up: hub.service.queue (service) imports notifier.worker (web)"]


def test_a_cycle_is_caught(imports, tmp_path):
    root = tree(tmp_path, {"hub/web/a.py": "from hub.web import b\n", "hub/web/b.py": "import hub.web.a\n"})
    *_, problems = imports.analyse(root)
    assert problems == ["module cycle: hub.web.a <-> hub.web.b"]


def test_a_domain_importing_a_library_is_caught(imports, tmp_path):
    root = tree(tmp_path, {"hub/domain/phones.py": "import phonenumbers\nfrom datetime import date\n"})
    *_, problems = imports.analyse(root)
    assert problems == ["impure: hub.domain.phones imports phonenumbers"]
