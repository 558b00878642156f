// How the e2e tests launch Firefox ESR (over WebDriver BiDi) and Chromium
// (over CDP) with puppeteer-core: fake camera and microphone, no
// permission prompts, sound without a click.
import puppeteer from 'puppeteer-core';

/**
 * launchFirefox starts a headless Firefox ESR whose getUserMedia gives its
 * fake devices (one camera, one microphone) without asking.
 * @param {string} [executablePath] default /usr/bin/firefox-esr
 */
export function launchFirefox(executablePath) {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: executablePath || '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      // ICE and TURN on 127.0.0.1, as the tests' icebox is.
      'media.peerconnection.ice.loopback': true,
      'media.getusermedia.screensharing.enabled': true,
      'media.getdisplaymedia.enabled': true,
    },
  });
}

/**
 * launchChromium starts a headless Chromium with its fake devices.
 * @param {string} [executablePath] default /usr/bin/chromium
 */
export function launchChromium(executablePath) {
  return puppeteer.launch({
    executablePath: executablePath || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection',
      '--autoplay-policy=no-user-gesture-required', '--auto-select-desktop-capture-source=Entire screen'],
  });
}
