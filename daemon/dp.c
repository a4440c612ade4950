// SPDX-License-Identifier: MIT
/*
 * dp.c - the data path: load the BPF side, attach it to one cgroup with
 * BPF links, pin links and maps; adopt what a previous run pinned; unload.
 *
 * Pin layout under the pin dir:
 *   maps/{sk_store,sockhash,conns,config,stats,veto_cg,cg_mode,layout}
 *   links/{setsockopt,getsockopt,sockops,recv_length}
 * links/recv_length is pinned last and marks a complete data path.
 *
 * The read counter has two programs for one job; the kernel decides which
 * loads (dp_recv_pick): fexit on tcp_bpf_recvmsg, which only sockets in a
 * sockhash reach, wherever the kernel lets it attach; else the
 * sock_recv_length tracepoint (6.12 and later), which every receive of
 * the machine runs.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel.h"
#include "log.h"
#include "loopfastd.h"
#include "loopfast.skel.h"

/*
 * What is pinned, one table each. A map's entry names its skeleton
 * member; a link's, its program (NULL: the read counter dp_recv_pick
 * chose) and where it attaches. The last link pinned marks a complete
 * data path: it must stay last.
 */
#define SKEL_OFF(member) offsetof(struct loopfast_bpf, member)

static const struct map_pin {
	const char *name;
	size_t off; /* of the struct bpf_map * in struct loopfast_bpf */
} map_pins[] = {
	{ "sk_store", SKEL_OFF(maps.lf_sk_store) },
	{ "sockhash", SKEL_OFF(maps.lf_sockhash) },
	{ "conns", SKEL_OFF(maps.lf_conns) },
	{ "config", SKEL_OFF(maps.lf_config) },
	{ "stats", SKEL_OFF(maps.lf_stats) },
	{ "veto_cg", SKEL_OFF(maps.lf_veto_cg) },
	{ "cg_mode", SKEL_OFF(maps.lf_cg_mode) },
	{ "layout", SKEL_OFF(maps.lf_layout) },
};

static const struct link_pin {
	const char *name;
	size_t off; /* of the struct bpf_program *, or 0: dp->recv_prog */
	int cgroup; /* attached to the served cgroup, else to the kernel */
} link_pins[] = {
	{ "setsockopt", SKEL_OFF(progs.lf_setsockopt), 1 },
	{ "getsockopt", SKEL_OFF(progs.lf_getsockopt), 1 },
	{ "sockops", SKEL_OFF(progs.lf_sockops), 1 },
	{ "recv_length", 0, 0 }, /* last: the complete mark */
};

#define N_LINKS (sizeof(link_pins) / sizeof(link_pins[0]))
_Static_assert(N_LINKS == LF_DP_LINKS, "lf_dp.links holds every link");

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int pin_path(char *buf, size_t size, const char *dir, const char *sub,
		    const char *name)
{
	if (snprintf(buf, size, "%s/%s/%s", dir, sub, name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static int pin_exists(const char *dir, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return !access(path, F_OK);
}

static const char *hint_of(int err)
{
	if (err == -EPERM)
		return " (run as root, or with CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON)";
	return "";
}

static int map_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	pin_path(path, sizeof(path), dir, "maps", name);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		fd = -errno;
		pr_err("open pinned map '%s': %s%s", path, strerror(-fd),
		       hint_of(fd));
	}
	return fd;
}

/* The cgroup id a pinned cgroup link is attached to. */
static int pinned_link_cgroup(const char *dir, __u64 *id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, err = 0;

	pin_path(path, sizeof(path), dir, "links", "sockops");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	else
		*id = info.cgroup.cgroup_id;
	close(fd);
	return err;
}

static int cgroup_id_of(const char *path, __u64 *id)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	*id = st.st_ino;
	return 0;
}

/*
 * The layout the pins in dir were made with (lf_layout), or 0 when they
 * have none (made before it existed). A pinned conns map whose value is
 * not this build's lf_conn counts as another layout too.
 */
static __u32 pinned_layout(const char *dir)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), zero = 0, layout = 0;
	char path[PATH_MAX];
	int fd;

	pin_path(path, sizeof(path), dir, "maps", "layout");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_map_lookup_elem(fd, &zero, &layout))
		layout = 0;
	close(fd);
	pin_path(path, sizeof(path), dir, "maps", "conns");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    info.value_size != sizeof(struct lf_conn) ||
	    info.key_size != sizeof(struct lf_key))
		layout = 0;
	close(fd);
	return layout;
}

