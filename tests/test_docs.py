"""The docs stay true: every variable the settings read is documented, every link leads somewhere,
the README stays short, every test the guarantees table names exists. And the two small things
a newcomer meets first: the page at / and the console email."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client

from payments_site.mail import ConsoleEmailBackend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
# Where the environment is read: the roof (settings and its neighbours) and, once it exists, the floor.
ENV_READERS = ("payments_site", "core")


# ------------------------------------------------------------------ environment variables


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _is_direct_read(call: ast.Call) -> bool:
    """os.environ.get(…), environ.get(…), os.getenv(…), getenv(…)."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value):
        return True
    return (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
        isinstance(func, ast.Name) and func.id == "getenv")


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _first_arg_is(call: ast.Call, name: str) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Name) and call.args[0].id == name


def _env_helpers(trees: list[ast.Module]) -> set[str]:
    """Functions that look a variable up by their first argument, directly or through another helper
    (env_int, env_bool, env_list, env_secret, env_decimal, a rate-table parser, …), whatever they are called."""
    functions = [node for tree in trees for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.args.args]
    helpers: set[str] = set()
    changed = True
    while changed:
        changed = False
        for function in functions:
            if function.name in helpers:
                continue
            param = function.args.args[0].arg
            for node in ast.walk(function):
                reads = (isinstance(node, ast.Call) and _first_arg_is(node, param)
                         and (_is_direct_read(node) or _called_name(node) in helpers)) or (
                    isinstance(node, ast.Subscript) and _is_environ(node.value)
                    and isinstance(node.slice, ast.Name) and node.slice.id == param)
                if reads:
                    helpers.add(function.name)
                    changed = True
                    break
    return helpers


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def environment_variables_read() -> dict[str, str]:
    """{variable: module} for every literal name the settings (and their neighbours) read from the environment."""
    modules = [path for package in ENV_READERS for path in sorted((ROOT / package).rglob("*.py"))
               if "tests" not in path.parts and not path.name.startswith("test_")]
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in modules}
    helpers = _env_helpers(list(trees.values()))
    found: dict[str, str] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and node.args and (_is_direct_read(node) or _called_name(node) in helpers):
                name = _literal(node.args[0])
            elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
                name = _literal(node.slice)
            if name:
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def documented_variables() -> set[str]:
    """Variable names in the first column of configuration.md's tables (several per cell allowed)."""
    names = set()
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_the_scan_finds_the_variables_read_every_way_the_settings_read_them():
    found = environment_variables_read()
    # one of each kind: os.environ.get, a helper, a helper of a helper, a secret
    for name in ("DATABASE_URL", "CONN_MAX_AGE", "ALLOW_DEBUG", "ALLOWED_HOSTS", "JWT_SECRET_KEY",
                 "WEB3_AMOUNT_TOLERANCE", "WEB3_FIXED_RATES", "THROTTLE_VERIFY_KEY"):
        assert name in found, name
    assert len(found) > 60


def test_every_environment_variable_the_settings_read_is_in_configuration_md():
    missing = {name: module for name, module in environment_variables_read().items()
               if name not in documented_variables()}
    assert not missing, f"add these to docs/configuration.md: {missing}"


# ------------------------------------------------------------------ the pages themselves


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _without_code_blocks(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)  # links and headings in code blocks are examples


def anchors(page: Path) -> set[str]:
    """The fragment ids a Markdown renderer gives the page's headings (GitHub's rule)."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _without_code_blocks(page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def test_every_relative_link_in_the_docs_leads_to_a_file_that_exists():
    broken = []
    for page in markdown_files():
        for target in LINK.findall(_without_code_blocks(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # another site
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_is_at_most_200_lines():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_every_test_the_guarantees_table_names_exists():
    names = re.findall(r"`([\w/]+\.py)::(\w+)`", (DOCS / "guarantees.md").read_text(encoding="utf-8"))
    assert len(names) > 40
    missing = []
    for path, function in names:
        source = ROOT / path
        if not source.exists() or not re.search(rf"^\s*(async )?def {function}\(", source.read_text(encoding="utf-8"), re.M):
            missing.append(f"{path}::{function}")
    assert not missing, missing


# ------------------------------------------------------------------ GET /


@pytest.mark.django_db
def test_the_root_is_a_landing_page_that_says_what_runs_and_where_to_go():
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Payment sessions" in page
    for href in ('href="/api/docs/"', 'href="/admin/"', 'href="#loop"'):
        assert href in page, href
    assert "/keys/verify" in page and "/create_session" in page


@pytest.mark.django_db
def test_the_landing_page_names_the_embedded_mode(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_HOST = ""
    page = Client().get("/").content.decode()
    assert "in-process" in page and "printed to the console" in page


@pytest.mark.django_db
def test_the_landing_page_names_workers_and_smtp_when_they_are_set(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.EMAIL_HOST = "smtp.example.com"
    page = Client().get("/").content.decode()
    assert "Celery workers on Redis" in page and "sent over SMTP" in page
    assert "smtp.example.com" not in page


@pytest.mark.django_db
def test_the_landing_page_only_answers_reads():
    assert Client().post("/").status_code == 405


# ------------------------------------------------------------------ the console email


def test_the_console_email_names_attachments_instead_of_printing_them():
    stream = io.StringIO()
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 200
    message = mail.EmailMultiAlternatives(
        subject="Your receipt INV-2026-00001", body="Thank you.\nYour access link: http://127.0.0.1:8000/access/abc.def.ghi\n",
        from_email="Demo Merchant <payments@localhost>", to=["buyer@example.com"])
    message.attach_alternative("<p>Thank you. <a href='http://127.0.0.1:8000/access/abc.def.ghi'>Open</a></p>",
                               "text/html")
    message.attach("INV-2026-00001.pdf", pdf, "application/pdf")

    assert ConsoleEmailBackend(stream=stream).send_messages([message]) == 1

    shown = stream.getvalue()
    assert "Subject: Your receipt INV-2026-00001" in shown
    assert "To: buyer@example.com" in shown
    assert "Your access link: http://127.0.0.1:8000/access/abc.def.ghi\n" in shown
    assert f"[attachment] INV-2026-00001.pdf (application/pdf, 50.0 KiB ({len(pdf):,} bytes))" in shown
    assert "[alternative] text/html" in shown
    assert "JVBERi0" not in shown  # "%PDF-" in base64: no attachment is printed
    assert len(shown.splitlines()) < 20


def test_the_console_email_decodes_text_that_is_not_ascii():
    stream = io.StringIO()
    message = mail.EmailMessage(subject="Reçu", body="Merci, Zoë: 99,99 €\n" + "ß" * 600,
                                from_email="payments@localhost", to=["zoe@example.com"])
    ConsoleEmailBackend(stream=stream).send_messages([message])
    assert "Merci, Zoë: 99,99 €" in stream.getvalue()
    assert "ß" * 600 in stream.getvalue()  # a line this long travels quoted-printable


def test_the_console_backend_is_chosen_when_no_smtp_host_is_set(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in {"EMAIL_HOST", "DJANGO_SETTINGS_MODULE"} and not key.startswith("PYTEST_")}
    env.update({"ALLOW_DEBUG": "1", "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "payments_site.settings"})
    chosen = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.EMAIL_BACKEND)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert chosen == "payments_site.mail.ConsoleEmailBackend"
