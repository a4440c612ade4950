/* SPDX-License-Identifier: MIT */
#ifndef LF_CHECK_H
#define LF_CHECK_H

/* Print what the system lacks for loopfast; 0 when nothing, 1 otherwise. */
int lf_check_run(int json);

#endif /* LF_CHECK_H */
