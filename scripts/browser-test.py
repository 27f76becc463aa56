#!/usr/bin/env python3
"""Browser tests: the web app in headless Chromium (Debian's chromium + chromedriver, driven
over W3C WebDriver by scripts/webdriver.py) against a real `salesai serve` with its workers,
a real OpenID Connect provider (oidc-provider-mock) and, for recordings, a real Whisper server.

    python3 scripts/browser-test.py --salesai target/debug/salesai --out /tmp/salesai-shots \
        [--whisper http://127.0.0.1:8123/v1]

What a person does, checked as they would see it:
  1. the first admin signs in with a one-time link;
  2. a rep signs in, uploads a Traditional Chinese transcript through the page and sees the
     completed analysis;
  3. searches a Chinese phrase, and a two-character word, and lands on its moment in the
     transcript;
  4. uploads an espeak-ng recording, and clicking a transcript line moves the audio's
     currentTime to that line;
  5. another team's rep opening that call gets the 403 page;
  6. switches zh-TW ↔ English;
  7. someone from an allowed domain signs in through OpenID Connect.
Then a screenshot of every page, both languages, desktop and phone width, into --out.

Without --whisper, step 4 is skipped with a note (CI passes it, and CI=true makes it required).
Exits non-zero on the first failed check, saying which and saving a screenshot of it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from webdriver import Browser, free_port  # noqa: E402

TRANSCRIPT_ZH = """業務：您好，陳老闆，今天想了解一下貴店目前點餐和出單的狀況。
客戶：我們現在尖峰時段出單很慢，常常漏單，客人等太久就直接走了。
業務：漏單的情況一個禮拜大概發生幾次？
客戶：至少十幾次吧，每次都要重做，浪費食材也浪費人力。
業務：了解。如果導入我們的 POS 系統，點餐會直接送到廚房，不會再漏單。
客戶：聽起來不錯，但是預算大概只有五萬元，而且要跟合夥人討論。
業務：沒問題，我下週二帶試算表過來，跟您和合夥人一起看導入的費用和時程。
客戶：好，那就下週二下午兩點，我們店裡見。
"""

SPEECH_EN = (
    "Thanks for meeting with me today. "
    "Tell me how you take orders at the counter right now. "
    "We lose orders every weekend because the kitchen never sees them. "
    "Our budget is around five thousand dollars this quarter. "
    "Let us meet again next Tuesday to review the proposal with your partner."
)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"  ok  {what}")


def wait_for(fn, what, timeout=120, every=0.5):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page may be mid-reload
            last = e
        time.sleep(every)
    raise Failed(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Env:
    def __init__(self, args):
        self.args = args
        self.data = tempfile.mkdtemp(prefix="salesai-browser-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.oidc_port = free_port()
        self.issuer = f"http://127.0.0.1:{self.oidc_port}"
        self.procs = []
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith(("SALESAI_", "SLACK_", "GROQ_", "GEMINI_", "DATABASE_URL")):
                del self.env[k]
        self.env.update({
            "SALESAI_DATA_DIR": self.data,
            "SALESAI_BIND": f"127.0.0.1:{self.port}",
            "SALESAI_OIDC_ISSUER": self.issuer,
            "SALESAI_OIDC_CLIENT_ID": "salesai-browser",
            "SALESAI_OIDC_CLIENT_SECRET": "browser-secret",
            "SALESAI_OIDC_NAME": "Example SSO",
            "SALESAI_SIGN_IN_DOMAINS": "example.com",
            "SALESAI_LOG": "warn",
        })
        if args.whisper:
            self.env["SALESAI_STT_BASE_URL"] = args.whisper

    def start(self):
        self.procs.append(subprocess.Popen(
            ["oidc-provider-mock", "--port", str(self.oidc_port), "--require-nonce", "true"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}))
        log = open(os.path.join(self.data, "serve.log"), "w")
        self.procs.append(subprocess.Popen([self.args.salesai, "serve"], env=self.env,
                                           stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: self._up(f"{self.base}/health"), "salesai serve", 60)
        wait_for(lambda: self._up(f"{self.issuer}/.well-known/openid-configuration"),
                 "oidc-provider-mock", 60)

    @staticmethod
    def _up(url):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def salesai(self, *argv):
        out = subprocess.run([self.args.salesai, *argv], env=self.env, check=True,
                             capture_output=True, text=True)
        return out.stdout

    def link(self, email, role=None, team=None):
        """A fresh one-time link for `email` (invited with `role` first when given)."""
        if role:
            argv = ["users", "invite", email, "--role", role]
            if team:
                argv += ["--team", team]
            out = self.salesai(*argv)
        else:
            out = self.salesai("users", "link", email)
        path = re.search(r"/login/link/[A-Za-z0-9_\-]+", out)
        if not path:
            raise Failed(f"no link in: {out}")
        return self.base + path.group(0)

    def oidc_user(self, sub, claims):
        req = urllib.request.Request(f"{self.issuer}/users/{sub}", method="PUT",
                                     data=json.dumps(claims).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def sign_in(b, link):
    b.get(link)
    b.click("button.primary")
    wait_for(lambda: not b.current_url().split("?")[0].endswith(link.split("/")[-1]),
             "the sign-in to finish", 20)


def upload(b, env, path, customer, name):
    b.get(env.base + "/upload")
    b.type("input[type=file]", path)
    b.type("input[name=customer_number]", customer)
    b.type("input[name=customer_name]", name)
    b.type("input[name=title]", f"{name} discovery")
    # The product line's own required fields, whatever they are.
    b.run("""document.querySelectorAll('form [required]').forEach(function (el) {
        if (el.type === 'file' || el.value) return;
        if (el.tagName === 'SELECT') { el.selectedIndex = Math.max(1, el.selectedIndex); }
        else { el.value = 'n/a'; }
    });""")
    b.click("form button.primary[type=submit]")
    url = wait_for(lambda: (lambda u: u if re.search(r"/calls/[0-9a-f-]{36}", u) else None)(b.current_url()),
                   "the call page after upload", 60)
    return re.search(r"/calls/([0-9a-f-]{36})", url).group(1)


def completed(b, env, call, timeout):
    def done():
        b.get(f"{env.base}/calls/{call}/status")
        body = json.loads(b.run("return document.body.innerText"))
        if body.get("status") == "failed":
            raise Failed(f"call {call} failed: {body}")
        return body.get("status") == "completed"
    wait_for(done, f"call {call} to complete", timeout, every=1.5)
    b.get(f"{env.base}/calls/{call}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--salesai", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--whisper", help="an OpenAI-compatible speech-to-text base URL (…/v1)")
    args = p.parse_args()
    if not args.whisper and os.environ.get("CI") == "true":
        sys.exit("browser-test: --whisper is required in CI")
    os.makedirs(args.out, exist_ok=True)
    env = Env(args)
    browsers = []

    def browser(lang):
        b = Browser(lang=lang)
        browsers.append(b)
        return b

    current = None
    try:
        env.start()
        print(f"salesai at {env.base} (data in {env.data}); OpenID provider at {env.issuer}")

        print("1. the first admin signs in with a one-time link")
        admin = current = browser("zh-TW")
        sign_in(admin, env.link("admin@example.com", "admin", "ops"))
        check(admin.current_url() == env.base + "/", "the link lands on home")
        check("維運" in admin.text("nav.mainnav"), "an admin sees Operations in zh-TW")

        print("2. a rep uploads a Chinese transcript and sees the analysis")
        ann = current = browser("en")
        sign_in(ann, env.link("ann@example.com", "rep", "north"))
        work = tempfile.mkdtemp(prefix="salesai-browser-files-")
        transcript = os.path.join(work, "chen-call.txt")
        with open(transcript, "w", encoding="utf-8") as f:
            f.write(TRANSCRIPT_ZH)
        text_call = upload(ann, env, transcript, "C-100", "好食餐廳")
        completed(ann, env, text_call, 120)
        page = ann.run("return document.body.innerText")
        check("Next action" in page, "the call page shows the next action")
        check("漏單" in page, "the call page shows the customer's words")
        check(ann.run("return document.querySelectorAll('#transcript li[data-t]').length") >= 6,
              "the transcript is on the page, line by line")

        print("2b. meeting notes keep no link that could run script")
        ann.run("""var t = document.querySelector('textarea[name=markdown]');
            t.value = '# Notes\\n\\n[x](javascript:window.pwned=1) ![i](javascript:window.pwned=2) ' +
              '[d](data:text/html;base64,PHNjcmlwdD4=) [J](JaVaScRiPt:window.pwned=3) ' +
              '[e](jav&#x61;script:window.pwned=4) [ok](https://example.com/next)';""")
        ann.run("document.querySelector('textarea[name=markdown]').closest('details').open = true")
        ann.click("button[name=action][value=save]")
        wait_for(lambda: "#notes" in ann.current_url(), "the notes to be saved", 20)
        hrefs = ann.run("return Array.prototype.map.call(document.querySelectorAll('.markdown a'), function (a) { return a.href; })")
        check(hrefs == ["https://example.com/next"], f"only the https link is a link: {hrefs}")
        check(ann.run("return document.querySelectorAll('.markdown img, .markdown script').length") == 0,
              "no image or script in the notes")
        for text in ("x", "J", "e"):
            ann.run("var w = document.evaluate(\"//div[contains(@class,'markdown')]//text()[normalize-space()='" + text + "']\", document, null, 9, null).singleNodeValue; if (w && w.parentElement) w.parentElement.click();")
        check(ann.run("return window.pwned === undefined"), "clicking the words runs nothing")

        print("3. search a Traditional Chinese phrase and land on its moment")
        # A phrase (the trigram index) and a two-character word (the gram index, migration 0013).
        for term, what in (("預算大概", "phrase"), ("漏單", "two-character word")):
            ann.get(env.base + "/calls?q=" + urllib.request.quote(term))
            check("好食餐廳" in ann.run("return document.body.innerText"), f"the {what} finds the call")
            ann.click("a[href*='?t=']")
            wait_for(lambda: "#hit" in ann.current_url(), f"the jump to the {what}'s moment", 20)
            target = ann.run("var t = document.querySelector(':target'); return t ? t.textContent : ''")
            check(term in target, f"the page opens at the line with the {what}")

        print("4. clicking a transcript line moves the recording there")
        audio_call = None
        if args.whisper:
            wav = os.path.join(work, "counter.wav")
            subprocess.run(["espeak-ng", "-s", "150", "-w", wav, SPEECH_EN], check=True)
            audio_call = upload(ann, env, wav, "C-200", "Counter Cafe")
            completed(ann, env, audio_call, 300)
            starts = ann.run("return Array.prototype.map.call(document.querySelectorAll('#transcript li[data-t]'), function (l) { return l.getAttribute('data-t').split(':').reduce(function (a, p) { return a * 60 + Number(p); }, 0); })")
            check(len(starts) >= 2, f"Whisper gave the recording {len(starts)} timed lines")
            later = max(starts) * 1000
            check(later > 0, "a line starts after the beginning")
            ann.run("document.getElementById('audio').muted = true")
            ann.click("#transcript li:last-child")
            now = wait_for(lambda: (lambda t: t if t and t >= later / 1000 - 0.05 else None)(
                ann.run("return document.getElementById('audio').currentTime")), "the audio to seek", 10)
            check(abs(now - later / 1000) < 1.5, f"currentTime {now:.2f}s is the line's {later / 1000:.2f}s")
        else:
            print("  note: no --whisper; the recording step is skipped")

        print("4b. a recording that cannot be transcribed fails; its manager sees why in words, and no Retry that cannot help")
        broken = os.path.join(work, "broken.wav")
        with open(broken, "wb") as f:
            # A WAV header over noise: sniffed as a recording, refused by the decoder.
            f.write(b"RIFF" + (36 + 4000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                    + bytes([0x55] * 16) + b"data" + (4000).to_bytes(4, "little") + os.urandom(4000))
        failed_call = upload(ann, env, broken, "C-300", "Broken Bistro")
        wait_for(lambda: (ann.get(f"{env.base}/calls/{failed_call}"),
                          ann.run("return document.querySelector('.failure') !== null"))[1],
                 "the broken recording to fail", 120)
        env.salesai("users", "invite", "mia@example.com", "--role", "manager", "--team", "north",
                    "--manages", "north")
        mia = current = browser("zh-TW")
        sign_in(mia, env.link("mia@example.com"))
        mia.get(f"{env.base}/calls/{failed_call}")
        failure = mia.text(".failure")
        check("GROQ_API_KEY" not in failure and "SALESAI_STT_BASE_URL" not in failure,
              f"a manager is not shown setting names: {failure}")
        check("STT_NOT_CONFIGURED" not in failure, f"nor error codes: {failure}")

        print("4c. the filters open without stretching the search button")
        ann.get(f"{env.base}/calls?status=completed")
        heights = ann.run("var b = document.querySelector('.search-row button'); var i = document.querySelector('.search-row input'); return [b.getBoundingClientRect().height, i.getBoundingClientRect().height];")
        check(heights[0] <= heights[1] * 1.5, f"the search button is as tall as the box: {heights}")

        print("5. another team's rep gets the 403 page")
        bob = current = browser("en")
        sign_in(bob, env.link("bob@example.com", "rep", "south"))
        bob.get(f"{env.base}/calls/{text_call}")
        check(bob.text(".error-code") == "403", "the page says 403")
        check("好食餐廳" not in bob.run("return document.body.innerText"), "nothing of the call shows")

        print("6. zh-TW ↔ English")
        current = ann
        ann.get(f"{env.base}/calls")
        ann.click("a.lang-switch")
        wait_for(lambda: ann.run("return document.documentElement.lang") == "zh-TW", "zh-TW", 10)
        check("通話" in ann.text("nav.mainnav"), "the menu is in Chinese")
        ann.click("a.lang-switch")
        wait_for(lambda: ann.run("return document.documentElement.lang") == "en", "English", 10)
        check("Calls" in ann.text("nav.mainnav"), "and back in English")

        print("7. single sign-on through OpenID Connect")
        env.oidc_user("cat", {"email": "cat@example.com", "email_verified": True, "name": "Cat Wu"})
        cat = current = browser("en")
        cat.get(env.base + "/login")
        cat.click("a[href='/login/oidc/sso']")
        wait_for(lambda: cat.current_url().startswith(env.issuer), "the provider's page", 20)
        cat.type("input[name=sub]", "cat")
        cat.click("form button[type=submit]")
        wait_for(lambda: cat.current_url() == env.base + "/", "home after single sign-on", 20)
        check("Cat Wu" in cat.run("return document.body.innerText"), "Cat is signed in (joined as a rep)")

        print("screenshots")
        current = None
        shots = screenshots(env, args.out, text_call, audio_call, failed_call)
        print(f"{len(shots)} screenshots in {os.path.abspath(args.out)}")
        print("browser tests passed")
    except (Failed, RuntimeError) as e:
        if current is not None:
            path = os.path.join(args.out, "FAILED.png")
            try:
                current.screenshot(path, 1366)
                print(f"  (screenshot of the failure: {path}; page {current.current_url()})")
            except Exception:
                pass
        print(f"FAILED: {e}", file=sys.stderr)
        log = os.path.join(env.data, "serve.log")
        if os.path.exists(log):
            print("--- salesai serve log (tail) ---", file=sys.stderr)
            print(open(log).read()[-4000:], file=sys.stderr)
        sys.exit(1)
    finally:
        for b in browsers:
            b.close()
        env.stop()
        shutil.rmtree(env.data, ignore_errors=True)


def screenshots(env, out, text_call, audio_call, failed_call):
    widths = {"desktop": 1366, "phone": 390}
    shots = []

    def shoot(b, name):
        for kind, width in widths.items():
            path = os.path.join(out, f"{name}-{kind}.png")
            b.screenshot(path, width)
            shots.append(path)

    for lang, code in [("zh-TW", "zh"), ("en", "en")]:
        b = Browser(lang=lang)
        try:
            b.get(f"{env.base}/lang?to={lang}&next=/login")
            shoot(b, f"{code}-login")
            link = env.link("admin@example.com")
            b.get(link)
            shoot(b, f"{code}-link")
            b.click("button.primary")
            # The next page only once the sign-in has landed (its cookie set), or the shots
            # would show the sign-in page.
            wait_for(lambda: not b.current_url().split("?")[0].endswith(link.split("/")[-1]),
                     "the sign-in to finish", 20)
            pages = [("home", "/"), ("calls", "/calls"),
                     ("search", "/calls?q=" + urllib.request.quote("漏單")),
                     ("call", f"/calls/{text_call}"), ("upload", "/upload"),
                     ("people", "/people"), ("ops", "/ops"), ("api", "/api"),
                     ("notfound", "/calls/00000000-0000-7000-8000-000000000000")]
            if audio_call:
                pages.append(("call-audio", f"/calls/{audio_call}"))
            for name, path in pages:
                b.get(env.base + path)
                shoot(b, f"{code}-{name}")
        finally:
            b.close()
        rep = Browser(lang=lang)
        try:
            sign_in(rep, env.link("bob@example.com"))
            rep.get(f"{env.base}/calls/{text_call}")
            shoot(rep, f"{code}-forbidden")
            rep.get(f"{env.base}/")
            shoot(rep, f"{code}-rep-home")
        finally:
            rep.close()
        mia = Browser(lang=lang)
        try:
            sign_in(mia, env.link("mia@example.com"))
            mia.get(f"{env.base}/calls/{failed_call}")
            shoot(mia, f"{code}-failed-call-manager")
            mia.get(f"{env.base}/calls?status=completed")
            shoot(mia, f"{code}-calls-filters-open")
            mia.get(f"{env.base}/no/such/page")
            shoot(mia, f"{code}-404")
        finally:
            mia.close()
    return shots


if __name__ == "__main__":
    main()
