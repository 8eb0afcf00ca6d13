"""A real headless Chromium with the network cut off, for looking at report.html as a reader does (from
file://): the tests open reports with it, and scripts/report_screenshot.py makes the README's screenshot with it.

Debian's `chromium`, `chromium-driver` and `python3-selenium` (scripts/setup.sh). Every request other than file:
and data: goes to a proxy on a dead port and every host name fails to resolve, so a page that reached for the
network would show it as a failed request; `problems()` lists those and the console's errors."""
import json
import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get('AUTOGUIDE_CHROMIUM', shutil.which('chromium') or '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('AUTOGUIDE_CHROMEDRIVER', shutil.which('chromedriver') or '/usr/bin/chromedriver')


def available():
    """None when a headless Chromium can be driven here, else why not."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'python3-selenium not installed (scripts/setup.sh)'
    for path, package in ((CHROMIUM, 'chromium'), (CHROMEDRIVER, 'chromium-driver')):
        if not os.path.exists(path):
            return f'{path} not found: install {package} (scripts/setup.sh)'
    return None


class OfflineBrowser:
    """One headless Chromium session. `width` x `height`: the window (CSS pixels)."""

    def __init__(self, width=1400, height=1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                    f'--window-size={width},{height}', '--hide-scrollbars', '--force-device-scale-factor=1',
                    # No network: a dead proxy for every scheme, no name resolution, no background traffic.
                    '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=<-loopback>',
                    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost',
                    '--disable-background-networking', '--disable-component-update', '--disable-sync',
                    '--no-first-run', '--disable-default-apps', '--disable-extensions'):
            options.add_argument(arg)
        options.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(30)

    def open(self, page):
        """Loads `page` (a path) from file:// and waits until its script has drawn it."""
        from selenium.webdriver.support.ui import WebDriverWait
        self.driver.get_log('browser'), self.driver.get_log('performance')  # drop what an earlier page left
        self.driver.get(Path(page).resolve().as_uri())
        WebDriverWait(self.driver, 20).until(
            lambda d: d.execute_script('return document.body && document.body.dataset.rendered === "true"'
                                       ' && [...document.images].every(i => i.complete)'))
        return self.driver

    def problems(self):
        """Console errors and failed or non-local requests since the last open()."""
        found = [f"console {e['level']}: {e['message']}" for e in self.driver.get_log('browser')
                 if e['level'] in ('SEVERE', 'WARNING')]
        for entry in self.driver.get_log('performance'):
            message = json.loads(entry['message'])['message']
            params = message.get('params', {})
            if message['method'] == 'Network.loadingFailed':
                found.append(f"failed request: {params.get('errorText')} ({params.get('requestId')})")
            elif message['method'] == 'Network.requestWillBeSent':
                url = params.get('request', {}).get('url', '')
                if not url.startswith(('file:', 'data:')):
                    found.append(f'network request: {url}')
        return found

    def screenshot(self, out, full_page=True):
        """A PNG of the page (its whole height with full_page, else the window); returns the PNG's bytes."""
        import base64
        d = self.driver
        d.execute_script('window.scrollTo(0, 0)')
        if full_page:
            width, height = d.execute_script('return [document.documentElement.scrollWidth, '
                                             'document.documentElement.scrollHeight]')
            shot = d.execute_cdp_cmd('Page.captureScreenshot', {
                'format': 'png', 'captureBeyondViewport': True,
                'clip': {'x': 0, 'y': 0, 'width': width, 'height': min(height, 10000), 'scale': 1}})
            png = base64.b64decode(shot['data'])
        else:
            png = d.get_screenshot_as_png()
        if out:
            tmp = Path(str(out) + '.tmp')
            tmp.write_bytes(png)
            os.replace(tmp, out)
        return png

    def click_grid(self, row, col):
        """Clicks the centre of the grid's image at (row, col) as a reader would; returns the details panel's
        seed and class."""
        from selenium.webdriver.common.action_chains import ActionChains
        d = self.driver
        layout = d.execute_script('return JSON.parse(document.getElementById("report-data").textContent)'
                                  '.results.grid_layout')
        img = d.find_element('css selector', '#grid-img')
        d.execute_script('arguments[0].scrollIntoView({block: "center"})', img)
        scale = img.size['width'] / d.execute_script('return arguments[0].naturalWidth', img)
        x = (layout['left'] + (col + 0.5) * layout['tile_width']) * scale
        y = (layout['top'] + (row + 0.5) * layout['tile_height']) * scale
        ActionChains(d).move_to_element_with_offset(img, int(x - img.size['width'] / 2),
                                                    int(y - img.size['height'] / 2)).click().perform()
        return (d.find_element('css selector', '#details-seed').text,
                d.find_element('css selector', '#details-class').text)

    def close(self):
        self.driver.quit()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
