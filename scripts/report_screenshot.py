#!/usr/bin/env python3
"""A screenshot of a report.html as a reader sees it: Debian's headless Chromium, opened from file:// with the
network cut off (autoguide_py/browser.py, the code tests/python/test_report.py opens reports with). Refuses a
page that logged a console error or asked for the network.

    scripts/report_screenshot.py out/demo/report.html docs/demo_report.png [--width 1400] [--height 0]
        [--click-grid ROW,COL]

--height 0 (the default) takes the whole page; a height crops it to the top of the page. --click-grid clicks
that image of the grid first, so that the panel shows its seed, class and parameters (the README's: 2,3)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoguide_py import browser as offline  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('page')
    ap.add_argument('out')
    ap.add_argument('--width', type=int, default=1400)
    ap.add_argument('--height', type=int, default=0, help='window height; 0: the whole page')
    ap.add_argument('--click-grid', metavar='ROW,COL', help='click this image of the grid first')
    a = ap.parse_args()
    why = offline.available()
    if why:
        sys.exit(f'report_screenshot: error: {why}')
    if not Path(a.page).is_file():
        sys.exit(f'report_screenshot: error: {a.page} does not exist; write it with autoguide report or --report')
    with offline.OfflineBrowser(a.width, a.height or 1000) as b:
        b.open(a.page)
        problems = b.problems()
        if problems:
            sys.exit('report_screenshot: error: the page ' + '; '.join(problems))
        if a.click_grid:
            row, col = (int(v) for v in a.click_grid.split(','))
            b.click_grid(row, col)
        b.screenshot(a.out, full_page=a.height == 0)
    print(a.out)


if __name__ == '__main__':
    main()
