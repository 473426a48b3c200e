"""The CJK web font holds every Chinese character the book prints, and the site loads it."""

import re
import sys
from pathlib import Path

import yaml
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_cjk_font  # noqa: E402


def test_the_subset_covers_the_book():
    characters = make_cjk_font.book_characters()
    assert {"迁", "移", "学", "习", "多", "任", "务"} <= set(characters)
    font = TTFont(str(make_cjk_font.FONT_FILE))
    covered = {chr(code) for code in font.getBestCmap()}
    missing = sorted(set(characters) - covered)
    assert not missing, f"the CJK font lacks {''.join(missing)}: run scripts/make_cjk_font.py"
    assert font.flavor == "woff" and make_cjk_font.FONT_FILE.stat().st_size < 150_000
    license_notice = font["name"].getDebugName(13) or ""
    assert "Open Font License" in license_notice and make_cjk_font.LICENSE_FILE.is_file()


def test_book_characters_finds_chinese_only(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.md").write_text("Transfer 迁移，learning。 ASCII ü é", encoding="utf-8")
    (tmp_path / "README.md").write_text("多任务", encoding="utf-8")
    assert make_cjk_font.book_characters(tmp_path) == "".join(sorted("迁移，。多任务"))


def test_the_site_serves_the_font():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["sphinx"]
    assert config["local_extensions"]["cjk_font"] == "book/_ext"
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import cjk_font

    static = make_cjk_font.FONT_FILE.parent.parent
    assert cjk_font.STATIC == static and (static / cjk_font.FONT) == make_cjk_font.FONT_FILE
    css = (static / cjk_font.STYLESHEET).read_text(encoding="utf-8")
    url = re.search(r'url\("([^"]+)"\)', css).group(1)
    assert (static / url) == make_cjk_font.FONT_FILE
    assert css.count('"Book CJK Fallback"') == 3  # declared, then last in the text and the code fonts
