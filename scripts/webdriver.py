"""A minimal W3C WebDriver client over urllib (no Selenium needed), driving Debian's
chromium through chromedriver. Used by scripts/browser-test.py (the browser tests and the screenshots)."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One chromedriver process with one headless Chromium session."""

    def __init__(self, lang="zh-TW"):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="salesai-chrome-")
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/status", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-dev-shm-usage",
                            "--disable-gpu",
                            "--disable-background-networking",
                            "--disable-extensions",
                            "--no-first-run",
                            "--autoplay-policy=no-user-gesture-required",
                            f"--user-data-dir={self.profile}",
                            f"--lang={lang}",
                        ],
                        "prefs": {"intl.accept_languages": lang},
                    },
                }
            }
        }
        self.session = self._call("POST", f"{self.base}/session", caps)["sessionId"]
        self.url = f"{self.base}/session/{self.session}"

    def _call(self, method, url, body=None):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {url}: {e.read().decode()[:500]}") from None

    def get(self, url):
        self._call("POST", self.url + "/url", {"url": url})

    def current_url(self):
        return self._call("GET", self.url + "/url")

    def run(self, script, *args):
        return self._call("POST", self.url + "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        el = self._call("POST", self.url + "/element", {"using": "css selector", "value": css})
        return list(el.values())[0]

    def click(self, css):
        self._call("POST", f"{self.url}/element/{self.find(css)}/click")

    def type(self, css, text):
        self._call("POST", f"{self.url}/element/{self.find(css)}/value", {"text": text})

    def text(self, css):
        return self._call("GET", f"{self.url}/element/{self.find(css)}/text")

    def size(self, width, height):
        self._call("POST", self.url + "/window/rect", {"width": width, "height": height})

    def screenshot(self, path, width, full=True):
        """Saves a PNG of the page at `width`, the whole page tall when `full`."""
        self.size(width, 900)
        if full:
            height = self.run("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
            self.size(width, min(int(height) + 140, 8000))
        png = base64.b64decode(self._call("GET", self.url + "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def close(self):
        try:
            self._call("DELETE", self.url)
        except Exception:
            pass
        self.driver.terminate()
        self.driver.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)
