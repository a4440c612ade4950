// SPDX-License-Identifier: MIT
/*
 * install.c - `make install DESTDIR=... PREFIX=/usr`: every file,
 * pkg-config, a program built against the installed header, the man pages
 * (no groff warnings), the bash completion, the default config; the unit
 * it writes passes `systemd-analyze verify`; `make uninstall` leaves no
 * file. Scratch files live in the harness's scratch dir; teardown removes
 * them on every path.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void teardown(void)
{
	lf_scratch_remove();
}

TestSuite(install, .fini = teardown, .timeout = 240);

/* --- make install / make uninstall --- */

static const char *dest_dir(void)
{
	return lf_scratch_path("root");
}

static const char *dest_path(const char *rel)
{
	char *p;

	cr_assert(asprintf(&p, "%s/%s", dest_dir(), rel) > 0);
	return p;
}

/* make -C <src> TARGET DESTDIR=<dest> PREFIX=/usr, asserting success. */
static void make_target(const char *target)
{
	char build[PATH_MAX], mine[PATH_MAX * 2], o_arg[PATH_MAX * 2 + 8] = "";
	char *out, *err;
	int st;

	/* A build dir elsewhere than <src>/build is passed on as O=. */
	cr_assert(realpath(lf_build_dir(), build));
	snprintf(mine, sizeof(mine), "%s/build", lf_src_dir());
	if (strcmp(build, mine))
		snprintf(o_arg, sizeof(o_arg), "O='%s'", build);
	st = lf_sh_out(&out, &err,
		       "make -C '%s' --no-print-directory %s DESTDIR='%s' "
		       "PREFIX=/usr %s",
		       lf_src_dir(), target, dest_dir(), o_arg);
	cr_assert(st == 0, "make %s failed (%d):\n%s%s", target, st, out, err);
	free(out);
	free(err);
}

static const struct installed {
	const char *path; /* under DESTDIR */
	mode_t mode;
	const char *from; /* the source it is a copy of, or NULL */
} installed[] = {
	{ "usr/sbin/loopfastd", 0755, "build:loopfastd" },
	{ "usr/bin/loopfastctl", 0755, "build:loopfastctl" },
	{ "usr/lib/libloopfast.so", 0755, "build:libloopfast.so" },
	{ "usr/include/loopfast.h", 0644, "include/loopfast.h" },
	{ "usr/lib/pkgconfig/loopfast.pc", 0644, NULL },
	{ "usr/lib/systemd/system/loopfast.service", 0644, NULL },
	{ "etc/loopfast/loopfastd.conf", 0644, "daemon/loopfastd.conf" },
	{ "usr/share/man/man8/loopfastd.8", 0644, "daemon/loopfastd.8" },
	{ "usr/share/man/man8/loopfastctl.8", 0644, "cli/loopfastctl.8" },
	{ "usr/share/man/man7/loopfast.7", 0644, "include/loopfast.7" },
	{ "usr/share/bash-completion/completions/loopfastctl", 0644,
	  "cli/loopfastctl.bash-completion" },
};

#define N_INSTALLED ((int)(sizeof(installed) / sizeof(installed[0])))

static char files_found[8192];
static int files_n;

static int file_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	size_t n = strlen(files_found);

	(void)st;
	(void)ftw;
	if (flag == FTW_F || flag == FTW_SL) {
		files_n++;
		if (n + 1 < sizeof(files_found))
			snprintf(files_found + n, sizeof(files_found) - n,
				 "  %s\n", path);
	}
	return 0;
}

/* Files (and symlinks) under dir, listed into files_found. */
static int files_under(const char *dir)
{
	files_n = 0;
	files_found[0] = '\0';
	nftw(dir, file_one, 16, FTW_PHYS);
	return files_n;
}

static void assert_installed(void)
{
	char src[PATH_MAX * 2];
	struct stat st;
	int i;

	for (i = 0; i < N_INSTALLED; i++) {
		const struct installed *f = &installed[i];
		const char *p = dest_path(f->path);

		cr_assert(!lstat(p, &st) && S_ISREG(st.st_mode),
			  "make install did not install %s", p);
		cr_assert((st.st_mode & 07777) == f->mode,
			  "%s has mode %04o, want %04o", p, st.st_mode & 07777,
			  f->mode);
		if (!f->from)
			continue;
		if (!strncmp(f->from, "build:", 6))
			snprintf(src, sizeof(src), "%s/%s", lf_build_dir(),
				 f->from + 6);
		else
			snprintf(src, sizeof(src), "%s", lf_src_path(f->from));
		cr_assert(!lf_sh("cmp -s '%s' '%s'", src, p),
			  "%s is not a copy of %s", p, src);
	}
	cr_assert(files_under(dest_dir()) == N_INSTALLED,
		  "make install wrote %d files, want %d:\n%s", files_n,
		  N_INSTALLED, files_found);
}

