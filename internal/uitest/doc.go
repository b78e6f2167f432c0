// Package uitest drives the broker's pages in headless Chromium: the
// login chooser, the account page, their accessibility basics and the
// sandbox demo. The tests are in the _test files; browsertest starts the
// browser.
package uitest
