"""The interest inspector in a real browser: JupyterLab headless on 127.0.0.1, Debian's Chromium
driven by Playwright (no browser download), notebook 07 run end to end, one control changed.

Fails (never skips) with the reason when Chromium, Playwright or JupyterLab cannot start.
Leaves a screenshot in artifacts/browser/inspector.png (`python scripts/make_readme_images.py`
copies it to docs/images/, where notebook 07 and the README show it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07_inspecting_interests.ipynb"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("ELASTIC_EDU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
LAB_START_S, RUN_ALL_S, UPDATE_S = 60, 240, 30

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def start_lab(workdir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """JupyterLab without token on 127.0.0.1, serving `workdir`; waits until it answers."""
    port = free_port()
    cfg = workdir.parent / "jupyter"
    env = {
        **os.environ,
        "ELASTIC_EDU_QUICK": "1",
        "ELASTIC_EDU_FIGURE_PNG": "0",  # the test reads the live plots; no static copies needed
        "JUPYTER_CONFIG_DIR": str(cfg / "config"),
        "JUPYTER_RUNTIME_DIR": str(cfg / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(cfg / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(cfg / "workspaces"),
    }
    # no "would you like news?" toast over the page
    news = cfg / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
        "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={workdir}",
        "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + LAB_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop(proc)
    pytest.fail(f"JupyterLab did not answer on {url} within {LAB_START_S} s:\n{log_tail(log)}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and its kernels (the process group this test started)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    try:  # kernels left behind in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# JavaScript run in the page: the notebook's content loaded and its kernel idle
NOTEBOOK_READY = """cells => {
    const panel = window.jupyterapp?.shell.currentWidget;
    return !!panel && panel.context?.isReady && panel.content?.widgets.length === cells
        && !!panel.sessionContext?.session?.kernel
        && panel.sessionContext.kernelDisplayStatus === 'idle';
}"""
# every code cell has run (an execution count) or one has failed: then its error text
RUN_STATE = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code');
    const errors = cells.flatMap(c => c.model.outputs.toJSON())
        .filter(o => o.output_type === 'error')
        .map(o => `${o.ename}: ${o.evalue}\\n${o.traceback.join('\\n')}`);
    const done = cells.every(c => c.model.executionCount !== null);
    return (done || errors.length) ? {done, errors} : null;
}"""
PLOTS = """() => [...document.querySelectorAll('.elastic-inspector .js-plotly-plot')].map(
    gd => ({title: gd.layout.title.text, z: JSON.stringify(gd.data[0].z ?? gd.data[0].x)}))"""


def test_inspector_renders_and_updates_in_jupyterlab(tmp_path):
    start = time.monotonic()
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser-deps` "
                    "(apt-get install chromium)")  # fmt: skip
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.fail(f"Playwright is not installed ({err}): pip install -e '.[test]'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "notebooks"
    work.mkdir()
    # a copy without outputs: Lab's autosave must never write widget state into the committed
    # notebook, and an execution count then means "ran in this browser"
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (work / NOTEBOOK.name).write_text(json.dumps(nb))
    log = ARTIFACTS / "jupyterlab.log"
    proc, url = start_lab(work, log)
    try:
        with sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            except PlaywrightError as err:
                pytest.fail(f"Chromium at {CHROMIUM} did not start: {err}")
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            try:
                run_and_interact(page, url)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "failure.png"))
                raise
            finally:
                browser.close()
    except Exception as err:
        raise AssertionError(f"{err}\n--- JupyterLab log ---\n{log_tail(log)}") from err
    finally:
        stop(proc)
    print(f"browser test took {time.monotonic() - start:.0f} s")


def run_and_interact(page, url: str) -> None:
    page.goto(f"{url}/lab/tree/{NOTEBOOK.name}")
    cells = len(json.loads(NOTEBOOK.read_text())["cells"])
    page.wait_for_function(NOTEBOOK_READY, arg=cells, timeout=LAB_START_S * 1000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # the whole notebook runs without error; the inspector and its three plots render
    state = page.wait_for_function(RUN_STATE, timeout=RUN_ALL_S * 1000).json_value()
    assert not state["errors"], "a notebook cell failed:\n" + "\n".join(state["errors"])
    page.wait_for_function("() => document.querySelectorAll("
                           "'.elastic-inspector .js-plotly-plot').length === 3",
                           timeout=UPDATE_S * 1000)  # fmt: skip
    page.wait_for_selector(".elastic-complexity .js-plotly-plot", timeout=UPDATE_S * 1000)
    before = page.evaluate(PLOTS)
    assert all("user " in p["title"] for p in before), before

    # choose another user in the dropdown, as a learner would
    select = page.locator(".elastic-inspector .widget-dropdown select").first
    current = select.input_value()
    option = select.locator("option").nth(7)
    label = option.text_content()
    assert option.get_attribute("value") != current
    clicked = time.monotonic()
    select.select_option(label=label)
    uid = label.split()[1]  # "user 42 (27 items)" -> "42"
    page.wait_for_function(
        """uid => [...document.querySelectorAll('.elastic-inspector .js-plotly-plot')]
            .every(gd => gd.layout.title.text.includes(`user ${uid},`))""",
        arg=uid, timeout=UPDATE_S * 1000,
    )  # fmt: skip
    print(f"user change -> new plot titles in the DOM: {time.monotonic() - clicked:.2f} s")
    status = page.locator(".elastic-inspector-status")
    page.wait_for_function(
        "uid => document.querySelector('.elastic-inspector-status').textContent"
        ".startsWith(`user ${uid}:`)",
        arg=uid, timeout=UPDATE_S * 1000,
    )  # fmt: skip
    after = page.evaluate(PLOTS)
    assert [p["title"] for p in after] != [p["title"] for p in before]
    assert after[1]["z"] != before[1]["z"], "the heatmap's data did not change"
    assert "updated in" in status.text_content()
    print(status.text_content())
    page.locator(".elastic-inspector").scroll_into_view_if_needed()
    page.locator(".elastic-inspector").screenshot(path=str(ARTIFACTS / "inspector.png"))