static void check_unit_installed(void)
{
	char *unit = lf_file_read_ok(
		dest_path("usr/lib/systemd/system/loopfast.service"));
	char v[1024];

	cr_assert(!strstr(unit, "@SBINDIR@") && !strstr(unit, "@CONFFILE@"),
		  "a placeholder is left in the unit");
	cr_assert(!strstr(unit, dest_dir()), "DESTDIR leaked into the unit");
	cr_assert(!lf_unit_get(unit, "Type", v, sizeof(v)) &&
		  !strcmp(v, "notify"));
	cr_assert(!lf_unit_get(unit, "NotifyAccess", v, sizeof(v)) &&
		  !strcmp(v, "main"));
	cr_assert(!lf_unit_get(unit, "ExecStart", v, sizeof(v)));
	cr_assert(!strncmp(v, "/usr/sbin/loopfastd --foreground ", 33) &&
			  strstr(v, " --config /etc/loopfast/loopfastd.conf"),
		  "ExecStart=%s", v);
	cr_assert(!lf_unit_get(unit, "ExecReload", v, sizeof(v)) && v[0],
		  "no ExecReload=");
	cr_assert(!lf_unit_get(unit, "SystemCallFilter", v, sizeof(v)) &&
			  !strcmp(v, "@system-service bpf"),
		  "SystemCallFilter=%s", v);
	cr_assert(!lf_unit_get(unit, "ProtectSystem", v, sizeof(v)) &&
		  !strcmp(v, "strict"));
	cr_assert(!lf_unit_get(unit, "RuntimeDirectory", v, sizeof(v)) &&
		  !strcmp(v, "loopfast"));
	cr_assert(!lf_unit_get(unit, "ReadWritePaths", v, sizeof(v)) &&
			  strstr(v, "/sys/fs/bpf"),
		  "the pins need ReadWritePaths=/sys/fs/bpf");
	/* systemd mounts /sys/fs/bpf read-only for ProtectKernelTunables=,
	 * and ReadWritePaths= cannot undo that. */
	cr_assert(lf_unit_get(unit, "ProtectKernelTunables", v, sizeof(v)) ||
			  !strcmp(v, "no"),
		  "ProtectKernelTunables=%s makes /sys/fs/bpf read-only", v);
	free(unit);
}

Test(install, unit_verifies)
{
	char *unit, *out, *err, *p;
	const char *copy = lf_scratch_path("verify/loopfast.service");
	const char *bad = lf_scratch_path("verify/loopfast-broken.service");
	char exe[PATH_MAX * 2];
	int st;

	lf_need_tool("systemd-analyze", "systemd");
	lf_need_tool("man", "man-db");
	make_target("install");
	check_unit_installed();

	/*
	 * verify checks that ExecStart's binary exists: point it into
	 * DESTDIR, in a copy. Documentation= man pages resolve through
	 * MANPATH to the installed ones.
	 */
	unit = lf_file_read_ok(
		dest_path("usr/lib/systemd/system/loopfast.service"));
	cr_assert(!lf_sh("mkdir -p '%s/verify'", lf_scratch_dir()));
	p = strstr(unit, "ExecStart=/usr/sbin/loopfastd ");
	cr_assert(p);
	snprintf(exe, sizeof(exe), "%s", dest_path("usr/sbin/loopfastd"));
	cr_assert(!lf_sh(
		"sed 's|^ExecStart=/usr/sbin/loopfastd |ExecStart=%s |; "
		"s|^ExecReload=/usr/bin/loopfastctl |ExecReload=%s |' "
		"'%s' > '%s'",
		exe, dest_path("usr/bin/loopfastctl"),
		dest_path("usr/lib/systemd/system/loopfast.service"), copy));
	st = lf_sh_out(
		&out, &err,
		"MANPATH='%s' SYSTEMD_LOG_LEVEL=info systemd-analyze verify '%s'",
		dest_path("usr/share/man"), copy);
	cr_assert(
		st == 0 && !out[0] && !err[0],
		"systemd-analyze verify failed (%d) on the installed unit:\n%s%s"
		"(if systemd-analyze cannot run here at all, this test cannot "
		"pass here: it does not skip)",
		st, out, err);
	free(out);
	free(err);

	/* The check is real here: a broken copy is refused. */
	cr_assert(!lf_sh(
		"sed 's|^Type=notify|Type=bogus|; "
		"s|^SystemCallFilter=.*|SystemCallFilter=@no-such-group|' "
		"'%s' > '%s'",
		copy, bad));
	st = lf_sh_out(&out, &err, "MANPATH='%s' systemd-analyze verify '%s'",
		       dest_path("usr/share/man"), bad);
	cr_assert(strstr(err, "bogus") || strstr(out, "bogus"),
		  "systemd-analyze verify does not see a bad Type= (%d):\n%s%s",
		  st, out, err);
	free(out);
	free(err);
	free(unit);
	make_target("uninstall");
}

