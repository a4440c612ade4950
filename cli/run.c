// SPDX-License-Identifier: MIT
/*
 * run.c - `loopfastctl run [--no-auto] [--shim PATH] [--] CMD ARGS...`
 *
 * Appends libloopfast.so to LD_PRELOAD, sets LOOPFAST_AUTO=1 (unless
 * --no-auto, for programs that call the ioctl themselves) and execs the
 * command, so its exit status is the command's own. It warns, and still
 * runs the command, when the shim cannot reach it (a static binary: use
 * mode `all`) or when loopfastd does not answer (plain TCP then).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "run.h"

#define SHIM_NAME "libloopfast.so"

struct run_opts {
	int no_auto;
	int json;
	const char *shim;
	const char *socket;
};

static int file_readable(const char *path)
{
	return !access(path, R_OK);
}

/* dir/name into out if it fits and is readable. */
static int shim_at(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size && file_readable(out);
}

/*
 * The shim to preload: --shim, else $LOOPFAST_SHIM, else the one that
 * belongs to this loopfastctl: next to the binary (the build tree), then
 * ../lib (an installed PREFIX).
 */
static int shim_find(const char *given, char *out, size_t size)
{
	const char *want = given ? given : getenv("LOOPFAST_SHIM");
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (want && *want) {
		if (size < PATH_MAX || !realpath(want, out))
			return -ENOENT;
		return file_readable(out) ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if (shim_at(out, size, exe, SHIM_NAME))
		return 0;
	slash = strrchr(exe, '/');
	if (slash) {
		*slash = '\0';
		if (shim_at(out, size, exe, "lib/" SHIM_NAME))
			return 0;
	}
#ifdef LF_SHIMDIR
	/* Where `make install` put it (Debian: a directory of its own). */
	if (shim_at(out, size, LF_SHIMDIR, SHIM_NAME))
		return 0;
#endif
	return -ENOENT;
}

/* LD_PRELOAD with the shim last, unless it is there already. */
static int preload_set(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	char *val;
	int ret;

	if (!old || !*old)
		return setenv("LD_PRELOAD", shim, 1) ? -errno : 0;
	if (strstr(old, shim))
		return 0;
	if (asprintf(&val, "%s %s", old, shim) < 0)
		return -ENOMEM;
	ret = setenv("LD_PRELOAD", val, 1) ? -errno : 0;
	free(val);
	return ret;
}

/* The file execvp() would run for cmd, or cmd itself. */
static void cmd_resolve(const char *cmd, char *out, size_t size)
{
	const char *path = getenv("PATH"), *p, *end;

	snprintf(out, size, "%s", cmd);
	if (strchr(cmd, '/') || !path)
		return;
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(out, size, "%.*s/%s", (int)(end - p), p, cmd);
		if (!access(out, X_OK))
			return;
	}
	snprintf(out, size, "%s", cmd);
}

/*
 * 1 when file is an ELF executable without a program interpreter, i.e.
 * statically linked (Go binaries usually are): LD_PRELOAD cannot reach it.
 */
static int elf_is_static(const char *file)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd, i, ret = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph))
		goto out;
	ret = 1;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) !=
		    sizeof(ph)) {
			ret = 0;
			break;
		}
		if (ph.p_type == PT_INTERP) {
			ret = 0;
			break;
		}
	}
out:
	close(fd);
	return ret;
}

/* Does the ELF file have a section of this name? (Go's .go.buildinfo) */
static int elf_has_section(const char *file, const char *name)
{
	Elf64_Ehdr eh;
	Elf64_Shdr sh, strs;
	char sname[32];
	int fd, i, found = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(sh) || eh.e_shstrndx >= eh.e_shnum ||
	    pread(fd, &strs, sizeof(strs),
		  eh.e_shoff + eh.e_shstrndx * sizeof(sh)) != sizeof(strs))
		goto out;
	for (i = 0; i < eh.e_shnum && !found; i++) {
		if (pread(fd, &sh, sizeof(sh), eh.e_shoff + i * sizeof(sh)) !=
			    sizeof(sh) ||
		    sh.sh_name >= strs.sh_size)
			break;
		memset(sname, 0, sizeof(sname));
		if (pread(fd, sname, sizeof(sname) - 1,
			  strs.sh_offset + sh.sh_name) < 0)
			break;
		found = !strcmp(sname, name);
	}
out:
	close(fd);
	return found;
}

/* Why the shim cannot reach the program, or NULL when it can. */
static const char *unreachable_why(const char *file)
{
	if (elf_is_static(file))
		return "is statically linked";
	if (elf_has_section(file, ".go.buildinfo"))
		return "is a Go program (it makes its system calls without libc)";
	return NULL;
}

/* This process's cgroup v2 path ("/a/b"), from /proc/self/cgroup. */
static int own_cgroup(char *out, size_t size)
{
	char line[PATH_MAX];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			found = snprintf(out, size, "%s", line + 3) < (int)size;
		}
	fclose(f);
	return found;
}

