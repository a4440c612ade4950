/* SPDX-License-Identifier: MIT */
/*
 * cgpath.h - a per-cgroup mode as the config file, the command line and
 * the control protocol spell it ("MODE PATH"), and the cgroup paths it
 * names. Pure string work, shared by loopfastd and the unit tests.
 */
#ifndef LF_CGPATH_H
#define LF_CGPATH_H

/*
 * Split "MODE PATH" in place: MODE one of lf_cgroup_mode_names (into
 * *mode: an enum lf_mode, or LF_MODE_DEFAULT), PATH the rest of the line
 * (it may hold spaces), trimmed, made canonical by lf_path_normalize().
 * 0, or -EINVAL.
 */
int lf_cgspec_parse(char *s, int *mode, char **path);

/*
 * An absolute path in its plain form, in place: repeated and trailing
 * slashes dropped. -EINVAL for a relative path or one with a "." or ".."
 * component (the policy names the cgroup, as written).
 */
int lf_path_normalize(char *path);

/* Is path base itself or below it? Both normalized; 1 or 0. */
int lf_path_at_or_below(const char *base, const char *path);

#endif /* LF_CGPATH_H */
