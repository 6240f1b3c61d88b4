package sources

import "unicode/utf8"

// TruncateUTF8 cuts s to at most n bytes without splitting a UTF-8 character: for dead-letter reasons and other
// text a queue limits in bytes.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