/* Re-use a complete data path pinned by an earlier run of this layout. */
static int dp_adopt(struct lf_dp *dp, const struct lf_opts *opts)
{
	__u64 want = 0, have = 0;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int err;

	if (pinned_layout(opts->pin_dir) != LF_LAYOUT)
		return -ESTALE;
	cgroup_id_of(opts->cgroup, &want);
	err = pinned_link_cgroup(opts->pin_dir, &have);
	if (err || (have && want && have != want)) {
		pr_err("pin dir '%s' holds a data path attached to another cgroup; run 'loopfastd --unload --pin-dir %s' first or choose another --pin-dir",
		       opts->pin_dir, opts->pin_dir);
		return err ? err : -EEXIST;
	}
	dp->config_fd = map_get(opts->pin_dir, "config");
	dp->stats_fd = map_get(opts->pin_dir, "stats");
	dp->conns_fd = map_get(opts->pin_dir, "conns");
	if (dp->config_fd < 0 || dp->stats_fd < 0 || dp->conns_fd < 0)
		return -ENOENT;
	dp->sockhash_fd = map_get(opts->pin_dir, "sockhash");
	dp->veto_cg_fd = map_get(opts->pin_dir, "veto_cg");
	dp->cg_mode_fd = map_get(opts->pin_dir, "cg_mode");
	if (!bpf_obj_get_info_by_fd(dp->conns_fd, &info, &len))
		dp->sockhash_size = info.max_entries;
	dp->adopted = 1;
	pr_info("adopted the data path pinned in %s", opts->pin_dir);
	return 0;
}

/*
 * Load the read counter the kernel offers (probed in its BTF, not by
 * version) and turn the other one off. Says in words what is missing when
 * neither fits.
 */
static int dp_recv_pick(struct loopfast_bpf *skel, struct bpf_program **prog)
{
	int btf;
	enum lf_read_counter rc = lf_kernel_read_counter(&btf);

	bpf_program__set_autoload(skel->progs.lf_recv_length,
				  rc == LF_RC_TRACEPOINT);
	bpf_program__set_autoload(skel->progs.lf_recv_fexit, rc == LF_RC_FEXIT);
	*prog = rc == LF_RC_TRACEPOINT ? skel->progs.lf_recv_length :
					 skel->progs.lf_recv_fexit;
	if (rc != LF_RC_NONE) {
		pr_info("read counter: %s", lf_read_counter_name(rc));
		return 0;
	}
	pr_err("the kernel lets no fexit program attach to tcp_bpf_recvmsg and has no sock_recv_length tracepoint (%s): loopfast needs one of them to count what a receiver read (CONFIG_DEBUG_INFO_BTF, CONFIG_BPF_STREAM_PARSER and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, Linux 6.1 or later)",
	       btf ? "BTF found" : "no kernel BTF");
	return -EOPNOTSUPP;
}

static int dp_layout_write(struct loopfast_bpf *skel)
{
	__u32 zero = 0, layout = LF_LAYOUT;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.lf_layout), &zero,
				&layout, BPF_ANY))
		return -errno;
	return 0;
}

static int dp_load(struct lf_dp *dp, const struct lf_opts *opts)
{
	struct loopfast_bpf *skel;
	int err;

	skel = loopfast_bpf__open();
	if (!skel) {
		err = -errno;
		pr_err("open BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(skel->maps.lf_sockhash, opts->sockhash_size);
	bpf_map__set_max_entries(skel->maps.lf_conns, opts->sockhash_size);
	err = dp_recv_pick(skel, &dp->recv_prog);
	if (err) {
		loopfast_bpf__destroy(skel);
		return err;
	}
	err = loopfast_bpf__load(skel);
	if (err) {
		pr_err("load BPF programs: %s%s", strerror(-err), hint_of(err));
		if (err == -EACCES)
			pr_err("the verifier refused a program; run with -vv for its log");
		else if (err != -EPERM)
			pr_err("the kernel refused a program or map (sockmap, sk_storage, BTF or tracing support); 'loopfastctl check' tells what is missing");
		loopfast_bpf__destroy(skel);
		return err;
	}
	dp->skel = skel;
	dp->config_fd = bpf_map__fd(skel->maps.lf_config);
	dp->stats_fd = bpf_map__fd(skel->maps.lf_stats);
	dp->conns_fd = bpf_map__fd(skel->maps.lf_conns);
	dp->sockhash_fd = bpf_map__fd(skel->maps.lf_sockhash);
	dp->veto_cg_fd = bpf_map__fd(skel->maps.lf_veto_cg);
	dp->cg_mode_fd = bpf_map__fd(skel->maps.lf_cg_mode);
	dp->sockhash_size = opts->sockhash_size;
	return dp_layout_write(skel);
}

/* Does dir hold a complete data path (its last link pinned)? */
static int dp_complete(const char *dir)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "links/%s", link_pins[N_LINKS - 1].name);
	return pin_exists(dir, rel);
}