/* Names in `--help` output: "--word" at the start of its line's text. */
static int help_names(const char *help, char names[][32], int max)
{
	const char *l = help, *p;
	int n = 0, len;

	while (l && *l && n < max) {
		p = l;
		while (*p == ' ')
			p++;
		if (!strncmp(p, "-", 1) && p[1] != '-' && p[2] == ',')
			p += 4; /* "-s, --socket" */
		if (!strncmp(p, "--", 2)) {
			len = strcspn(p + 2, " =\n");
			snprintf(names[n++], 32, "--%.*s", len, p + 2);
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return n;
}

/* The roff source with \- as -, for finding names. */
static char *man_text(const char *path)
{
	char *s = lf_file_read_ok(path), *r = s, *w = s;

	for (; *r; r++) {
		if (r[0] == '\\' && r[1] == '-') {
			*w++ = '-';
			r++;
		} else if (r[0] == '\\' && r[1] == '&') {
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return s;
}

static void check_man_page(const char *path, const char *section)
{
	char *out, *err;
	int st;

	st = lf_sh_out(&out, &err,
		       "LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat "
		       "man -l --warnings '%s'",
		       path);
	cr_assert(st == 0 && !err[0],
		  "man -l --warnings %s: status %d, warnings:\n%s", path, st,
		  err);
	cr_assert(strstr(out, "NAME") && strstr(out, section),
		  "%s renders to:\n%.2000s", path, out);
	free(out);
	free(err);
}

static void check_man_pages(void)
{
	static const char *const errnos[] = {
		"EOPNOTSUPP", "ENOPROTOOPT", "ENOTSOCK", "EBADF",
		"EINVAL",     "EISCONN",     "EFAULT",
	};
	static const char *const api[] = {
		"SOL_LOOPFAST",	 "LOOPFAST_FAST_PATH",	   "LOOPFAST_STATE",
		"LOOPFAST_AUTO", "LOOPFAST_DEBUG",	   "0x98000010",
		"opt-in",	 "filter-policy ignore",   "libloopfast.so",
		"LD_PRELOAD",	 "SIO_LOOPBACK_FAST_PATH", "pkg-config",
	};
	static const char *const keys[] = {
		"mode",		"filter-policy", "cgroup",
		"pin-dir",	"socket",	 "sockhash-size",
		"detour-limit", "log-level",	 "cgroup-mode",
	};
	char names[64][32], *help, *d8, *c8, *l7;
	size_t i;
	int n, j;

	lf_need_tool("man", "man-db");
	lf_need_tool("groff", "groff-base");
	check_man_page(dest_path("usr/share/man/man8/loopfastd.8"),
		       "LOOPFASTD(8)");
	check_man_page(dest_path("usr/share/man/man8/loopfastctl.8"),
		       "LOOPFASTCTL(8)");
	check_man_page(dest_path("usr/share/man/man7/loopfast.7"),
		       "LOOPFAST(7)");

	d8 = man_text(lf_src_path("daemon/loopfastd.8"));
	c8 = man_text(lf_src_path("cli/loopfastctl.8"));
	l7 = man_text(lf_src_path("include/loopfast.7"));
	/* Every option of `loopfastd --help` and every config key. */
	cr_assert(!lf_sh_out(&help, NULL, "'%s/loopfastd' --help",
			     lf_build_dir()));
	n = help_names(help, names, 64);
	cr_assert(n >= 10, "loopfastd --help lists %d options", n);
	for (j = 0; j < n; j++)
		cr_assert(strstr(d8, names[j]), "loopfastd(8) lacks %s",
			  names[j]);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char k[64];

		snprintf(k, sizeof(k), "%s = ", keys[i]);
		cr_assert(strstr(d8, k), "loopfastd(8) lacks the key '%s'",
			  keys[i]);
	}
	free(help);
	/* Every command and option of `loopfastctl --help`. */
	cr_assert(!lf_sh_out(&help, NULL, "'%s/loopfastctl' --help",
			     lf_build_dir()));
	n = help_names(help, names, 64);
	cr_assert(n >= 4, "loopfastctl --help lists %d options", n);
	for (j = 0; j < n; j++)
		cr_assert(strstr(c8, names[j]), "loopfastctl(8) lacks %s",
			  names[j]);
	for (i = 0; i < 9; i++) {
		static const char *const cmds[] = {
			"status", "stats",  "conns", "mode", "filter-policy",
			"reload", "unload", "check", "run",
		};
		char b[64];

		snprintf(b, sizeof(b), ".B %s", cmds[i]);
		cr_assert(strstr(c8, b), "loopfastctl(8) has no '%s' entry",
			  cmds[i]);
		cr_assert(strstr(help, cmds[i]),
			  "'%s' is not in loopfastctl --help", cmds[i]);
	}
	for (i = 0; i < 3; i++) {
		static const char *const more[] = { "--prometheus", "--no-auto",
						    "--shim" };

		cr_assert(strstr(c8, more[i]), "loopfastctl(8) lacks %s",
			  more[i]);
	}
	free(help);
	/* loopfast(7): the API, the errno table, the shim's environment. */
	for (i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		cr_assert(strstr(l7, errnos[i]), "loopfast(7) lacks %s",
			  errnos[i]);
	for (i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		cr_assert(strstr(l7, api[i]), "loopfast(7) lacks %s", api[i]);
	free(d8);
	free(c8);
	free(l7);
}

/* One completion: COMP_WORDS from words ("" for the word being typed). */
static char *complete(const char *line)
{
	char *out, *err;
	int st;

	st = lf_sh_out(
		&out, &err,
		"bash -c 'source \"$0\" || exit 9; "
		"f=$(complete -p loopfastctl | sed -n \"s/.*-F \\([^ ]*\\) .*/\\1/p\"); "
		"COMP_LINE=\"$1\"; COMP_POINT=${#COMP_LINE}; "
		"read -ra COMP_WORDS <<< \"$1\"; "
		"[[ $1 == *\" \" ]] && COMP_WORDS+=(\"\"); "
		"COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
		"\"$f\" loopfastctl \"${COMP_WORDS[COMP_CWORD]}\" "
		"\"${COMP_WORDS[COMP_CWORD-1]}\"; "
		"for w in \"${COMPREPLY[@]}\"; do printf \"%%s\\n\" \"$w\"; done | sort' '%s' '%s'",
		dest_path("usr/share/bash-completion/completions/loopfastctl"),
		line);
	cr_assert(st == 0, "completing '%s': status %d %s", line, st, err);
	free(err);
	return out;
}

static void complete_is(const char *line, const char *want)
{
	char *got = complete(line);

	cr_assert(!strcmp(got, want), "completing '%s': got\n%swant\n%s", line,
		  got, want);
	free(got);
}

static void check_completion(void)
{
	const char *f =
		dest_path("usr/share/bash-completion/completions/loopfastctl");
	char *out, *err;
	int st;

	lf_need_tool("bash", "bash");
	st = lf_sh_out(&out, &err, "bash -n '%s'", f);
	cr_assert(st == 0 && !err[0], "bash -n %s: %s", f, err);
	free(out);
	free(err);
	st = lf_sh_out(
		&out, &err,
		"bash -c 'source \"$0\" && complete -p loopfastctl' '%s'", f);
	cr_assert(st == 0 && strstr(out, "loopfastctl") && !err[0],
		  "complete -p loopfastctl after sourcing: %d %s %s", st, out,
		  err);
	free(out);
	free(err);
	complete_is("loopfastctl ", "check\nconns\nfilter-policy\nmode\n"
				    "reload\nrun\nstats\nstatus\nunload\n");
	complete_is("loopfastctl st", "stats\nstatus\n");
	complete_is("loopfastctl --", "--help\n--json\n--socket\n--version\n");
	complete_is("loopfastctl mode ", "all\noff\nopt-in\n");
	complete_is("loopfastctl mode --cgroup /sys/fs/cgroup ",
		    "all\ndefault\noff\nopt-in\n");
	complete_is("loopfastctl mode all --", "--cgroup\n--help\n--json\n");
	complete_is("loopfastctl --json filter-policy ", "ignore\nrespect\n");
	complete_is("loopfastctl -s /tmp/x.sock filter-policy re", "respect\n");
	complete_is("loopfastctl --socket /tmp/x.sock mode all ", "");
	complete_is("loopfastctl stats --", "--help\n--json\n--prometheus\n");
	complete_is("loopfastctl status --", "--help\n--json\n");
	complete_is("loopfastctl run --", "--\n--help\n--no-auto\n--shim\n");
	out = complete("loopfastctl --socket /");
	cr_assert(strstr(out, "/tmp") && !strstr(out, "status"),
		  "--socket completes no paths:\n%s", out);
	free(out);
	out = complete("loopfastctl run -- bas");
	cr_assert(lf_has_line(out, "bash"),
		  "run does not complete commands:\n%s", out);
	free(out);
}

static void check_pkg_config(void)
{
	const char *prog = lf_scratch_path("app.c"),
		   *bin = lf_scratch_path("app");
	char env[PATH_MAX * 3], *out, *err, *ver;
	int st;

	lf_need_tool("pkg-config", "pkg-config");
	snprintf(env, sizeof(env), "PKG_CONFIG_PATH='%s'",
		 dest_path("usr/lib/pkgconfig"));
	st = lf_sh_out(&out, &err, "%s pkg-config --cflags loopfast", env);
	cr_assert(st == 0 && !err[0], "pkg-config --cflags loopfast: %d %s", st,
		  err);
	free(out);
	free(err);
	cr_assert(!lf_sh_out(&out, NULL,
			     "%s pkg-config --variable=shim loopfast", env));
	cr_assert(!strcmp(out, "/usr/lib/libloopfast.so\n"),
		  "shim variable '%s'", out);
	free(out);
	cr_assert(!lf_sh_out(&out, NULL, "%s pkg-config --modversion loopfast",
			     env));
	cr_assert(!lf_sh_out(&ver, NULL, "'%s/loopfastd' --version",
			     lf_build_dir()));
	out[strcspn(out, "\n")] = '\0';
	cr_assert(out[0] && strstr(ver, out),
		  "loopfast.pc version '%s' is not loopfastd's: %s", out, ver);
	free(out);
	free(ver);

	/* A program built against the installed header, found through the
	 * .pc (the sysroot maps its /usr/include into DESTDIR). */
	cr_assert(!lf_file_write(
		prog, "#include <stdio.h>\n"
		      "#include <sys/socket.h>\n"
		      "#include <loopfast.h>\n"
		      "int main(void)\n{\n"
		      "\tint fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;\n"
		      "\tunsigned long sio = SIO_LOOPBACK_FAST_PATH;\n"
		      "\tif (sio != 0x98000010UL)\n\t\treturn 2;\n"
		      "\tsetsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, "
		      "&on, sizeof(on));\n"
		      "\tprintf(\"%d %d %d\\n\", SOL_LOOPFAST, "
		      "LOOPFAST_FAST_PATH, LOOPFAST_STATE);\n"
		      "\treturn 0;\n}\n"));
	st = lf_sh_out(
		&out, &err,
		"%s PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 "
		"cc -std=c99 -Wall -Wextra -Werror -pedantic "
		"$(%s PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 "
		"pkg-config --cflags loopfast) -H '%s' -o '%s' 2>&1 && '%s'",
		env, dest_dir(), env, dest_dir(), prog, bin, bin);
	cr_assert(st == 0, "building against the installed header: %d\n%s%s",
		  st, out, err);
	cr_assert(strstr(out, dest_path("usr/include/loopfast.h")),
		  "the program did not use the installed header:\n%s", out);
	cr_assert(strstr(out, "19526 1 2\n"), "the program printed:\n%s", out);
	free(out);
	free(err);
	if (!lf_sh("command -v c++ >/dev/null 2>&1")) {
		st = lf_sh_out(
			&out, &err,
			"echo '#include <loopfast.h>' | c++ -x c++ -Wall "
			"-Werror -fsyntax-only -I'%s' -",
			dest_path("usr/include"));
		cr_assert(st == 0, "the header in C++: %s%s", out, err);
		free(out);
		free(err);
	}
}

/* Config keys and their values in the shipped file, all commented out. */
static void check_default_config(void)
{
	static const char *const keys[] = {
		"mode",		"filter-policy", "cgroup",
		"pin-dir",	"socket",	 "sockhash-size",
		"detour-limit", "log-level",	 "cgroup-mode",
	};
	const char *conf = dest_path("etc/loopfast/loopfastd.conf");
	const char *on = lf_scratch_path("uncommented.conf");
	char *text = lf_file_read_ok(conf), *help, *l, *nl, *out, *err;
	char key[64], val[PATH_MAX], pin[PATH_MAX], want[PATH_MAX + 64];
	unsigned int seen = 0;
	size_t i;
	int st;

	cr_assert(!lf_sh_out(&help, NULL, "'%s/loopfastd' --help",
			     lf_build_dir()));
	for (l = text; *l; l = nl + 1) {
		nl = strchrnul(l, '\n');
		if (nl == l || *l == '#') {
			if (l[0] == '#' && sscanf(l, "#%63[a-z-] = %4095[^\n]",
						  key, val) == 2) {
				for (i = 0; i < sizeof(keys) / sizeof(keys[0]);
				     i++)
					if (!strcmp(key, keys[i]))
						seen |= 1U << i;
				/* The default shown is --help's. */
				snprintf(want, sizeof(want), "--%s ", key);
				cr_assert(strstr(help, want),
					  "key '%s' is no loopfastd option",
					  key);
				/* Paths are examples, not defaults. */
				if (strcmp(key, "cgroup") &&
				    strcmp(key, "cgroup-mode"))
					cr_assert(
						strstr(help, val),
						"'%s = %s': loopfastd --help says otherwise:\n%s",
						key, val, help);
			}
			if (!*nl)
				break;
			continue;
		}
		cr_assert_fail("not commented out in %s: '%.*s'", conf,
			       (int)(nl - l), l);
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(seen & (1U << i), "%s does not document '%s'", conf,
			  keys[i]);
	/* And every other option of loopfastd's that takes a value. */
	for (l = help; (l = strstr(l, "\n  --")); l++) {
		if (sscanf(l, "\n  --%63[a-z-] %4095[A-Z]", key, val) != 2 ||
		    !strcmp(key, "config"))
			continue;
		snprintf(want, sizeof(want), "\n#%s = ", key);
		cr_assert(strstr(text, want),
			  "%s does not document loopfastd's --%s", conf, key);
	}
	/* Uncommented, loopfastd takes every line (--unload of a pin dir
	 * that does not exist parses the config and does nothing else). */
	cr_assert(!lf_sh("sed -n 's/^#\\([a-z-]* = \\)/\\1/p' '%s' > '%s'",
			 conf, on));
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/lftest-%d-opsnone", getpid());
	st = lf_sh_out(&out, &err,
		       "'%s/loopfastd' --config '%s' --unload --pin-dir '%s'",
		       lf_build_dir(), on, pin);
	cr_assert(st == 0,
		  "loopfastd refuses the uncommented defaults (%d): %s%s", st,
		  out, err);
	cr_assert(access(pin, F_OK), "--unload created %s", pin);
	free(out);
	free(err);
	free(help);
	free(text);
}

Test(install, make_install_and_uninstall)
{
	const char *conf = dest_path("etc/loopfast/loopfastd.conf");
	char *out, *err;
	int st;

	make_target("install");
	assert_installed();
	check_unit_installed();
	check_pkg_config();
	check_man_pages();
	check_completion();
	check_default_config();

	/* A second install keeps an operator's config; uninstall too. */
	cr_assert(!lf_file_write(conf, "mode = all\n"));
	make_target("install");
	cr_assert(!lf_sh("grep -qx 'mode = all' '%s'", conf),
		  "make install overwrote a changed %s", conf);
	make_target("uninstall");
	cr_assert(files_under(dest_dir()) == 1 && !access(conf, F_OK),
		  "uninstall with a changed config left:\n%s", files_found);
	unlink(conf);

	/* The usual case: install, uninstall, nothing left. */
	make_target("install");
	make_target("uninstall");
	cr_assert(files_under(dest_dir()) == 0,
		  "make uninstall left files behind:\n%s", files_found);
	st = lf_sh_out(&out, &err, "test ! -e '%s'", dest_path("etc/loopfast"));
	cr_assert(st == 0, "make uninstall left %s", dest_path("etc/loopfast"));
	free(out);
	free(err);
}
