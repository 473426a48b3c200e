"""Regenerate the book's CJK web font: Noto Sans SC cut down to the characters the book uses.

    apt-get install fonts-noto-cjk            # the source font, on Debian or Ubuntu
    python scripts/make_cjk_font.py           # writes book/_static/cjk/ (commit it)
    python scripts/make_cjk_font.py --font PATH [--font-number N]   # another copy of the font

The book prints 迁移学习, 多任务学习 and a bilingual glossary. A reader's machine without
a CJK font (a fresh Linux, the headless Chromium of the browser test) shows every
Chinese character as an empty box. book/_static/cjk-font.css declares this subset as the
last fallback of the theme's fonts, for CJK code points only, so the browser fetches it
on pages with Chinese text and uses it for nothing else.

The subset holds the CJK characters (ideographs and CJK punctuation) found in book/,
README.md and the package's docstrings (the API page), about two hundred glyphs. It is
written as WOFF (zlib, which fontTools needs nothing more for; WOFF2 would need brotli).
Its name table is kept whole, with the copyright and the SIL Open Font License notice
the OFL asks to travel with the font; the license text is written beside it.
tests/test_cjk_font.py fails when the book uses a character the subset lacks: run this
script again then.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "_static" / "cjk"
FONT_FILE = OUT / "noto-sans-sc-subset.woff"
LICENSE_FILE = OUT / "OFL.txt"
DEBIAN_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
DEBIAN_COPYRIGHT = Path("/usr/share/doc/fonts-noto-cjk/copyright")
FAMILY = "Noto Sans CJK SC"
# CJK punctuation, kana, ideographs (with extension A), compatibility ideographs, full-width forms.
CJK = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
SOURCES = ("book/**/*.md", "book/**/*.ipynb", "book/**/*.bib", "README.md", "src/**/*.py")


def book_characters(root: Path = ROOT) -> str:
    """Every CJK character in the book's sources, sorted."""
    found: set[str] = set()
    for pattern in SOURCES:
        for path in root.glob(pattern):
            if ".ipynb_checkpoints" not in path.parts:
                found |= set(CJK.findall(path.read_text(encoding="utf-8", errors="ignore")))
    return "".join(sorted(found))


def font_number(font: Path, family: str = FAMILY) -> int:
    """The index of ``family`` in a font collection (.ttc); 0 for a single font."""
    if font.suffix.lower() != ".ttc":
        return 0
    for number in range(32):
        try:
            names = TTFont(str(font), fontNumber=number, lazy=True)["name"]
        except IndexError:
            break
        if names.getDebugName(1) == family:
            return number
    raise SystemExit(f"{font} holds no {family!r}")


def write_subset(font: Path, number: int, characters: str, out: Path = FONT_FILE) -> Path:
    """``font`` reduced to ``characters``, as WOFF at ``out``."""
    options = subset.Options()
    options.flavor = "woff"
    options.font_number = number
    options.name_IDs = ["*"]          # keep the copyright and license notices
    options.name_languages = ["*"]
    loaded = subset.load_font(str(font), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters)
    subsetter.subset(loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(loaded, str(out), options)
    return out


def write_license(copyright_file: Path = DEBIAN_COPYRIGHT, out: Path = LICENSE_FILE) -> Path | None:
    """The OFL text from Debian's copyright file of fonts-noto-cjk, if there is one."""
    if not copyright_file.is_file():
        return None
    text = copyright_file.read_text(encoding="utf-8")
    # The stand-alone "License:" paragraph (the last one naming it): its continuation lines
    # start with a space, and " ." stands for an empty line.
    lines = []
    for line in text[text.rindex("License: SIL-1.1"):].split("\n")[1:]:
        if not line.startswith(" "):
            break
        lines.append("" if line.strip() == "." else line[1:])
    body = "\n".join(lines).strip()
    out.write_text(f"{FAMILY} (subset in {FONT_FILE.name}): © 2014-2021 Adobe; Noto is a trademark of Google.\n"
                   f"Licensed under the SIL Open Font License 1.1:\n\n{body}\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--font", type=Path, default=DEBIAN_FONT, help="Noto Sans CJK (.ttc or SC .otf)")
    parser.add_argument("--font-number", type=int, help="the SC face's index in a .ttc (found by name if not given)")
    args = parser.parse_args()
    if not args.font.is_file():
        raise SystemExit(f"{args.font} is missing: `apt-get install fonts-noto-cjk`, or pass --font")
    characters = book_characters()
    number = args.font_number if args.font_number is not None else font_number(args.font)
    out = write_subset(args.font, number, characters)
    print(f"{out.relative_to(ROOT)}: {len(characters)} characters, {out.stat().st_size // 1024} KiB")
    if license_file := write_license():
        print(f"{license_file.relative_to(ROOT)} written")


if __name__ == "__main__":
    sys.exit(main())
