// The headless Chromium both drivers use (play.mjs, preview.mjs): one launch, one page, and the
// page's console errors and uncaught exceptions collected into `errors` (not fatal by themselves).
import puppeteer from 'puppeteer-core';

export async function openPage(errors) {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, // puppeteer adds --headless=new (and --mute-audio) for this
    // --no-sandbox: the tests run as root; autoplay without a click, muted.
    args: ['--headless=new', '--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push({ source: 'console', fatal: false, message: m.text(), url: m.location()?.url });
    });
    page.on('pageerror', (e) => errors.push({ source: 'pageerror', fatal: false, message: e.message }));
    return { browser, page };
  } catch (e) {
    await browser.close();
    throw e;
  }
}
