/* Unit tests for meterkeyd's HTML text (src/daemon/html.c): whatever a
 * string holds, the status page shows it as text, never as markup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/html.c"

/* s[0..n) escaped, as a malloc'd string; its length as returned. */
static char *escaped(const char *s, size_t n, long *lenp)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	*lenp = svc_html_escape(f, s, n);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(*lenp, (long)len);
	return text;
}

static void check(const char *in, size_t n, const char *want)
{
	long len;
	char *got = escaped(in, n, &len);

	assert_string_equal(got, want);
	free(got);
}

#define CHECK(in, want) check(in, sizeof(in) - 1, want)

static void test_markup_is_text(void **state)
{
	(void)state;
	CHECK("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
	CHECK("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;");
	/* out of a quoted attribute, either quote */
	CHECK("x\" onmouseover=\"a", "x&quot; onmouseover=&quot;a");
	CHECK("x' onmouseover='a", "x&#39; onmouseover=&#39;a");
	/* a reference written in the text stays text */
	CHECK("&lt;b&gt; &amp;", "&amp;lt;b&amp;gt; &amp;amp;");
}

/* The twin: what needs nothing is written as it is, UTF-8 included. */
static void test_plain_text_unchanged(void **state)
{
	(void)state;
	CHECK("B00000001 VE USPS /var/lib/meterkey/run/B00000001.sock: 3 of 5",
	      "B00000001 VE USPS /var/lib/meterkey/run/B00000001.sock: 3 of 5");
	CHECK("Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x93\xae", "Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x93\xae");
	CHECK("tab\there\nnewline", "tab\there\nnewline");
	CHECK("", "");
}

/* Control characters and every malformed UTF-8 sequence: U+FFFD each byte,
 * so that no byte reaches the page that a browser might read otherwise. */
static void test_controls_and_bad_utf8_replaced(void **state)
{
	(void)state;
	CHECK("a\x01" "b\x7f" "c\x1b[0m", "a&#xFFFD;b&#xFFFD;c&#xFFFD;[0m");
	CHECK("a\0b", "a&#xFFFD;b"); /* a NUL inside the length given */
	CHECK("\xc0\xbc", "&#xFFFD;&#xFFFD;");             /* overlong '<' */
	CHECK("\xe0\x80\xbc", "&#xFFFD;&#xFFFD;&#xFFFD;"); /* overlong '<', three bytes */
	CHECK("\xed\xa0\x80", "&#xFFFD;&#xFFFD;&#xFFFD;"); /* a surrogate */
	CHECK("\xf4\x90\x80\x80", "&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"); /* past U+10FFFF */
	CHECK("\x80x", "&#xFFFD;x");                        /* a lone continuation */
	CHECK("\xe2\x82<", "&#xFFFD;&#xFFFD;&lt;");         /* cut short, then markup */
	CHECK("\xff\xfe", "&#xFFFD;&#xFFFD;");
}

static void test_nul_terminated_and_null(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	assert_int_equal(svc_html_text(f, "<b>"), 9);
	assert_int_equal(svc_html_text(f, NULL), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(text, "&lt;b&gt;");
	free(text);
}

/* A stream that fails: -1, never a count. */
static void test_write_failure(void **state)
{
	FILE *f = fopen("/dev/full", "w");

	(void)state;
	if (f == NULL)
		skip();
	setvbuf(f, NULL, _IONBF, 0);
	assert_int_equal(svc_html_text(f, "plain"), -1);
	assert_int_equal(svc_html_text(f, "<"), -1);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_markup_is_text),
		cmocka_unit_test(test_plain_text_unchanged),
		cmocka_unit_test(test_controls_and_bad_utf8_replaced),
		cmocka_unit_test(test_nul_terminated_and_null),
		cmocka_unit_test(test_write_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