/* The program behind link_pins[i]. */
static struct bpf_program *dp_prog(struct lf_dp *dp, unsigned int i)
{
	if (!link_pins[i].off)
		return dp->recv_prog;
	return *(struct bpf_program **)((char *)dp->skel + link_pins[i].off);
}

static struct bpf_map *dp_map(struct lf_dp *dp, unsigned int i)
{
	return *(struct bpf_map **)((char *)dp->skel + map_pins[i].off);
}

/* Attach everything: sk_msg to the sockhash, the rest with BPF links. */
static int dp_attach(struct lf_dp *dp, const struct lf_opts *opts)
{
	struct loopfast_bpf *skel = dp->skel;
	struct bpf_link *link;
	unsigned int i;
	int cg_fd, err;

	err = bpf_prog_attach(bpf_program__fd(skel->progs.lf_msg),
			      bpf_map__fd(skel->maps.lf_sockhash),
			      BPF_SK_MSG_VERDICT, 0);
	if (err) {
		err = -errno;
		pr_err("prog 'lf_msg': attach to sockhash: %s", strerror(-err));
		return err;
	}
	cg_fd = open(opts->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		pr_err("open cgroup '%s': %s (is it a cgroup v2 directory?)",
		       opts->cgroup, strerror(-err));
		return err;
	}
	for (i = 0; i < N_LINKS; i++) {
		if (link_pins[i].cgroup)
			link = bpf_program__attach_cgroup(dp_prog(dp, i),
							  cg_fd);
		else
			link = bpf_program__attach(dp_prog(dp, i));
		err = libbpf_get_error(link);
		if (err) {
			pr_err("prog '%s': attach to %s: %s%s",
			       bpf_program__name(dp_prog(dp, i)),
			       link_pins[i].cgroup ? opts->cgroup :
						     "the kernel",
			       strerror(-err), hint_of(err));
			goto out_close;
		}
		dp->links[i] = link;
	}
out_close:
	close(cg_fd);
	return err;
}

static int dp_pin(struct lf_dp *dp, const char *dir)
{
	char path[PATH_MAX];
	unsigned int i;
	int err;

	for (i = 0; i < ARRAY_SIZE(map_pins); i++) {
		pin_path(path, sizeof(path), dir, "maps", map_pins[i].name);
		err = bpf_map__pin(dp_map(dp, i), path);
		if (err)
			goto out_err;
	}
	for (i = 0; i < N_LINKS; i++) {
		pin_path(path, sizeof(path), dir, "links", link_pins[i].name);
		err = bpf_link__pin(dp->links[i], path);
		if (err)
			goto out_err;
	}
	return 0;
out_err:
	pr_err("pin '%s': %s", path, strerror(-err));
	return err;
}

static int dp_mkdirs(const char *dir)
{
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/maps", dir);
	err = lf_mkdir_p(path, 0700);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/links", dir);
	return lf_mkdir_p(path, 0700);
}

static int dp_unpin_all(const char *pin_dir);

/*
 * Load and attach a fresh data path, or adopt the one pinned in the pin
 * dir, so that a restart keeps live fast connections on their path.
 */
