// SPDX-License-Identifier: MIT
/*
 * win_port - a loopback client and server written the way a Winsock
 * program ported to Linux keeps them: SOCKET, closesocket(), and the
 * fast path asked for with ioctl(SIO_LOOPBACK_FAST_PATH) on both sockets
 * before listen() and connect(), as Windows requires.
 *
 * No kernel knows that ioctl: it works only with libloopfast.so preloaded,
 * which turns it into loopfast's socket option:
 *
 *	LD_PRELOAD=libloopfast.so win_port
 *
 * Without the shim the ioctl fails, and the program says so.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <loopfast.h>

/* The few Winsock names a port usually keeps. */
typedef int SOCKET;
#define INVALID_SOCKET (-1)
#define SOCKET_ERROR (-1)
#define closesocket close

static const char hello[] = "hello over the loopback fast path";
static const char *server_path;

/* What Windows code does right after socket(): ask for the fast path. */
static int enable_fast_path(SOCKET s, const char *who)
{
	int on = 1;
	int err;

	if (ioctl(s, SIO_LOOPBACK_FAST_PATH, &on) != SOCKET_ERROR)
		return 0;
	err = errno;

	fprintf(stderr,
		"win_port: %s: ioctl(SIO_LOOPBACK_FAST_PATH): %s (errno %d)\n",
		who, strerror(err), err);
	if (err == EOPNOTSUPP)
		fprintf(stderr,
			"win_port: the shim is loaded, but loopfastd is not running for this\n"
			"win_port: cgroup: start it, or run win_port inside its --cgroup\n");
	else
		fprintf(stderr,
			"win_port: the kernel does not know this ioctl: libloopfast.so must be\n"
			"win_port: preloaded (LD_PRELOAD=libloopfast.so win_port), inside a\n"
			"win_port: cgroup loopfastd serves\n");
	return SOCKET_ERROR;
}

/* Linux only, for the demonstration: is the connection paired fast? */
static const char *fast_path_state(SOCKET s)
{
	socklen_t len = sizeof(int);
	int state = 0;

	if (getsockopt(s, SOL_LOOPFAST, LOOPFAST_STATE, &state, &len))
		return "unknown";
	return state ? "fast" : "regular";
}

static void *server_main(void *arg)
{
	SOCKET listener = *(SOCKET *)arg;
	char buf[sizeof(hello)];
	ssize_t n;
	SOCKET s;

	s = accept(listener, NULL, NULL);
	if (s == INVALID_SOCKET) {
		perror("win_port: accept");
		return NULL;
	}
	/* Echo one message back. */
	n = recv(s, buf, sizeof(buf), 0);
	if (n > 0 && send(s, buf, (size_t)n, 0) != n)
		perror("win_port: send");
	server_path = fast_path_state(s);
	closesocket(s);
	return NULL;
}

static SOCKET server_open(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	SOCKET s;

	s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	if (s == INVALID_SOCKET) {
		perror("win_port: socket");
		return INVALID_SOCKET;
	}
	if (enable_fast_path(s, "server") == SOCKET_ERROR)
		goto out_close;
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->sin_port = 0;
	if (bind(s, (struct sockaddr *)addr, sizeof(*addr)) == SOCKET_ERROR ||
	    listen(s, 1) == SOCKET_ERROR ||
	    getsockname(s, (struct sockaddr *)addr, &len) == SOCKET_ERROR) {
		perror("win_port: bind/listen");
		goto out_close;
	}
	return s;

out_close:
	closesocket(s);
	return INVALID_SOCKET;
}

static int client_run(const struct sockaddr_in *addr)
{
	char buf[sizeof(hello)];
	int ret = 1;
	ssize_t n;
	SOCKET s;

	s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	if (s == INVALID_SOCKET) {
		perror("win_port: socket");
		return 1;
	}
	if (enable_fast_path(s, "client") == SOCKET_ERROR)
		goto out_close;
	if (connect(s, (const struct sockaddr *)addr, sizeof(*addr)) ==
	    SOCKET_ERROR) {
		perror("win_port: connect");
		goto out_close;
	}
	if (send(s, hello, sizeof(hello), 0) != (ssize_t)sizeof(hello)) {
		perror("win_port: send");
		goto out_close;
	}
	n = recv(s, buf, sizeof(buf), MSG_WAITALL);
	if (n != (ssize_t)sizeof(hello) || memcmp(buf, hello, sizeof(hello))) {
		fprintf(stderr,
			"win_port: the echo did not come back intact\n");
		goto out_close;
	}
	printf("client: echoed \"%s\"; connection is on the %s path\n", buf,
	       fast_path_state(s));
	ret = 0;
out_close:
	closesocket(s);
	return ret;
}

int main(void)
{
	struct sockaddr_in addr = {};
	SOCKET listener;
	pthread_t tid;
	int ret;

	listener = server_open(&addr);
	if (listener == INVALID_SOCKET)
		return 1;
	if (pthread_create(&tid, NULL, server_main, &listener)) {
		fprintf(stderr, "win_port: cannot start the server thread\n");
		closesocket(listener);
		return 1;
	}
	ret = client_run(&addr);
	if (ret)
		shutdown(listener, SHUT_RDWR);
	pthread_join(tid, NULL);
	if (server_path)
		printf("server: connection is on the %s path\n", server_path);
	closesocket(listener);
	return ret;
}
