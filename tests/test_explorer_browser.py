"""Notebook 03's explorer in a real browser: JupyterLab in headless Chromium, Run All, then the
threshold slider moved with the keyboard; the explorer's readout shows the new mIoU.

Needs Chromium, its driver and selenium (`apt-get install chromium chromium-driver`,
`pip install selenium`); skipped where they are missing. The notebook runs from a copy in a
temporary folder, so JupyterLab's autosave never touches the repository.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_cams.ipynb"
TOKEN = "seam-explorer-test"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()), reason="needs chromium and chromium-driver")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds: float, what: str):
    """``condition()``'s first truthy value within ``seconds``; else fail naming ``what``."""
    end = time.time() + seconds
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a loopback port, serving a copy of notebooks/03_cams.ipynb."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "notebooks" / NOTEBOOK.name)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
         "--LabApp.expose_app_in_browser=True"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "JupyterLab")
        yield f"http://127.0.0.1:{port}/lab/tree/notebooks/{NOTEBOOK.name}?token={TOKEN}"
    finally:
        server.terminate()
        server.wait(30)


def readout(browser) -> str:
    """The explorer's readout label, once it shows an mIoU ("" while a redraw replaces it)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".widget-label")]
    except StaleElementReferenceException:  # the widget was re-rendered while being read
        return ""
    return next((t for t in texts if "mIoU" in t), "")


def test_the_slider_moves_the_mious_in_jupyterlab(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        browser.get(lab)
        wait_for(lambda: browser.execute_script(
            "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"),
            120, "the notebook's kernel")
        browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        before = wait_for(lambda: readout(browser), 600, "the explorer after Run All")
        handle = browser.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        handle.send_keys(Keys.END)  # the slider's maximum: background everywhere
        after = wait_for(lambda: (text := readout(browser)) != before and text, 120,
                         "the readout to follow the slider")
        assert "> 1.00: mIoU" in after, after
        assert after.split("mIoU ")[1] != before.split("mIoU ")[1], (before, after)
    finally:
        browser.quit()