int lf_dp_open(struct lf_dp *dp, const struct lf_opts *opts)
{
	int err;

	memset(dp, 0, sizeof(*dp));
	dp->config_fd = dp->stats_fd = dp->conns_fd = -1;
	dp->sockhash_fd = dp->veto_cg_fd = dp->cg_mode_fd = -1;
	err = lf_bpffs_ensure(opts->pin_dir);
	if (err)
		return err;
	if (dp_complete(opts->pin_dir)) {
		err = dp_adopt(dp, opts);
		if (err != -ESTALE)
			return err;
		/*
		 * Pins of another loopfast version: taken down as `unload`
		 * does. The connections they carry keep their programs and
		 * maps until they close, and lose no byte; new connections
		 * get this version's. Its maps are never read here.
		 */
		pr_warn("pin dir '%s' holds a data path of another loopfast version (layout %u, this one %u): its connections keep their path until they close; new connections get this version's",
			opts->pin_dir, pinned_layout(opts->pin_dir), LF_LAYOUT);
		dp_unpin_all(opts->pin_dir);
	} else if (pin_exists(opts->pin_dir, "maps") ||
		   pin_exists(opts->pin_dir, "links")) {
		pr_warn("pin dir '%s' holds an incomplete data path; removing it",
			opts->pin_dir);
		dp_unpin_all(opts->pin_dir);
	}
	err = dp_mkdirs(opts->pin_dir);
	if (!err)
		err = dp_load(dp, opts);
	if (err)
		return err;
	return 0;
}

/*
 * Second step of a fresh open, once the first heartbeat is in the config
 * map: attach, then pin. Adopted data paths are attached already.
 */
int lf_dp_attach(struct lf_dp *dp, const struct lf_opts *opts)
{
	int err;

	if (dp->adopted)
		return 0;
	err = dp_attach(dp, opts);
	if (!err)
		err = dp_pin(dp, opts->pin_dir);
	if (err)
		lf_dp_unload(opts->pin_dir);
	else
		pr_info("data path attached to cgroup %s, pinned in %s",
			opts->cgroup, opts->pin_dir);
	return err;
}

void lf_dp_close(struct lf_dp *dp)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(dp->links); i++) {
		bpf_link__destroy(dp->links[i]);
		dp->links[i] = NULL;
	}
	if (dp->skel) {
		loopfast_bpf__destroy(dp->skel);
	} else {
		if (dp->config_fd >= 0)
			close(dp->config_fd);
		if (dp->stats_fd >= 0)
			close(dp->stats_fd);
		if (dp->conns_fd >= 0)
			close(dp->conns_fd);
		if (dp->sockhash_fd >= 0)
			close(dp->sockhash_fd);
		if (dp->veto_cg_fd >= 0)
			close(dp->veto_cg_fd);
		if (dp->cg_mode_fd >= 0)
			close(dp->cg_mode_fd);
	}
	dp->skel = NULL;
	dp->config_fd = dp->stats_fd = dp->conns_fd = -1;
	dp->sockhash_fd = dp->veto_cg_fd = dp->cg_mode_fd = -1;
}

/*
 * Make lf_veto_cg hold exactly ids[0..n): stale keys out, new ones in.
 * 0 or -errno.
 */
int lf_dp_veto_cg_write(struct lf_dp *dp, const uint64_t *ids, int n)
{
	__u64 key, next;
	__u32 one = 1;
	int i, more, err = 0;

	if (dp->veto_cg_fd < 0)
		return -EOPNOTSUPP;
	for (i = 0; i < n; i++)
		if (bpf_map_update_elem(dp->veto_cg_fd, &ids[i], &one, BPF_ANY))
			err = -errno;
	more = !bpf_map_get_next_key(dp->veto_cg_fd, NULL, &key);
	while (more) {
		more = !bpf_map_get_next_key(dp->veto_cg_fd, &key, &next);
		for (i = 0; i < n && ids[i] != key; i++)
			;
		if (i == n)
			bpf_map_delete_elem(dp->veto_cg_fd, &key);
		key = next;
	}
	return err;
}

/*
 * Make lf_cg_mode hold exactly ids[i] -> modes[i] for i < n: stale keys
 * out, the rest written. 0 or the first -errno.
 */
