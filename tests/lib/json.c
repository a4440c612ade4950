// SPDX-License-Identifier: MIT
/*
 * json.c - is a program's output JSON: python3's json module runs a check
 * on it when there is python3, and a minimal strict parser (also checked
 * against python3's verdict) tells when there is not.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PYTHON "/usr/bin/python3"
#define PY_MS 10000

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
	while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *js_string(const char *p)
{
	int i;

	if (!p || *p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *js_digits(const char *p)
{
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

static const char *js_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (!(p = js_digits(p)))
		return NULL;
	if (*p == '.' && !(p = js_digits(p + 1)))
		return NULL;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		p = js_digits(p);
	}
	return p;
}

static const char *js_seq(const char *p, int depth, char close, int obj)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			p = js_ws(js_string(js_ws(p)));
			if (!p || *p++ != ':')
				return NULL;
		}
		p = js_ws(js_value(p, depth + 1));
		if (!p)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *p, int depth)
{
	p = js_ws(p);
	if (!p || depth > 32)
		return NULL;
	switch (*p) {
	case '{':
		return js_seq(p, depth, '}', 1);
	case '[':
		return js_seq(p, depth, ']', 0);
	case '"':
		return js_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return js_number(p);
	}
}

/* python3 runs check on text, parsed as d, which must be of type kind. */
static void py_check(const char *text, const char *kind, const char *check,
		     const char *what)
{
	static struct lf_out py;
	char code[2048];
	char *argv[] = { PYTHON, "-c", code, NULL };

	lf_fmt(code, sizeof(code),
	       "import json, sys\n"
	       "d = json.loads(sys.stdin.read())\n"
	       "assert isinstance(d, %s), 'not an %s'\n"
	       "%s\n",
	       kind, !strcmp(kind, "dict") ? "object" : "array",
	       check ? check : "");
	lf_run_as(&py, 0, text, PY_MS, argv);
	cr_assert(py.code == 0, "%s: JSON check failed:\n%s\n--- text:\n%s",
		  what, py.err, text);
}

void lf_assert_json(const char *text, const char *check, const char *what)
{
	const char *end = js_ws(js_value(text, 0));

	if (access(PYTHON, X_OK)) {
		cr_assert(*js_ws(text) == '{' && end && !*end,
			  "%s: not one JSON object:\n%s", what, text);
		return;
	}
	py_check(text, "dict", check, what);
	/* the fallback parser must agree, so it is tested too */
	cr_assert(end && !*end, "%s: minimal JSON parser disagrees:\n%s", what,
		  text);
}

void lf_assert_json_list(const char *text, const char *check, const char *what)
{
	const char *end = js_ws(js_value(text, 0));

	cr_assert(*js_ws(text) == '[' && end && !*end,
		  "%s: not one JSON array:\n%s", what, text);
	if (access(PYTHON, X_OK))
		return;
	py_check(text, "list", check, what);
}
