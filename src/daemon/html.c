/*
 * meterkeyd's HTML text (html.h): the one way a string reaches the status
 * page. Whatever a string holds (a path an operator chose, a detail a box
 * process gave), the page shows it as text and never as markup.
 */
#include <stdint.h>
#include <string.h>

#include "html.h"

/* The length of the well-formed UTF-8 sequence at p[0..n) (RFC 3629: no
 * overlong form, no surrogate, nothing past U+10FFFF), 0 when there is
 * none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3fu);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

long svc_html_escape(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	long out = 0;
	size_t i = 0;

	while (i < n) {
		const char *ref = NULL;
		size_t len = utf8_len(p + i, n - i);

		switch (len == 1 ? p[i] : 0x100) {
		case '&': ref = "&amp;"; break;
		case '<': ref = "&lt;"; break;
		case '>': ref = "&gt;"; break;
		case '"': ref = "&quot;"; break;
		case '\'': ref = "&#39;"; break;
		case '\t':
		case '\n':
			break;
		default:
			if (len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f)))
				ref = "&#xFFFD;";
		}
		if (len == 0)
			len = 1; /* the byte alone is replaced; the next starts afresh */
		if (ref != NULL ? fputs(ref, f) < 0 : fwrite(p + i, 1, len, f) != len)
			return -1;
		out += ref != NULL ? (long)strlen(ref) : (long)len;
		i += len;
	}
	return out;
}

long svc_html_text(FILE *f, const char *s)
{
	return s != NULL ? svc_html_escape(f, s, strlen(s)) : 0;
}