int lf_dp_cg_mode_write(struct lf_dp *dp, const uint64_t *ids,
			const __u32 *modes, int n)
{
	__u64 key, next;
	int i, more, err = 0;

	if (dp->cg_mode_fd < 0)
		return -EOPNOTSUPP;
	more = !bpf_map_get_next_key(dp->cg_mode_fd, NULL, &key);
	while (more) {
		more = !bpf_map_get_next_key(dp->cg_mode_fd, &key, &next);
		for (i = 0; i < n && ids[i] != key; i++)
			;
		if (i == n)
			bpf_map_delete_elem(dp->cg_mode_fd, &key);
		key = next;
	}
	for (i = 0; i < n; i++)
		if (bpf_map_update_elem(dp->cg_mode_fd, &ids[i], &modes[i],
					BPF_ANY) &&
		    !err)
			err = -errno;
	return err;
}

int lf_dp_config_write(struct lf_dp *dp, const struct lf_config *cfg)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(dp->config_fd, &zero, cfg, BPF_ANY))
		return -errno;
	return 0;
}

/* Sum the per-CPU counters. */
int lf_dp_stats_read(struct lf_dp *dp, __u64 out[LF_ST_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 vals[ncpu > 0 ? ncpu : 1];
	__u32 i;
	int c;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	for (i = 0; i < LF_ST_MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(dp->stats_fd, &i, vals))
			return -errno;
		for (c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
	return 0;
}

/*
 * The next batch of lf_conns entries of the walk at cur: up to
 * LF_DP_CONNS_CHUNK into keys/vals, their number into *count. Returns 1
 * when it was the last batch, 0 before it, or -errno.
 */
int lf_dp_conns_next(struct lf_dp *dp, struct lf_dp_cursor *cur,
		     struct lf_key *keys, struct lf_conn *vals, __u32 *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	__u32 out;
	int err;

	*count = LF_DP_CONNS_CHUNK;
	err = bpf_map_lookup_batch(dp->conns_fd,
				   cur->started ? &cur->pos : NULL, &out, keys,
				   vals, count, &o);
	if (err && errno != ENOENT)
		return -errno;
	cur->pos = out;
	cur->started = 1;
	return err ? 1 : 0;
}

/* Live connection slots: a map walk, made at most once a second. */
long lf_dp_conns_live(struct lf_dp *dp)
{
	static struct lf_key keys[LF_DP_CONNS_CHUNK];
	static struct lf_conn vals[LF_DP_CONNS_CHUNK];
	struct lf_dp_cursor cur = { 0 };
	__u32 count;
	long n = 0;
	int err;

	if (dp->conns_live_ns &&
	    lf_now_ns() - dp->conns_live_ns < 1000000000ULL)
		return dp->conns_live;
	do {
		err = lf_dp_conns_next(dp, &cur, keys, vals, &count);
		if (err >= 0)
			n += count;
	} while (!err);
	dp->conns_live = n;
	dp->conns_live_ns = lf_now_ns();
	return n;
}

static void unpin_link(const char *path)
{
	int fd = bpf_obj_get(path);

	if (fd >= 0) {
		/* Cgroup links detach now, whoever else holds them. */
		bpf_link_detach(fd);
		close(fd);
	}
	if (unlink(path) && errno != ENOENT)
		pr_warn("unpin '%s': %s", path, strerror(errno));
}

/* Detach and unpin everything in pin_dir; the dir itself stays. */
static int dp_unpin_all(const char *pin_dir)
{
	char path[PATH_MAX];
	unsigned int i;
	int err = 0;

	for (i = 0; i < N_LINKS; i++) {
		pin_path(path, sizeof(path), pin_dir, "links",
			 link_pins[i].name);
		unpin_link(path);
	}
	for (i = 0; i < ARRAY_SIZE(map_pins); i++) {
		pin_path(path, sizeof(path), pin_dir, "maps", map_pins[i].name);
		if (unlink(path) && errno != ENOENT) {
			err = -errno;
			pr_warn("unpin '%s': %s", path, strerror(errno));
		}
	}
	snprintf(path, sizeof(path), "%s/links", pin_dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/maps", pin_dir);
	rmdir(path);
	return err;
}

/*
 * Detach and unpin everything in pin_dir, and remove it. Paired sockets
 * keep their programs and maps alive until they close, so no byte is
 * lost.
 */
int lf_dp_unload(const char *pin_dir)
{
	int err = dp_unpin_all(pin_dir);

	if (rmdir(pin_dir) && errno != ENOENT) {
		err = -errno;
		pr_warn("remove pin dir '%s': %s", pin_dir, strerror(errno));
	}
	return err;
}
