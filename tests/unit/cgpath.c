// SPDX-License-Identifier: MIT
/*
 * cgpath.c - unit tests of "MODE PATH" (cgroup-mode in the config file,
 * --cgroup-mode, the cgroup-mode command), the cgroup paths it names, and
 * the split of a control line whose argument is the rest of the line.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cgpath.h"
#include "lf_shared.h"
#include "proto.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *in;
	int ok;
	int mode;
	const char *path;
} spec_tbl[] = {
	{ "all /sys/fs/cgroup/a", 1, LF_MODE_ALL, "/sys/fs/cgroup/a" },
	{ "opt-in /x", 1, LF_MODE_OPT_IN, "/x" },
	{ "off /x", 1, LF_MODE_OFF, "/x" },
	{ "default /x", 1, LF_MODE_DEFAULT, "/x" },
	{ "  all \t /a//b/  ", 1, LF_MODE_ALL, "/a/b" },
	{ "all /a/my unit.service", 1, LF_MODE_ALL, "/a/my unit.service" },
	{ "all /", 1, LF_MODE_ALL, "/" },
	{ "all /a/.b/..c", 1, LF_MODE_ALL, "/a/.b/..c" },
	{ "all", 0, 0, NULL },
	{ "all ", 0, 0, NULL },
	{ "/sys/fs/cgroup/a", 0, 0, NULL },
	{ "fast /a", 0, 0, NULL },
	{ "ALL /a", 0, 0, NULL },
	{ "all a/b", 0, 0, NULL },
	{ "all /a/../b", 0, 0, NULL },
	{ "all /a/./b", 0, 0, NULL },
	{ "all /a/..", 0, 0, NULL },
	{ "", 0, 0, NULL },
};

Test(cgspec, parse_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(spec_tbl); i++) {
		char buf[128], *path = NULL;
		int mode = -1, err;

		snprintf(buf, sizeof(buf), "%s", spec_tbl[i].in);
		err = lf_cgspec_parse(buf, &mode, &path);
		if (!spec_tbl[i].ok) {
			cr_expect_eq(err, -EINVAL, "'%s' taken",
				     spec_tbl[i].in);
			continue;
		}
		cr_expect_eq(err, 0, "'%s' refused", spec_tbl[i].in);
		if (err)
			continue;
		cr_expect_eq(mode, spec_tbl[i].mode, "'%s': mode %d",
			     spec_tbl[i].in, mode);
		cr_expect_str_eq(path, spec_tbl[i].path, "'%s'",
				 spec_tbl[i].in);
	}
}

Test(cgspec, names_match_the_modes)
{
	cr_expect_str_eq(lf_cgroup_mode_names[LF_MODE_ALL], "all");
	cr_expect_str_eq(lf_cgroup_mode_names[LF_MODE_DEFAULT], "default");
	cr_expect_null(lf_cgroup_mode_names[LF_MODE_DEFAULT + 1]);
	cr_expect_eq(lf_name_index(lf_mode_names, "default"), -EINVAL,
		     "default is no global mode");
}

Test(cgpath, at_or_below)
{
	cr_expect(lf_path_at_or_below("/sys/fs/cgroup/s", "/sys/fs/cgroup/s"));
	cr_expect(
		lf_path_at_or_below("/sys/fs/cgroup/s", "/sys/fs/cgroup/s/a"));
	cr_expect(lf_path_at_or_below("/sys/fs/cgroup/s",
				      "/sys/fs/cgroup/s/a/b"));
	cr_expect(!lf_path_at_or_below("/sys/fs/cgroup/s", "/sys/fs/cgroup/sx"),
		  "a sibling with the same prefix is not below");
	cr_expect(!lf_path_at_or_below("/sys/fs/cgroup/s", "/sys/fs/cgroup"));
	cr_expect(!lf_path_at_or_below("/sys/fs/cgroup/s", "/"));
	cr_expect(lf_path_at_or_below("/", "/anything"));
	cr_expect(lf_path_at_or_below("/", "/"));
}

Test(cgpath, normalize)
{
	char p[64];

	snprintf(p, sizeof(p), "//a///b//");
	cr_expect_eq(lf_path_normalize(p), 0);
	cr_expect_str_eq(p, "/a/b");
	snprintf(p, sizeof(p), "///");
	cr_expect_eq(lf_path_normalize(p), 0);
	cr_expect_str_eq(p, "/");
	snprintf(p, sizeof(p), "a/b");
	cr_expect_eq(lf_path_normalize(p), -EINVAL);
	snprintf(p, sizeof(p), "/a/./b");
	cr_expect_eq(lf_path_normalize(p), -EINVAL);
	snprintf(p, sizeof(p), "/a/..");
	cr_expect_eq(lf_path_normalize(p), -EINVAL);
}

Test(proto, split_rest_keeps_spaces)
{
	char line[64], *cmd, *rest;

	snprintf(line, sizeof(line), "  cgroup-mode  all /a/my unit  ");
	cr_expect_eq(lf_proto_split_rest(line, &cmd, &rest), 0);
	cr_expect_str_eq(cmd, "cgroup-mode");
	cr_expect_str_eq(rest, "all /a/my unit");
	snprintf(line, sizeof(line), "status");
	cr_expect_eq(lf_proto_split_rest(line, &cmd, &rest), 0);
	cr_expect_null(rest);
	snprintf(line, sizeof(line), "mode all extra");
	cr_expect_eq(lf_proto_split(line, &cmd, &rest), -EINVAL,
		     "lf_proto_split takes one argument at most");
	snprintf(line, sizeof(line), "mode\tall");
	cr_expect_eq(lf_proto_split_rest(line, &cmd, &rest), -EINVAL,
		     "not printable");
	snprintf(line, sizeof(line), "   ");
	cr_expect_eq(lf_proto_split_rest(line, &cmd, &rest), -EINVAL);
}