/* The longest cgroup2 mount point that is a prefix of path: its length. */
static size_t cgroup2_mount_len(const char *path)
{
	struct mntent *m;
	size_t best = 0, l;
	FILE *f = setmntent("/proc/self/mounts", "re");

	if (!f)
		return 0;
	while ((m = getmntent(f))) {
		l = strlen(m->mnt_dir);
		if (strcmp(m->mnt_type, "cgroup2") || l < best ||
		    strncmp(path, m->mnt_dir, l) ||
		    (path[l] != '/' && path[l] != '\0'))
			continue;
		best = l;
	}
	endmntent(f);
	return best;
}

/*
 * Is the served cgroup (a path under a cgroup2 mount) this process's
 * cgroup or an ancestor of it? 1 yes, 0 no, -1 cannot tell.
 */
static int cgroup_served(const char *served)
{
	char own[PATH_MAX];
	size_t ml = cgroup2_mount_len(served), rl;
	const char *rel = served + ml;

	if (!ml || !own_cgroup(own, sizeof(own)))
		return -1;
	rl = strlen(rel);
	if (!rl)
		return 1; /* the whole hierarchy */
	return !strncmp(own, rel, rl) && (own[rl] == '/' || own[rl] == '\0');
}

/*
 * Is loopfastd there, and does it serve this process's cgroup? Only
 * warnings: the program runs either way. A socket this user may not
 * open tells nothing (root's loopfastd may well serve this cgroup).
 */
static void daemon_check(const char *socket)
{
	char reply[4096], cg[PATH_MAX];
	const char *p;
	int err = lf_client_request(socket, "status", reply, sizeof(reply));

	if (err == -EACCES || err == -EPERM)
		return;
	if (err) {
		pr_warn("loopfastd does not answer on %s (%s): the program runs, on plain TCP; start loopfastd for the fast path",
			socket, err == -EREMOTEIO ? reply : strerror(-err));
		return;
	}
	p = strstr(reply, "\ncgroup ");
	if (!p)
		return;
	snprintf(cg, sizeof(cg), "%.*s", (int)strcspn(p + 8, "\n"), p + 8);
	if (!cgroup_served(cg))
		pr_warn("this process is not in the cgroup loopfastd serves (%s): the program's connections stay on plain TCP; move it in first (echo $$ > %s/cgroup.procs)",
			cg, cg);
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopfastctl run [--no-auto] [--shim PATH] [--] CMD [ARGS...]\n\n"
		"Runs CMD with %s preloaded. Every TCP socket it creates is\n"
		"opted in (LOOPFAST_AUTO=1) unless --no-auto is given.\n\n"
		"  -n, --no-auto     only the program's own ioctl/setsockopt opt in\n"
		"  -S, --shim PATH   the shim to preload (default: the installed one)\n"
		"  -h, --help        this text\n\n"
		"--json does not apply: what run prints is the program's own\n"
		"output; its warnings go to stderr as text.\n",
		SHIM_NAME);
}

static int run_parse(struct run_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "no-auto", no_argument, NULL, 'n' },
		{ "shim", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+nS:hj", lopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			o->no_auto = 1;
			break;
		case 'S':
			o->shim = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		case 'j':
			o->json = 1;
			break;
		default:
			run_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		run_usage(stderr);
		return -EINVAL;
	}
	return optind;
}

int lf_run_main(const char *socket, int json, int argc, char **argv)
{
	struct run_opts o = { .socket = socket, .json = json };
	char shim[PATH_MAX], file[PATH_MAX];
	const char *why;
	int first, err;

	first = run_parse(&o, argc, argv);
	if (first <= 0)
		return first ? 2 : 0;
	if (o.json) {
		pr_err("run: --json does not apply: what run prints is the program's own output");
		return 2;
	}
	err = shim_find(o.shim, shim, sizeof(shim));
	if (err) {
		pr_err("cannot find %s (looked at --shim, $LOOPFAST_SHIM, next to loopfastctl and in ../lib); build it with 'make' or pass --shim PATH",
		       SHIM_NAME);
		return 127;
	}
	cmd_resolve(argv[first], file, sizeof(file));
	why = unreachable_why(file);
	if (why)
		pr_warn("%s %s: the shim cannot serve its reads, so its connections stay on plain TCP, also under mode all",
			file, why);
	daemon_check(o.socket);
	err = preload_set(shim);
	if (!err && !o.no_auto)
		err = setenv("LOOPFAST_AUTO", "1", 1) ? -errno : 0;
	else if (!err)
		err = unsetenv("LOOPFAST_AUTO") ? -errno : 0;
	if (err) {
		pr_err("cannot set the environment: %s", strerror(-err));
		return 127;
	}
	unsetenv("LOOPFAST_SHIM");
	execvp(argv[first], argv + first);
	err = errno;
	pr_err("cannot run %s: %s", argv[first], strerror(err));
	return err == ENOENT ? 127 : 126;
}
