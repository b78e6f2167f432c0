// Package miniprogram holds the Go side of the mini-program SDK, a
// JavaScript package (index.js): the test that runs its Node tests
// against a real broker and the WeChat simulator, so that the
// repository's one test command covers it.
package miniprogram
