#!/usr/bin/env python3
"""Screenshots of every web page, desktop and phone width, zh-TW and English, for review.

    SALESAI_DATA_DIR=… python3 scripts/screenshots.py --base http://127.0.0.1:3900 \
        --salesai target/debug/salesai --admin admin@example.com --rep ann@example.com \
        --other-call <id of a call the rep may not open> --out /tmp/shots

Signs in with fresh one-time links made by `salesai users link` (same settings as the server).
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from webdriver import Browser  # noqa: E402

WIDTHS = {"desktop": 1366, "phone": 390}


def link(args, who):
    out = subprocess.run([args.salesai, "users", "link", who], check=True, capture_output=True, text=True)
    path = out.stdout.strip().split("/login/link/")[1]
    return f"{args.base}/login/link/{path}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--salesai", required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--rep", required=True)
    p.add_argument("--call", required=True, help="a call to show (zh)")
    p.add_argument("--call-en", required=True, help="a call to show (en)")
    p.add_argument("--other-call", required=True, help="a call the rep may not open")
    p.add_argument("--search", default="預算")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    shots = []

    def shoot(b, name):
        for kind, width in WIDTHS.items():
            path = os.path.join(args.out, f"{name}-{kind}.png")
            b.screenshot(path, width)
            shots.append(path)

    for lang in ["zh-TW", "en"]:
        b = Browser(lang=lang)
        try:
            code = "zh" if lang == "zh-TW" else "en"
            b.get(f"{args.base}/lang?to={lang}&next=/login")
            shoot(b, f"{code}-login")
            b.get(link(args, args.admin))
            shoot(b, f"{code}-link")
            b.click("button.primary")
            pages = [
                ("home", "/"),
                ("calls", "/calls"),
                ("search", f"/calls?q={args.search}"),
                ("call", f"/calls/{args.call}"),
                ("call-en", f"/calls/{args.call_en}"),
                ("people", "/people"),
                ("notfound", "/calls/00000000-0000-7000-8000-000000000000"),
            ]
            for name, path in pages:
                b.get(args.base + path)
                shoot(b, f"{code}-{name}")
        finally:
            b.close()
        rep = Browser(lang=lang)
        try:
            rep.get(link(args, args.rep))
            rep.click("button.primary")
            rep.get(f"{args.base}/calls/{args.other_call}")
            shoot(rep, f"{code}-forbidden")
            rep.get(f"{args.base}/")
            shoot(rep, f"{code}-rep-home")
        finally:
            rep.close()
    print("\n".join(shots))


if __name__ == "__main__":
    main()
