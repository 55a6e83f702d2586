// Package e2e holds Chorus's end-to-end tests: a real server in the test
// process and the bundled web client in headless Chromium.
//
// The browser tests skip when no Chromium is installed. Set CHORUS_CHROMIUM
// to the browser's path when it is not /usr/bin/chromium, and CHORUS_E2E=1 to
// make a missing browser a failure rather than a skip.
package e2e
