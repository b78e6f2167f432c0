package miniprogram

// This file lets Go run the Node tests of scan.js (scan_test.go); the
// SDK itself is JavaScript.
