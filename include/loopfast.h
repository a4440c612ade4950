/* SPDX-License-Identifier: MIT */
/*
 * loopfast.h - the loopback TCP fast path, as applications see it.
 *
 * Opt a TCP socket in before connect() or listen():
 *
 *	int on = 1;
 *	setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on, sizeof(on));
 *
 * or, with libloopfast.so preloaded, the Windows way:
 *
 *	ioctl(fd, SIO_LOOPBACK_FAST_PATH, &on);
 *
 * When both ends opted in and loopfastd runs, the connection skips the
 * TCP/IP stack; it stays an ordinary TCP socket for the program.
 */
#ifndef LOOPFAST_H
#define LOOPFAST_H

#ifdef __cplusplus
extern "C" {
#endif

/* Socket option level handled by loopfast's cgroup sockopt hooks. */
#define SOL_LOOPFAST 0x4c46

/* int, set and get: 1 to opt this socket in, 0 to opt out. */
#define LOOPFAST_FAST_PATH 1

/* int, get only: 1 while this socket's connection is paired fast. */
#define LOOPFAST_STATE 2

/*
 * int, get only: on a fast socket, the bytes its peer has sent that it has
 * not read yet, in either receive queue (redirected or TCP's), or -1 when
 * the socket is not paired. FIONREAD on a fast socket counts only one of
 * the two queues; the shim answers FIONREAD with this.
 */
#define LOOPFAST_INQ 3

/*
 * int, set (any value) and get: libloopfast.so sets it on every TCP socket
 * it creates, to say that it serves the socket's reads. Only such sockets
 * are paired: without the shim the kernel's read path for redirected bytes
 * is not TCP's (spurious EAGAIN on blocking reads, splice that never sees
 * them). Programs do not set it themselves.
 */
#define LOOPFAST_SERVED 4

/*
 * Windows' _WSAIOW(IOC_VENDOR, 16). Only the libloopfast.so shim knows it;
 * the argument is a pointer to an int (0 or 1).
 */
#define SIO_LOOPBACK_FAST_PATH 0x98000010UL

#ifdef __cplusplus
}
#endif

#endif /* LOOPFAST_H */
