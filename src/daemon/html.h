/*
 * meterkeyd's HTML (the status page, status.c): text written into a page
 * with every character that HTML gives a meaning escaped. Pure: no I/O but
 * the stream given, unit-tested by tests/unit/test_html.c.
 */
#ifndef MK_DAEMON_HTML_H
#define MK_DAEMON_HTML_H

#include <stddef.h>
#include <stdio.h>

/* Writes s[0..n) to f as HTML text, good in an element's content and in a
 * quoted attribute alike: & < > " ' as character references, a control
 * character (below 0x20 but tab and newline, and 0x7f) and a byte of a
 * malformed UTF-8 sequence each as U+FFFD, so that nothing written can
 * open a tag, end an attribute or hide in an invalid sequence. The number
 * of bytes written, or -1 when f failed. */
long svc_html_escape(FILE *f, const char *s, size_t n);

/* The same for a NUL-terminated string (NULL: nothing). */
long svc_html_text(FILE *f, const char *s);

#endif
